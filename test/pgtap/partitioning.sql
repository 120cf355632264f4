-- The partitioned ledger (issue 8): conversion keeps every row, balance and
-- invariant; every writer (the C write path's partition routing included)
-- works afterwards and its rows land in the current partition; append-only
-- holds on the parent and on partitions; partitions are created ahead
-- idempotently and the DEFAULT partition catches the rest; partitions are
-- named as pg_partman names them, and one created or attached by another
-- tool gets the TRUNCATE refusal and row-level security too; a partition
-- holding entries may not be detached or dropped, except by archive_ledger
-- (and not after its archive rolled back); archiving keeps
-- balances, lots and verify(), refuses what is still needed, and makes
-- archived entries and times before the horizon clear errors; only
-- administrators may call any of it.
--
-- Archiving needs entries from years ago, and created_at is the database's
-- clock: the test moves a few API-written entries (with their lots and
-- holds) three years back with the append-only trigger off
-- (session_replication_role = replica), which is the only hand edit.
BEGIN;
SET search_path = loyalty, public;
SELECT plan(88);

CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint);
CREATE FUNCTION pg_temp.id(text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM ids WHERE name = $1 $$;
INSERT INTO ids VALUES ('p', loyalty.create_program('TAP partitions', expiry_period => '1 year'));
INSERT INTO ids SELECT 'm' || g, loyalty.enroll(pg_temp.id('p'), 'pos', 'part-' || g) FROM generate_series(1, 6) g;

-- a history written while the ledger is a plain table
SELECT loyalty.earn(pg_temp.id('m' || g), 100 + g, 'pos', 'o-' || g) FROM generate_series(1, 6) g;
SELECT loyalty.redeem(pg_temp.id('m1'), '30');
INSERT INTO ids VALUES ('h1', loyalty.hold(pg_temp.id('m2'), '10', '1 hour'));
SELECT loyalty.adjust(pg_temp.id('m3'), '5', 'goodwill');
CREATE TEMP TABLE before_rows AS SELECT l.*, tableoid::regclass::text AS rel FROM loyalty.ledger l;
CREATE TEMP TABLE before_accounts AS SELECT member_id, balance, held, debt FROM loyalty.accounts;

-- conversion ------------------------------------------------------------------
SELECT is(loyalty.partition_ledger('1 month', 2), (SELECT count(*) FROM before_rows),
          'partition_ledger moves every row');
SELECT is((SELECT relkind::text FROM pg_class WHERE oid = 'loyalty.ledger'::regclass), 'p',
          'loyalty.ledger is partitioned');
SELECT is((SELECT pg_get_partkeydef('loyalty.ledger'::regclass)), 'RANGE (created_at)', 'partitioned by created_at');
SELECT is((SELECT array_agg(a.attname::text ORDER BY k.n)
           FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n), pg_attribute a
           WHERE i.indrelid = 'loyalty.ledger'::regclass AND i.indisprimary
             AND a.attrelid = i.indrelid AND a.attnum = k.attnum),
          ARRAY['member_id', 'entry_id', 'created_at'], 'the primary key is (member_id, entry_id, created_at)');
SELECT is_empty($$SELECT member_id, entry_id, kind, points, held_delta, created_at FROM before_rows
                  EXCEPT SELECT member_id, entry_id, kind, points, held_delta, created_at FROM loyalty.ledger$$,
                'every row is kept');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT count(*) FROM before_rows), 'and no row is added');
SELECT is_empty($$SELECT * FROM before_accounts EXCEPT SELECT member_id, balance, held, debt FROM loyalty.accounts$$,
                'balances are unchanged');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean after the conversion');
SELECT ok(pg_get_serial_sequence('loyalty.ledger', 'entry_id') = 'loyalty.ledger_entry_id_seq'
          AND (SELECT attidentity FROM pg_attribute WHERE attrelid = 'loyalty.ledger'::regclass AND attname = 'entry_id') = 'a',
          'entry_id is still an identity with its sequence');
SELECT cmp_ok((SELECT last_value FROM loyalty.ledger_entry_id_seq), '>=', (SELECT max(entry_id) FROM before_rows),
              'the sequence continues after the old ids');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'loyalty.ledger'::regclass)
          AND EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'loyalty' AND tablename = 'ledger' AND policyname = 'program_isolation'),
          'row-level security and program_isolation are kept');
SELECT ok(has_table_privilege('loyalty_admin', 'loyalty.ledger', 'SELECT')
          AND NOT has_table_privilege('loyalty_app', 'loyalty.ledger', 'SELECT'), 'grants are kept');
SELECT is(obj_description('loyalty.ledger'::regclass, 'pg_class'),
          'Append-only ledger: one immutable row per change of a balance; balances are derived from it', 'the comment is kept');
SELECT ok(EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'loyalty'
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = 'loyalty.ledger'::regclass AND d.deptype = 'e'),
          'the partitioned ledger belongs to the extension');
SELECT ok(has_function_privilege('loyalty_app', 'loyalty.history(bigint, timestamptz, integer)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'loyalty.history(bigint, timestamptz, integer)', 'EXECUTE'),
          'history() keeps its grants');
SELECT is((SELECT count(*)::integer FROM loyalty.history(pg_temp.id('m1'))), 2, 'history() reads the partitioned ledger');
SELECT ok(EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                  WHERE d.refobjid = 'loyalty.ledger'::regclass AND r.ev_class = 'loyalty.kpi_daily'::regclass),
          'the analytics views read the partitioned ledger');
SELECT throws_ok($$SELECT loyalty.partition_ledger()$$, '55000', 'loyalty.ledger is already partitioned',
                 'a second conversion is refused');
SELECT is((SELECT count(*)::integer FROM loyalty.ledger_partitions() WHERE is_default), 1, 'there is a DEFAULT partition');

-- every writer after the conversion -------------------------------------------
CREATE TEMP TABLE cur AS
SELECT format('loyalty.ledger_p%s', to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'))::regclass AS rel;
SELECT is(loyalty.earn(pg_temp.id('m4'), 40, 'web', 'after-1'), 40::bigint, 'earn (C write path, partition routing)');
SELECT isnt(loyalty.award(pg_temp.id('m4'), '15', 'review'), NULL, 'award');
SELECT isnt(loyalty.redeem(pg_temp.id('m4'), '20'), NULL, 'redeem');
INSERT INTO ids VALUES ('h2', loyalty.hold(pg_temp.id('m5'), '30', '1 hour'));
SELECT isnt(loyalty.capture(pg_temp.id('h2'), '10'), NULL, 'hold and capture');
SELECT is(loyalty.release(pg_temp.id('h1')), 10::bigint, 'release of a hold placed before the conversion');
SELECT is(loyalty.reverse(pg_temp.id('m6'), (SELECT entry_id FROM before_rows WHERE member_id = pg_temp.id('m6') AND kind = 'earn'),
                          '6'), 6::bigint, 'reverse of an entry written before the conversion');
SELECT isnt(loyalty.adjust(pg_temp.id('m6'), '-1', 'correction'), NULL, 'adjust');
SELECT is(loyalty.merge_members(pg_temp.id('m5'), pg_temp.id('m6')), 99::bigint, 'merge');
SELECT is(loyalty.expire_member(pg_temp.id('m4')), 0::bigint, 'expire');
SELECT is_empty($$SELECT l.entry_id, l.tableoid::regclass FROM loyalty.ledger l
                  WHERE l.entry_id > (SELECT max(entry_id) FROM before_rows)
                    AND l.tableoid <> (SELECT rel FROM cur)$$,
                'every new row is in the partition of the current month');
SELECT cmp_ok((SELECT count(*) FROM loyalty.ledger l WHERE l.entry_id > (SELECT max(entry_id) FROM before_rows)),
              '>=', 10::bigint, 'and there are rows from every writer');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean after the writes');
SELECT is(loyalty.balance_at(pg_temp.id('m4'), now()), (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = pg_temp.id('m4')),
          'balance_at() now = the balance');

-- append-only ------------------------------------------------------------------
SELECT throws_ok($$UPDATE loyalty.ledger SET points = '0'$$, '42501', 'the loyalty ledger is append-only', 'UPDATE of the parent refused');
SELECT throws_ok($$DELETE FROM loyalty.ledger$$, '42501', 'the loyalty ledger is append-only', 'DELETE from the parent refused');
SELECT throws_ok(format('UPDATE %s SET points = ''0''', (SELECT rel FROM cur)), '42501', 'the loyalty ledger is append-only',
                 'UPDATE of a partition refused');
SELECT throws_ok(format('DELETE FROM %s', (SELECT rel FROM cur)), '42501', 'the loyalty ledger is append-only',
                 'DELETE from a partition refused');
SELECT throws_ok(format('TRUNCATE %s', (SELECT rel FROM cur)), '42501', 'the loyalty ledger is append-only',
                 'TRUNCATE of a partition refused');
SELECT throws_ok($$TRUNCATE loyalty.ledger$$, '42501', 'the loyalty ledger is append-only', 'TRUNCATE of the parent refused');

-- partitions ahead, DEFAULT ------------------------------------------------------
SELECT is(loyalty.create_ledger_partitions(2), 0, 'create_ledger_partitions: nothing to do right after the conversion');
SELECT is(loyalty.create_ledger_partitions(5), 3, 'three more months ahead');
SELECT is(loyalty.create_ledger_partitions(5), 0, 'and again: idempotent');
-- a row no partition covers (routing through SQL, 0 points: changes no balance)
INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, created_at, occurred_at)
VALUES (pg_temp.id('m1'), pg_temp.id('p'), 'adjust', '0', 'far future', now() + interval '20 years', now());
SELECT is((SELECT tableoid::regclass FROM loyalty.ledger WHERE reason = 'far future'), 'loyalty.ledger_default'::regclass,
          'the DEFAULT partition catches a row no partition covers');
INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, created_at, occurred_at)
VALUES (pg_temp.id('m1'), pg_temp.id('p'), 'adjust', '0', 'long ago', now() - interval '5 years', now() - interval '5 years');
SELECT cmp_ok(loyalty.create_ledger_partitions(5, since => now() - interval '5 years'), '>=', 55,
              'partitions from five years ago');
SELECT is((SELECT tableoid::regclass FROM loyalty.ledger WHERE reason = 'long ago'),
          format('loyalty.ledger_p%s', to_char((now() - interval '5 years') AT TIME ZONE 'UTC', 'YYYY_MM'))::regclass,
          'a row of the DEFAULT partition moves into the partition created for it');
SELECT is(ARRAY[loyalty.ledger_partition_name('2025-07-01 00:00+00', '2025-08-01 00:00+00'),
                loyalty.ledger_partition_name('2025-07-14 00:00+00', '2025-07-15 00:00+00'),
                loyalty.ledger_partition_name('2025-07-14 00:00+00', '2025-07-21 00:00+00'),
                loyalty.ledger_partition_name('2025-07-01 00:00+00', '2025-10-01 00:00+00'),
                loyalty.ledger_partition_name('2025-01-01 00:00+00', '2026-01-01 00:00+00')],
          ARRAY['ledger_p2025_07', 'ledger_p2025_07_14', 'ledger_p2025w29', 'ledger_p2025q3', 'ledger_p2025'],
          'partitions are named as pg_partman names them (monthly, daily, weekly, quarterly, yearly)');

-- partitions made by other tools, and partitions leaving --------------------------
CREATE TABLE loyalty.ledger_p2099_01 PARTITION OF loyalty.ledger
    FOR VALUES FROM ('2099-01-01 00:00+00') TO ('2099-02-01 00:00+00');
CREATE TABLE loyalty.ledger_p2099_02 (LIKE loyalty.ledger INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE loyalty.ledger ATTACH PARTITION loyalty.ledger_p2099_02
    FOR VALUES FROM ('2099-02-01 00:00+00') TO ('2099-03-01 00:00+00');
SELECT is((SELECT array_agg(c.relname::text ORDER BY 1) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE t.tgname = 'ledger_no_truncate' AND t.tgrelid = ANY ('{loyalty.ledger_p2099_01, loyalty.ledger_p2099_02}'::regclass[])),
          ARRAY['ledger_p2099_01', 'ledger_p2099_02'],
          'a partition created as one, or attached, gets the TRUNCATE refusal');
SELECT throws_ok($$TRUNCATE loyalty.ledger_p2099_01$$, '42501', 'the loyalty ledger is append-only', '... which refuses');
SELECT is((SELECT count(*)::integer FROM pg_class c JOIN pg_policies p ON p.schemaname = 'loyalty' AND p.tablename = c.relname
           WHERE c.oid = ANY ('{loyalty.ledger_p2099_01, loyalty.ledger_p2099_02}'::regclass[])
             AND c.relrowsecurity AND p.policyname = 'program_isolation'), 2,
          '... and row-level security with the ledger''s policy');
SELECT is((SELECT count(*)::integer FROM pg_partition_tree('loyalty.ledger') t
           WHERE t.isleaf AND t.level > 0
             AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = 'ledger_no_truncate')), 0,
          'every partition of the ledger has the TRUNCATE refusal');
SELECT throws_ok(format('ALTER TABLE loyalty.ledger DETACH PARTITION %s', (SELECT rel FROM cur)), '55000',
                 format('cannot detach partition loyalty.%s: it holds ledger entries that were not carried forward',
                        (SELECT c.relname FROM pg_class c WHERE c.oid = (SELECT rel FROM cur))),
                 'detaching a partition that holds entries is refused');
SELECT throws_ok(format('DROP TABLE %s', (SELECT rel FROM cur)), '55000', NULL,
                 'dropping a partition that holds entries is refused');
SELECT throws_ok($$DROP TABLE loyalty.ledger_default$$, '55000', NULL,
                 'so is dropping the DEFAULT partition while it holds an entry');
SELECT lives_ok($$ALTER TABLE loyalty.ledger DETACH PARTITION loyalty.ledger_p2099_02$$, 'an empty partition may be detached');
SELECT lives_ok($$DROP TABLE loyalty.ledger_p2099_01$$, '... or dropped');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean after the refusals');

-- archiving ----------------------------------------------------------------------
-- three years ago: m1 earns 100 and redeems 60 (a lot stays open); m2 earns
-- 100 and holds all of it; m3 earns 50
INSERT INTO ids VALUES ('a1', loyalty.earn(pg_temp.id('m1'), 100, 'pos', 'old-1')::bigint);
UPDATE ids SET id = (SELECT max(entry_id) FROM loyalty.ledger WHERE member_id = pg_temp.id('m1') AND reference = 'old-1') WHERE name = 'a1';
SELECT loyalty.redeem(pg_temp.id('m1'), '60', 'pos', 'old-2');
SELECT loyalty.earn(pg_temp.id('m2'), 100, 'pos', 'old-3');
INSERT INTO ids VALUES ('h3', loyalty.hold(pg_temp.id('m2'), (SELECT balance FROM loyalty.accounts WHERE member_id = pg_temp.id('m2')), '1 hour', 'pos', 'old-4'));
SELECT loyalty.earn(pg_temp.id('m3'), 50, 'pos', 'old-5');
-- and m7 earns 30 and spends it all: its lot closes with only old debits naming it
INSERT INTO ids VALUES ('m7', loyalty.enroll(pg_temp.id('p'), 'pos', 'part-7'));
SELECT loyalty.earn(pg_temp.id('m7'), 30, 'pos', 'old-6');
SELECT loyalty.redeem(pg_temp.id('m7'), '30', 'pos', 'old-7');
SET LOCAL session_replication_role = replica;
CREATE TEMP TABLE moved AS SELECT member_id, entry_id FROM loyalty.ledger WHERE reference LIKE 'old-%';
UPDATE loyalty.ledger l SET created_at = l.created_at - interval '3 years', occurred_at = l.occurred_at - interval '3 years'
FROM moved m WHERE l.member_id = m.member_id AND l.entry_id = m.entry_id;
UPDATE loyalty.lots l SET created_at = l.created_at - interval '3 years' FROM moved m WHERE l.member_id = m.member_id AND l.entry_id = m.entry_id;
UPDATE loyalty.holds h SET created_at = h.created_at - interval '3 years' FROM moved m WHERE h.member_id = m.member_id AND h.entry_id = m.entry_id;
SET LOCAL session_replication_role = origin;
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean with the old entries');

CREATE TEMP TABLE horizon AS
SELECT max(upper_bound) AS h FROM loyalty.ledger_partitions() WHERE NOT is_default AND upper_bound <= now() - interval '2 years';
SELECT throws_ok($$SELECT * FROM loyalty.archive_ledger(now() - interval '2 years')$$, '55000', NULL,
                 'archiving is refused while a lot credited before the horizon is open');
SELECT loyalty.redeem(pg_temp.id('m1'), (SELECT balance FROM loyalty.accounts WHERE member_id = pg_temp.id('m1')));
SELECT loyalty.redeem(pg_temp.id('m3'), (SELECT balance FROM loyalty.accounts WHERE member_id = pg_temp.id('m3')));
SELECT throws_like($$SELECT * FROM loyalty.archive_ledger(now() - interval '2 years')$$,
                   '%holds placed before it are still active', 'archiving is refused while a hold placed before it is active');
SELECT loyalty.release(pg_temp.id('h3'));
SELECT loyalty.redeem(pg_temp.id('m2'), (SELECT balance FROM loyalty.accounts WHERE member_id = pg_temp.id('m2')));
SELECT throws_ok($$SELECT * FROM loyalty.archive_ledger(now() - interval '6 months')$$, '55000', NULL,
                 'archiving within the tier window is refused');
SELECT throws_ok($$SELECT * FROM loyalty.archive_ledger(now() + interval '1 day')$$, '22023', NULL,
                 'archiving before a future time is refused');

-- an archive rolled back leaves no leave to detach behind it
CREATE TEMP TABLE old_part AS SELECT tableoid::regclass AS rel FROM loyalty.ledger WHERE reference = 'old-1';
SAVEPOINT before_archive;
SELECT cmp_ok((SELECT count(*) FROM loyalty.archive_ledger(now() - interval '2 years')), '>=', 30::bigint, 'an archive ...');
ROLLBACK TO SAVEPOINT before_archive;
SELECT throws_ok(format('ALTER TABLE loyalty.ledger DETACH PARTITION %s', (SELECT rel FROM old_part)), '55000', NULL,
                 '... rolled back to a savepoint: its partitions may no longer be detached');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean after the rollback');

CREATE TEMP TABLE pre_accounts AS SELECT member_id, balance, held, debt FROM loyalty.accounts;
CREATE TEMP TABLE pre_lots AS SELECT * FROM loyalty.lots;
CREATE TEMP TABLE pre_allocs AS SELECT a.* FROM loyalty.allocations a JOIN moved m USING (member_id, entry_id);
CREATE TEMP TABLE pre_sums AS
SELECT member_id, sum(points::bigint) AS points, sum(held_delta::bigint) AS held
FROM loyalty.ledger WHERE created_at < (SELECT h FROM horizon) GROUP BY member_id;
-- the BI rollups, counted before archiving, keep counting the archived rows
-- (a refresh retried as refresh_rollups() does: it waits for any transaction
-- running at its mark)
CREATE FUNCTION pg_temp.refresh() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 50 LOOP
        IF (loyalty.refresh_rollups_batch()).done THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;
SELECT pg_temp.refresh() AS refreshed \gset
CREATE TEMP TABLE pre_views AS
SELECT 'kpi_monthly' AS v, to_jsonb(k) AS r FROM loyalty.kpi_monthly k
UNION ALL SELECT 'channel_distribution', to_jsonb(c) FROM loyalty.channel_distribution c
UNION ALL SELECT 'cohort_retention', to_jsonb(c) FROM loyalty.cohort_retention c;
CREATE TEMP TABLE result AS SELECT * FROM loyalty.archive_ledger(now() - interval '2 years');
CREATE TEMP VIEW post_views AS
SELECT 'kpi_monthly' AS v, to_jsonb(k) AS r FROM loyalty.kpi_monthly k
UNION ALL SELECT 'channel_distribution', to_jsonb(c) FROM loyalty.channel_distribution c
UNION ALL SELECT 'cohort_retention', to_jsonb(c) FROM loyalty.cohort_retention c;
SELECT ok((SELECT sum(purchases) FROM loyalty.channel_distribution)
          > (SELECT count(*) FROM loyalty.ledger WHERE kind = 'earn'), 'the ledger has fewer purchases after archiving');
SELECT set_eq('SELECT * FROM post_views', 'SELECT * FROM pre_views',
              'kpi_monthly, channel_distribution and cohort_retention still count them (carry_forward entries are not counted)');
SELECT pg_temp.refresh() AS refreshed \gset
SELECT set_eq('SELECT * FROM post_views', 'SELECT * FROM pre_views', '... nor are they once the rollups are refreshed');
SELECT cmp_ok((SELECT count(*) FROM result), '>=', 30::bigint, 'archive_ledger retires the old partitions');
SELECT is((SELECT sum(entries)::bigint FROM result WHERE carried_members IS NOT NULL), (SELECT count(*) FROM moved) + 1, 'with every old entry');
SELECT is_empty($$SELECT * FROM loyalty.ledger_partitions() WHERE NOT is_default AND upper_bound <= (SELECT h FROM horizon)$$,
                'no partition before the horizon is left');
SELECT is((SELECT archived_before FROM loyalty.ledger_partitioning), (SELECT h FROM horizon), 'the horizon is recorded');
SELECT is_empty($$SELECT member_id, points, held FROM pre_sums
                  EXCEPT SELECT member_id, points::bigint, held_delta::bigint FROM loyalty.ledger
                         WHERE kind = 'carry_forward' AND created_at = (SELECT h FROM horizon)$$,
                'one carry_forward entry per member holds the archived points and held points');
SELECT is_empty($$SELECT * FROM pre_accounts EXCEPT SELECT member_id, balance, held, debt FROM loyalty.accounts$$,
                'balances are unchanged');
SELECT is_empty($$SELECT * FROM pre_lots WHERE member_id <> pg_temp.id('m7') EXCEPT SELECT * FROM loyalty.lots$$,
                'old lots that later debits took from are kept (a refund gives back to them), as are newer lots');
SELECT is((SELECT count(*) FROM loyalty.lots WHERE member_id = pg_temp.id('m7')), 0::bigint,
          'a closed old lot named only by archived debits leaves loyalty.lots');
SELECT is((SELECT count(*) FROM loyalty_archive.lots WHERE member_id = pg_temp.id('m7')), 1::bigint, '... for the archive schema');
SELECT is_empty($$SELECT a.* FROM loyalty.allocations a JOIN moved m USING (member_id, entry_id)$$,
                'no allocation of an archived debit is left');
SELECT set_eq($$SELECT member_id, entry_id, lot_id, points::bigint, returned::bigint FROM loyalty_archive.allocations$$,
              $$SELECT member_id, entry_id, lot_id, points::bigint, returned::bigint FROM pre_allocs$$,
              'they are in the archive schema, all of them (an old redemption, an old hold, m7''s)');
SELECT is_empty($$SELECT * FROM loyalty.verify()$$, 'verify() is clean after archiving');
SELECT throws_ok($$SELECT loyalty.balance_at(pg_temp.id('m1'), now() - interval '30 months')$$, '55000', NULL,
                 'balance_at() before the horizon is refused');
SELECT is(loyalty.balance_at(pg_temp.id('m1'), now()), (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = pg_temp.id('m1')),
          'balance_at() after the horizon still answers');
SELECT throws_like(format('SELECT loyalty.reverse(%s, %s)', pg_temp.id('m1'), pg_temp.id('a1')),
                   '%does not exist or was archived', 'reversing an archived entry is a clear error');
SELECT throws_ok(format('SELECT loyalty.capture(%s)', pg_temp.id('h3')), 'LY003', NULL,
                 'capturing an archived (resolved) hold is a clear error');
SELECT throws_ok(format('UPDATE loyalty_archive.%s SET points = ''0''', split_part((SELECT min(archived) FROM result WHERE carried_members IS NOT NULL), '.', 2)),
                 '42501', NULL, 'an archived partition stays append-only');

-- retention of keys and events, and who may call all this ---------------------
SELECT is(loyalty.purge_idempotency_keys('1 day'), 0::bigint, 'recent idempotency keys are kept');
SELECT throws_ok($$SELECT loyalty.purge_idempotency_keys('1 hour')$$, '22023', NULL, 'keys are kept at least a day');
SET LOCAL ROLE loyalty_app;
SELECT throws_ok($$SELECT loyalty.create_ledger_partitions()$$, '42501', NULL, 'the application role cannot create partitions');
SELECT throws_ok($$SELECT * FROM loyalty.archive_ledger(now() - interval '2 years')$$, '42501', NULL,
                 'the application role cannot archive');
RESET ROLE;
SELECT ok(NOT has_function_privilege('loyalty_app', 'loyalty.partition_ledger(interval, integer)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.purge_events(interval)', 'EXECUTE')
          AND has_function_privilege('loyalty_admin', 'loyalty.archive_ledger(timestamptz, text)', 'EXECUTE'),
          'only administrators may partition, purge and archive');

SELECT * FROM finish();
ROLLBACK;
