-- member_rfm's quintiles from the RFM rollups: a history written through the
-- API (ties in purchase counts, spends and times of last purchase, back-dated
-- purchases, partial and full refunds, merges, members closed, suspended and
-- reopened, a new member), and every column of member_rfm compared with its
-- former definition (percentile_disc over every buyer's account): before any
-- refresh, after one, after more writes, after a second refresh, with writes
-- after it, with the ledger far ahead of the rollups, and rebuilt.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(30);

-- the views as they were (on the raw tables), shared with bench/scale.sh: the reference
\ir ../../bench/raw_views.sql

-- compare(label): every column of member_rfm and segment_summary against the reference
CREATE FUNCTION pg_temp.compare(label text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEXT results_eq('SELECT * FROM loyalty.member_rfm ORDER BY program_id, member_id',
                           'SELECT * FROM raw_member_rfm ORDER BY program_id, member_id',
                           'member_rfm: every column as computed from every buyer''s account, ' || label);
    RETURN NEXT results_eq(
        'SELECT * FROM loyalty.segment_summary ORDER BY program_id, segment',
        $q$SELECT r.program_id, r.segment, count(*)::bigint,
                  round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY r.program_id), 4),
                  round(avg(r.recency_days), 1), round(avg(r.frequency), 2), round(avg(r.monetary), 2), sum(r.monetary)
           FROM raw_member_rfm r GROUP BY r.program_id, r.segment ORDER BY 1, 2$q$,
        'segment_summary: as from the former member_rfm, ' || label);
END $$;

-- a refresh in this transaction, retried as refresh_rollups() does
CREATE FUNCTION pg_temp.refresh() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR i IN 1 .. 50 LOOP
        SELECT * INTO r FROM loyalty.refresh_rollups_batch();
        EXIT WHEN r.done;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN r.done;
END $$;

-- the RFM counts agree with the accounts as counted (rollup_accounts), and
-- those with the accounts
CREATE FUNCTION pg_temp.rollups_sound() RETURNS boolean LANGUAGE sql AS $$
    SELECT NOT EXISTS (
        (SELECT a.member_id, a.program_id, a.status, a.last_purchase_at, a.purchase_count::bigint, a.purchase_amount
         FROM loyalty.accounts a
         EXCEPT
         SELECT x.member_id, x.program_id, x.status, x.last_purchase_at, x.purchase_count, x.purchase_amount
         FROM loyalty.rollup_accounts x)
        UNION ALL
        (SELECT x.member_id, x.program_id, x.status, x.last_purchase_at, x.purchase_count, x.purchase_amount
         FROM loyalty.rollup_accounts x
         EXCEPT
         SELECT a.member_id, a.program_id, a.status, a.last_purchase_at, a.purchase_count::bigint, a.purchase_amount
         FROM loyalty.accounts a))
    AND NOT EXISTS (
        (SELECT k.program_id, k.measure, k.bucket, k.members FROM loyalty.rollup_rfm_counts k
         EXCEPT
         SELECT x.program_id, m.measure, m.bucket, count(*)
         FROM loyalty.accounts x,
              LATERAL (VALUES ('f', x.purchase_count::bigint), ('r', loyalty.rollup_rfm_day(x.last_purchase_at)::bigint),
                              ('m', loyalty.rollup_rfm_band(x.purchase_amount))) m(measure, bucket)
         WHERE x.status <> 'closed' AND x.purchase_count > 0 AND m.bucket IS NOT NULL GROUP BY 1, 2, 3)
        UNION ALL
        (SELECT x.program_id, m.measure, m.bucket, count(*)
         FROM loyalty.accounts x,
              LATERAL (VALUES ('f', x.purchase_count::bigint), ('r', loyalty.rollup_rfm_day(x.last_purchase_at)::bigint),
                              ('m', loyalty.rollup_rfm_band(x.purchase_amount))) m(measure, bucket)
         WHERE x.status <> 'closed' AND x.purchase_count > 0 AND m.bucket IS NOT NULL GROUP BY 1, 2, 3
         EXCEPT
         SELECT k.program_id, k.measure, k.bucket, k.members FROM loyalty.rollup_rfm_counts k))
$$;

-- the history --------------------------------------------------------------------------------
SELECT loyalty.create_program('rfm-a') AS p \gset
SELECT loyalty.create_program('rfm-b') AS q \gset
-- 200 members of p (enough that a refresh updates the changed ones rather
-- than rebuilding): 1 to 5 purchases (ties), spends of 10 to 40 (ties), the
-- last purchases on six days (ties to the microsecond)
CREATE TEMP TABLE m AS
SELECT i, loyalty.enroll(:p, 'pos', 'm' || i, joined_at => '2024-06-01') AS member_id
FROM generate_series(1, 200) i;
SELECT count(loyalty.earn(m.member_id, 10 * (1 + m.i % 4), 'pos', 'm' || m.i || '-' || j,
                          occurred_at => timestamptz '2025-01-01 12:00+00' + (m.i % 6) * interval '1 day'
                                         - (1 + m.i % 5 - j) * interval '7 days'))
FROM m, generate_series(1, 1 + m.i % 5) j;
-- a spend written with another scale (100 and 100.00 are the same amount)
SELECT loyalty.earn((SELECT member_id FROM m WHERE i = 1), 60.00, 'web', 'm1-x', occurred_at => '2024-12-01');
-- the other program: three members
SELECT loyalty.enroll(:q, 'pos', 'q' || i) AS q1 FROM generate_series(1, 1) i \gset
SELECT loyalty.enroll(:q, 'pos', 'q2') AS q2, loyalty.enroll(:q, 'pos', 'q3') AS q3 \gset
SELECT loyalty.earn(:q1, 5, 'pos', 'q1-1', occurred_at => '2025-02-01'),
       loyalty.earn(:q2, 5, 'pos', 'q2-1', occurred_at => '2025-02-01'),
       loyalty.earn(:q3, 500, 'pos', 'q3-1');
-- q3 closed (q's top spend boundary moves when it is reopened)
SELECT loyalty.set_member_status(:q3, 'closed');
-- refunds (one partial, one whole order), a merge, a member closed, one suspended
SELECT loyalty.refund((SELECT member_id FROM m WHERE i = 2), 'm2-1', 5);
SELECT loyalty.refund((SELECT member_id FROM m WHERE i = 3), 'm3-1');
SELECT loyalty.merge_members((SELECT member_id FROM m WHERE i = 4), (SELECT member_id FROM m WHERE i = 5));
SELECT loyalty.set_member_status((SELECT member_id FROM m WHERE i = 6), 'closed');
SELECT loyalty.set_member_status((SELECT member_id FROM m WHERE i = 7), 'suspended');

SELECT ok((SELECT count(DISTINCT purchase_count) < count(*) AND count(DISTINCT purchase_amount) < count(*)
                  AND count(DISTINCT last_purchase_at) < count(*)
           FROM loyalty.accounts WHERE program_id = :p AND purchase_count > 0), 'the history has ties in R, F and M');
SELECT is((SELECT count(*) FROM loyalty.rollup_rfm_counts), 0::bigint, 'nothing refreshed yet');
SELECT * FROM pg_temp.compare('before any refresh (from the accounts)');

-- the first refresh ---------------------------------------------------------------------------
SELECT ok(pg_temp.refresh(), 'a refresh');
SELECT is((SELECT sum(members)::bigint FROM loyalty.rollup_rfm_counts WHERE measure = 'f'),
          (SELECT count(*) FROM loyalty.accounts WHERE purchase_count > 0 AND status <> 'closed'),
          'the RFM rollups count every buyer not closed');
SELECT ok(pg_temp.rollups_sound(), '... with counts of those not closed');
SELECT * FROM pg_temp.compare('after a refresh (from the rollups)');

-- more writes ------------------------------------------------------------------------------------
SELECT loyalty.earn((SELECT member_id FROM m WHERE i = 10), 25, 'pos', 'm10-new');                     -- now
SELECT loyalty.earn((SELECT member_id FROM m WHERE i = 11), 25, 'pos', 'm11-old', occurred_at => '2023-01-01');  -- back-dated
SELECT loyalty.earn((SELECT member_id FROM m WHERE i = 12), 30, 'pos', 'm12-tie',                       -- a tie with member 18
                    occurred_at => (SELECT last_purchase_at FROM loyalty.accounts WHERE member_id = (SELECT member_id FROM m WHERE i = 18)));
SELECT loyalty.refund((SELECT member_id FROM m WHERE i = 20), 'm20-1');                                -- its only purchase
SELECT loyalty.refund((SELECT member_id FROM m WHERE i = 21), 'm21-2', 7.5);
SELECT loyalty.set_member_status((SELECT member_id FROM m WHERE i = 6), 'active');                     -- reopened
SELECT loyalty.set_member_status(:q3, 'active');
SELECT loyalty.set_member_status((SELECT member_id FROM m WHERE i = 22), 'closed');
SELECT loyalty.merge_members((SELECT member_id FROM m WHERE i = 23), (SELECT member_id FROM m WHERE i = 24));
SELECT loyalty.enroll(:p, 'web', 'new') AS newbie \gset
SELECT loyalty.earn(:newbie, 1000, 'web', 'new-1');
SELECT loyalty.earn(:q1, 1, 'pos', 'q1-2');
SELECT is((SELECT purchase_count FROM loyalty.accounts WHERE member_id = (SELECT member_id FROM m WHERE i = 20)),
          0::bigint, 'a member whose only order was refunded has no purchase left');
SELECT * FROM pg_temp.compare('after more writes (the rollups and the members written since)');
SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) AS w1 FROM pg_stat_xact_user_tables
WHERE schemaname = 'loyalty' AND relname = 'rollup_accounts' \gset
SELECT ok(pg_temp.refresh(), 'a second refresh');
SELECT cmp_ok((SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables
               WHERE schemaname = 'loyalty' AND relname = 'rollup_accounts') - :w1, '<', 40::numeric,
              '... rewrites only the changed buyers'' rows');
SELECT ok(pg_temp.rollups_sound(), '... keeps the RFM rollups in step with the accounts');
SELECT * FROM pg_temp.compare('after the second refresh');

-- writes after it; nothing new writes nothing ----------------------------------------------------
SELECT loyalty.set_member_status((SELECT member_id FROM m WHERE i = 30), 'closed');
SELECT loyalty.earn((SELECT member_id FROM m WHERE i = 31), 15, 'app', 'm31-new', occurred_at => now() - interval '1 hour');
SELECT * FROM pg_temp.compare('with writes after the second refresh');
SELECT ok(pg_temp.refresh(), 'a third refresh');
SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) AS w0 FROM pg_stat_xact_user_tables
WHERE schemaname = 'loyalty' AND relname IN ('rollup_accounts', 'rollup_rfm_counts') \gset
SELECT ok(pg_temp.refresh(), 'a refresh with nothing new');
SELECT is((SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables
           WHERE schemaname = 'loyalty' AND relname IN ('rollup_accounts', 'rollup_rfm_counts')), :w0::numeric,
          '... writes no RFM rollup row (closed buyers included)');

-- the ledger far ahead (from the accounts again), then rebuilt -----------------------------------
SELECT count(nextval(pg_get_serial_sequence('loyalty.ledger', 'entry_id'))) FROM generate_series(1, 2000);
SELECT loyalty.earn((SELECT member_id FROM m WHERE i = 32), 45, 'pos', 'm32-new');
SELECT * FROM pg_temp.compare('with the ledger far ahead of the rollups');
-- the view reads the rollups: without their counts no program has buyers
SELECT ok(pg_temp.refresh(), 'a fourth refresh');
DELETE FROM loyalty.rollup_rfm_counts;
SELECT is((SELECT count(*) FROM loyalty.member_rfm), 0::bigint, 'member_rfm''s quintiles come from the rollups');
-- (as a restore into a database without them: rebuilt from the start)
DELETE FROM loyalty.rollup_state; DELETE FROM loyalty.rollup_days; DELETE FROM loyalty.rollup_channels;
DELETE FROM loyalty.rollup_cohorts; DELETE FROM loyalty.rollup_point_months;
DELETE FROM loyalty.rollup_returns; DELETE FROM loyalty.rollup_pools; DELETE FROM loyalty.rollup_accounts;
DELETE FROM loyalty.rollup_vesting; DELETE FROM loyalty.rollup_account_sums; DELETE FROM loyalty.rollup_account_days;
SELECT ok(pg_temp.refresh(), 'emptied, a refresh rebuilds them');
SELECT ok(pg_temp.rollups_sound(), '... in step with the accounts');
SELECT * FROM pg_temp.compare('rebuilt');

SELECT * FROM finish();
ROLLBACK;
