-- The write path keeps using the member indexes when its plans were made on
-- tiny or freshly analysed empty tables (a new installation, or a first bulk
-- import in one transaction): once a table is more than a few pages, no call
-- scans it whole, however many calls follow.  (A plan that kept scanning as
-- the table grows would make an import of n orders cost n^2.)  The planner
-- may scan a table of a page or two: cheaper than its index.
BEGIN;
SELECT plan(9);

-- fresh statistics of empty tables, as right after installation
ANALYZE loyalty.accounts, loyalty.members, loyalty.ledger, loyalty.lots, loyalty.allocations,
        loyalty.idempotency_keys, loyalty.holds, loyalty.programs;
SELECT loyalty.create_program('plans') AS p \gset
SELECT count(loyalty.enroll(:p, 'pos', g::text)) FROM generate_series(1, 600) g;
SELECT count(loyalty.earn(m.member_id, 10 + g, idempotency_key => 'k' || g))
FROM loyalty.members m, generate_series(1, 3) g WHERE m.program_id = :p;
CREATE TEMP TABLE grown AS
SELECT relid, seq_scan, idx_scan FROM pg_stat_xact_user_tables
WHERE relid = ANY ('{loyalty.accounts, loyalty.ledger, loyalty.lots, loyalty.idempotency_keys}'::regclass[]);
SELECT count(loyalty.redeem(m.member_id, '5', idempotency_key => 'r')) FROM loyalty.members m WHERE m.program_id = :p;
SELECT count(loyalty.earn(m.member_id, 5, idempotency_key => 'k4')) FROM loyalty.members m WHERE m.program_id = :p;

SELECT is((SELECT s.seq_scan - g.seq_scan FROM pg_stat_xact_user_tables s JOIN grown g USING (relid)
           WHERE relid = 'loyalty.accounts'::regclass), 0::bigint,
          'no sequential scan of accounts once they have grown');
SELECT is((SELECT s.seq_scan - g.seq_scan FROM pg_stat_xact_user_tables s JOIN grown g USING (relid)
           WHERE relid = 'loyalty.ledger'::regclass), 0::bigint,
          'no sequential scan of the ledger once it has grown');
SELECT is((SELECT s.seq_scan - g.seq_scan FROM pg_stat_xact_user_tables s JOIN grown g USING (relid)
           WHERE relid = 'loyalty.lots'::regclass), 0::bigint,
          'no sequential scan of lots once they have grown');
SELECT is((SELECT s.seq_scan - g.seq_scan FROM pg_stat_xact_user_tables s JOIN grown g USING (relid)
           WHERE relid = 'loyalty.idempotency_keys'::regclass), 0::bigint,
          'no sequential scan of idempotency keys once they have grown');
SELECT cmp_ok((SELECT s.idx_scan - g.idx_scan FROM pg_stat_xact_user_tables s JOIN grown g USING (relid)
               WHERE relid = 'loyalty.accounts'::regclass), '>=', 1200::bigint,
              'every call found its account through the index');
SELECT cmp_ok((SELECT s.idx_scan - g.idx_scan FROM pg_stat_xact_user_tables s JOIN grown g USING (relid)
               WHERE relid = 'loyalty.idempotency_keys'::regclass), '>=', 1200::bigint,
              'every keyed call looked its key up through the index');

-- The lots and allocations are keyed by their own ids first (lot, debit
-- entry), so that new rows go to the index's right edge.  Every other way the
-- API reads them must still have an index: with sequential scans disabled,
-- the planner falls back to one only where no index fits.  (A full scan of
-- an index on its second column does not show here.)
SELECT seq_scan AS lots_before FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.lots'::regclass \gset
SELECT seq_scan AS allocs_before FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.allocations'::regclass \gset
SET LOCAL enable_seqscan = off;
SELECT min(member_id) AS m1, max(member_id) AS m2 FROM loyalty.members WHERE program_id = :p \gset
SELECT loyalty.redeem(:m1, '4') AS r1 \gset
SELECT loyalty.reverse(:m1, :r1, points => '2');
SELECT loyalty.reverse(:m1, (SELECT max(entry_id) FROM loyalty.ledger WHERE member_id = :m1 AND kind = 'earn'), points => '3');
SELECT loyalty.release(loyalty.hold(:m1, '3', interval '5 minutes'));
SELECT loyalty.capture(loyalty.hold(:m1, '2', interval '5 minutes'));
SELECT loyalty.award(:m1, '7', 'goodwill', expires_at => now() + interval '1 day');
SELECT loyalty.expire_member(:m1);
SELECT * FROM loyalty.balance(:m1);
SELECT loyalty.merge_members(:m1, :m2);
SELECT * FROM loyalty.balance(:m1);
SELECT count(*) FROM loyalty.history(:m1);
RESET enable_seqscan;
SELECT is((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.lots'::regclass), :lots_before::bigint,
          'refunds, holds, expiry, balance and merges find lots through an index');
SELECT is((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.allocations'::regclass), :allocs_before::bigint,
          'refunds, holds, expiry and merges find allocations through an index');

-- verify() reads every table whole.  The statistics here are those of the
-- empty tables analysed above, from before any debit: planned by them, the
-- check that each debit consumed its points joined every debit with a
-- rescanned aggregate of all allocations (a nested loop: minutes on a ledger
-- of 300,000 rows).  Its body is planned here under its own settings.
CREATE FUNCTION pg_temp.verify_plan() RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
    v_set text;
    v_line text;
BEGIN
    FOR v_set IN SELECT c FROM pg_proc, unnest(proconfig) c
                 WHERE oid = 'loyalty.verify()'::regprocedure AND c NOT LIKE 'search_path=%' LOOP
        PERFORM set_config(split_part(v_set, '=', 1), substr(v_set, strpos(v_set, '=') + 1), true);
    END LOOP;
    FOR v_line IN EXECUTE 'EXPLAIN ' || (SELECT prosrc FROM pg_proc WHERE oid = 'loyalty.verify()'::regprocedure) LOOP
        RETURN NEXT v_line;
    END LOOP;
END $f$;
SELECT is((SELECT count(*) FROM pg_temp.verify_plan() p WHERE p ~ 'Nested Loop'), 0::bigint,
          'verify() plans no nested loop from statistics of a smaller ledger');

SELECT * FROM finish();
ROLLBACK;
