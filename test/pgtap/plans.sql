-- The write path keeps using the member indexes when its plans are made on
-- tiny or freshly analysed empty tables (a new installation, or a first bulk
-- import in one transaction): no sequential scan of the per-member tables,
-- however many calls follow.  (A sequential scan there would make an import
-- of n orders cost n^2.)
BEGIN;
SELECT plan(5);

-- fresh statistics of empty tables, as right after installation
ANALYZE loyalty.accounts, loyalty.members, loyalty.ledger, loyalty.lots, loyalty.allocations,
        loyalty.idempotency_keys, loyalty.holds, loyalty.programs;
SELECT loyalty.create_program('plans') AS p \gset
SELECT count(loyalty.enroll(:p, 'pos', g::text)) FROM generate_series(1, 300) g;
SELECT count(loyalty.earn(m.member_id, 10 + g, idempotency_key => 'k' || g))
FROM loyalty.members m, generate_series(1, 3) g WHERE m.program_id = :p;
SELECT count(loyalty.redeem(m.member_id, '5', idempotency_key => 'r')) FROM loyalty.members m WHERE m.program_id = :p;

SELECT is((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.accounts'::regclass), 0::bigint,
          'no sequential scan of accounts');
SELECT is((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.ledger'::regclass), 0::bigint,
          'no sequential scan of the ledger');
SELECT is((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.lots'::regclass), 0::bigint,
          'no sequential scan of lots');
SELECT is((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.idempotency_keys'::regclass), 0::bigint,
          'no sequential scan of idempotency keys');
SELECT cmp_ok((SELECT idx_scan FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.accounts'::regclass), '>=', 1200::bigint,
              'every call found its account through the index');

SELECT * FROM finish();
ROLLBACK;
