-- Rollups behind kpi_monthly, channel_distribution, cohort_retention,
-- kpi_summary, tier_distribution and member_mix: a history written through the API
-- (earns in several channels and time zones, back-dated ones, refunds of old
-- orders, redemptions given back, holds released and captured, expiry, a
-- merge, a household pool dissolved; tiers reached by earns, lowered by a
-- review and assigned, members closed, reopened, suspended and erased,
-- regions set, moved and cleared,
-- points vesting a second either side of now, last purchases a second
-- either side of the 90 days), and every column of each view compared with
-- the views' former definitions on the raw tables: before any refresh (the
-- views add the uncounted rows), after one (from the rollups alone), after
-- more writes (both), after a second refresh; a refresh with nothing new
-- writes nothing, and an earn writes no rollup row.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(114);

-- the views as they were (on the raw tables), shared with bench/scale.sh: the reference
\ir ../../bench/raw_views.sql

-- compare(label): every column of the three views against the reference
CREATE FUNCTION pg_temp.compare(label text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEXT results_eq('SELECT * FROM loyalty.kpi_monthly ORDER BY program_id, month',
                           'SELECT * FROM raw_kpi_monthly ORDER BY program_id, month',
                           'kpi_monthly: every column as computed from the raw tables, ' || label);
    RETURN NEXT results_eq('SELECT * FROM loyalty.channel_distribution ORDER BY program_id, channel',
                           'SELECT * FROM raw_channel_distribution ORDER BY program_id, channel',
                           'channel_distribution: every column as computed from the raw tables, ' || label);
    RETURN NEXT results_eq('SELECT * FROM loyalty.cohort_retention ORDER BY program_id, cohort_month, months_since_first',
                           'SELECT * FROM raw_cohort_retention ORDER BY program_id, cohort_month, months_since_first',
                           'cohort_retention: every column as computed from the raw tables, ' || label);
    RETURN NEXT results_eq('SELECT * FROM loyalty.kpi_summary ORDER BY program_id',
                           'SELECT * FROM raw_kpi_summary ORDER BY program_id',
                           'kpi_summary: every column as computed from the raw tables, ' || label);
    RETURN NEXT results_eq('SELECT * FROM loyalty.tier_distribution ORDER BY program_id, tier_rank, tier',
                           'SELECT * FROM raw_tier_distribution ORDER BY program_id, tier_rank, tier',
                           'tier_distribution: every column as computed from the raw tables, ' || label);
    RETURN NEXT results_eq('SELECT * FROM loyalty.member_mix ORDER BY program_id, source_channel, region',
                           'SELECT * FROM raw_member_mix ORDER BY program_id, source_channel, region',
                           'member_mix: every column as computed from the raw tables, ' || label);
END $$;

-- a refresh in this transaction, retried for up to half a second as
-- refresh_rollups() does (it waits for any transaction running at its mark,
-- e.g. another session's)
CREATE FUNCTION pg_temp.refresh(OUT entries bigint, OUT members bigint, OUT done boolean) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    entries := 0; members := 0;
    FOR i IN 1 .. 50 LOOP
        SELECT * INTO r FROM loyalty.refresh_rollups_batch();
        entries := entries + r.entries; members := members + r.members; done := r.done;
        EXIT WHEN done;
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;

-- rows in account_changes (as the refresh deletes them, their ids)
CREATE FUNCTION pg_temp.account_changes() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(pg_sequence_last_value('loyalty.account_changes_change_id_seq'), 0)
$$;

-- writes to the rollup tables by this transaction so far
CREATE FUNCTION pg_temp.rollup_writes() RETURNS bigint LANGUAGE sql AS $$
    SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_xact_user_tables
    WHERE schemaname = 'loyalty' AND relname LIKE 'rollup\_%' AND relname <> 'rollup_state'
$$;

-- the history --------------------------------------------------------------------------------
SELECT loyalty.create_program('rollups-ny', expiry_period => interval '2 years') AS p \gset
UPDATE loyalty.programs SET time_zone = 'America/New_York' WHERE program_id = :p;
SELECT loyalty.create_program('rollups-utc') AS q \gset
SELECT loyalty.enroll(:p, 'pos', 'a', joined_at => '2024-12-31 23:30 America/New_York', region => 'north') AS a,
       loyalty.enroll(:p, 'web', 'b', joined_at => '2025-01-01 03:30+00') AS b,
       loyalty.enroll(:p, 'app', 'c', joined_at => now() - interval '20 days') AS c,
       loyalty.enroll(:p, 'app', 'd') AS d,
       loyalty.enroll(:q, 'pos', 'e', joined_at => '2025-03-10', region => 'south') AS e,
       loyalty.enroll(:q, 'pos', 'f') AS f \gset
-- a: purchases across 2025 (one at the turn of a month in New York time),
-- refunded, redeemed, expired
SELECT loyalty.earn(:a, 100, 'pos', 'a-1', occurred_at => '2025-01-31 23:30 America/New_York');
SELECT count(nextval(pg_get_serial_sequence('loyalty.ledger', 'entry_id'))) FROM generate_series(1, 50);  -- rolled back writes
SELECT loyalty.earn(:a, 250, 'web', 'a-2', occurred_at => '2025-02-15 12:00+00');
SELECT loyalty.earn(:a, 80, NULL, 'a-3', occurred_at => '2025-11-20 12:00+00');
SELECT loyalty.redeem(:a, 120, 'pos', 'a-r1', occurred_at => '2025-03-01 12:00+00') AS a_r1 \gset
SELECT loyalty.refund(:a, 'a-3', 30);
-- b: a purchase this month, then one in 2025 (its cohort moves back)
SELECT loyalty.earn(:b, 60, 'web', 'b-1');
SELECT loyalty.earn(:b, 40, 'pos', 'b-2', occurred_at => '2025-06-10 10:00+00');
SELECT loyalty.hold(:b, 20) AS b_h1 \gset
SELECT loyalty.release(:b_h1);
SELECT loyalty.hold(:b, 15) AS b_h2 \gset
SELECT loyalty.capture(:b_h2);
-- c and d: c absorbs d
SELECT loyalty.earn(:c, 70, 'app', 'c-1', occurred_at => now() - interval '10 days');
SELECT loyalty.earn(:d, 90, 'app', 'd-1', occurred_at => '2025-08-05 12:00+00');
SELECT loyalty.award(:d, 25, 'welcome', occurred_at => '2025-08-06 12:00+00');
SELECT loyalty.merge_members(:c, :d);
SELECT loyalty.redeem(:c, 50, 'app', 'c-r1');
-- the other program
SELECT loyalty.earn(:e, 300, 'pos', 'e-1', occurred_at => '2025-03-11 12:00+00');
SELECT loyalty.earn(:e, 10, 'pos', 'e-2', occurred_at => '2025-04-11 12:00+00');
SELECT loyalty.adjust(:e, -5, 'correction');
SELECT loyalty.adjust(:f, 12, 'goodwill');
-- a's points awarded in 2024 expire
SELECT loyalty.award(:a, 40, 'launch', occurred_at => '2024-10-01 12:00+00');
SELECT loyalty.expire_member(:a);

-- a program with tiers (by spend) and points that vest 30 days after the
-- purchase: h reaches Gold by an earn, one of its lots vests a second from
-- now, one vested a second ago; i bought a second inside the 90 days, j a
-- second outside them; n bought two seconds inside them and was refunded in
-- full (no purchase counted, its last purchase kept: active); k holds points;
-- l is closed, m never bought
SELECT loyalty.create_program('rollups-tiers') AS r \gset
UPDATE loyalty.programs SET pending_period = interval '30 days' WHERE program_id = :r;
SELECT loyalty.set_tier_policy(:r, 'spend');
SELECT loyalty.define_tier(:r, 0, 'Blue', 0), loyalty.define_tier(:r, 1, 'Silver', 100), loyalty.define_tier(:r, 2, 'Gold', 500);
SELECT loyalty.enroll(:r, 'pos', 'r-h') AS rh, loyalty.enroll(:r, 'pos', 'r-i') AS ri, loyalty.enroll(:r, 'web', 'r-j') AS rj,
       loyalty.enroll(:r, 'web', 'r-k') AS rk, loyalty.enroll(:r, 'app', 'r-l') AS rl,
       loyalty.enroll(:r, 'app', 'r-m', source_channel => 'store', region => 'west') AS rm,
       loyalty.enroll(:r, 'web', 'r-n') AS rn \gset
SELECT loyalty.earn(:rh, 600, 'pos', 'h-1', occurred_at => now() - interval '30 days' + interval '1 second');
SELECT loyalty.earn(:rh, 50, 'pos', 'h-2', occurred_at => now() - interval '30 days' - interval '1 second');
SELECT loyalty.earn(:rh, 20, 'pos', 'h-3');
SELECT loyalty.earn(:ri, 120, 'web', 'i-1', occurred_at => now() - interval '90 days' + interval '1 second');
SELECT loyalty.earn(:rj, 30, 'web', 'j-1', occurred_at => now() - interval '90 days' - interval '1 second');
SELECT loyalty.earn(:rn, 40, 'web', 'n-1', occurred_at => now() - interval '90 days' + interval '2 seconds');
SELECT loyalty.refund(:rn, 'n-1');
SELECT loyalty.earn(:rk, 200, 'app', 'k-1', occurred_at => now() - interval '40 days');
SELECT loyalty.hold(:rk, 50);
SELECT loyalty.earn(:rl, 70, 'app', 'l-1', occurred_at => now() - interval '60 days');
SELECT loyalty.set_member_status(:rl, 'closed');

SELECT ok((SELECT count(*) FROM loyalty.ledger l WHERE l.member_id = :a AND l.kind = 'expire') > 0,
          'the history has an expiry');
SELECT is((SELECT (active_members_90d, points_pending, points_held, members)::text FROM raw_kpi_summary WHERE program_id = :r),
          '(4,620,50,6)', 'the tiers program: i and n inside the 90 days and j not, h''s points vesting a second from now and not those vested, k''s hold, l closed');
SELECT is((SELECT array_agg(tier || ':' || members ORDER BY tier_rank) FROM raw_tier_distribution WHERE program_id = :r),
          ARRAY['Blue:2', 'Silver:2', 'Gold:1', 'none:1'], '... and its tiers');
SELECT is((SELECT count(*) FROM loyalty.rollup_state), 0::bigint, 'nothing refreshed yet');
SELECT * FROM pg_temp.compare('before any refresh (all from the ledger rows not counted)');

-- the first refresh ---------------------------------------------------------------------------
SELECT is((SELECT (entries, members, done)::text FROM pg_temp.refresh()),
          (SELECT (count(*), (SELECT count(*) FROM loyalty.members WHERE program_id IN (:p, :q, :r)), true)::text FROM loyalty.ledger),
          'a refresh counts every ledger row and member');
SELECT ok((SELECT last_entry FROM loyalty.rollup_state) >= (SELECT max(entry_id) FROM loyalty.ledger), 'up to the last entry');
SELECT is((SELECT count(*) FROM loyalty.rollup_changes()), 0::bigint, 'nothing is left uncounted');
SELECT is((SELECT count(*) FROM loyalty.rollup_account_changes() WHERE target = 'sums'), 0::bigint, '... no account either');
SELECT ok((SELECT count(*) FROM loyalty.rollup_member_mix) > 0
          AND NOT EXISTS (SELECT FROM loyalty.rollup_account_changes() WHERE target = 'mix'),
          '... and member_mix from its rollup alone');
SELECT ok((SELECT count(*) FROM loyalty.rollup_accounts) = (SELECT count(*) FROM loyalty.accounts)
          AND (SELECT count(*) FROM loyalty.rollup_vesting) > 0 AND (SELECT count(*) FROM loyalty.rollup_account_days) > 0,
          'the account rollups have every account, the points vesting and the days');
SELECT ok((SELECT count(*) FROM loyalty.rollup_cohorts) > 0 AND (SELECT count(*) FROM loyalty.rollup_point_months) > 0
          AND (SELECT count(*) FROM loyalty.rollup_channels) > 0, 'the rollups have rows');
SELECT * FROM pg_temp.compare('after a refresh (all from the rollups)');
SELECT is(loyalty.rollups_as_of(:p), (SELECT as_of FROM loyalty.rollup_state), 'rollups_as_of gives the watermark''s time');
SELECT ok(loyalty.rollups_as_of(:p) <= clock_timestamp(), '... a time already past');

-- more: late refunds and give-backs of last year's orders, back-dated purchases --------------
SELECT (SELECT to_jsonb(k) FROM loyalty.kpi_monthly k WHERE program_id = :p AND month = '2025-01-01') AS jan_before \gset
SELECT loyalty.reverse(:a, :a_r1, 50, reason => 'redemption partly given back');
SELECT loyalty.refund(:a, 'a-1');
SELECT isnt((SELECT to_jsonb(k) FROM loyalty.kpi_monthly k WHERE program_id = :p AND month = '2025-01-01'),
            :'jan_before'::jsonb, 'a give-back of last year''s redemption changes January 2025 (its points'' redemption rate)');
SELECT loyalty.earn(:c, 33, 'phone', 'c-2', occurred_at => '2024-11-03 12:00+00');     -- c's cohort moves back a year
SELECT loyalty.earn(:b, 5, 'web', 'b-3');
SELECT loyalty.earn(:e, 1, NULL, 'e-3', occurred_at => '2025-03-12 12:00+00');
SELECT loyalty.enroll(:q, 'web', 'g', joined_at => '2025-05-05', region => 'west') AS g \gset
-- regions set, moved and cleared (a with a purchase since, f without)
SELECT pg_temp.account_changes() AS ac0 \gset
SELECT loyalty.update_member(:f, region => 'north');
SELECT loyalty.update_member(:a, clear => ARRAY['region']);
SELECT loyalty.update_member(:e, birthday => '1990-04-01');
SELECT is(pg_temp.account_changes() - :ac0, 2::bigint,
          'a new region (set or cleared) is an account change for member_mix; a new birthday is not');
SELECT loyalty.earn(:g, 44, 'web', 'g-1', occurred_at => '2025-05-06 12:00+00');
-- a household pool (no member while a pool) dissolved: counted as joined then
SELECT loyalty.set_household_rules(:q, pool_share => 0.5);
SELECT loyalty.start_household(:e, 'E''s') AS h \gset
SELECT loyalty.earn(:e, 20, 'pos', 'e-4');
SELECT is((SELECT kind FROM loyalty.ledger WHERE member_id = :a AND reference = 'a-1' ORDER BY entry_id DESC LIMIT 1),
          'reverse', 'the refund is a reversal');
SELECT is((SELECT occurred_at FROM loyalty.ledger WHERE member_id = :a AND reference = 'a-1' ORDER BY entry_id DESC LIMIT 1),
          now(), '... dated when it is made (the views count no reversal by its date)');
SELECT * FROM pg_temp.compare('after more writes (rollups and the rows since)');
SELECT is((SELECT (entries > 0, done)::text FROM pg_temp.refresh()), '(t,t)', 'a second refresh counts the new rows');
SELECT * FROM pg_temp.compare('after the second refresh');
SELECT loyalty.dissolve_household(:h);
SELECT * FROM pg_temp.compare('with a pool dissolved since');
SELECT is((SELECT (members, done)::text FROM pg_temp.refresh()), '(1,t)', 'the dissolved pool counts as joined');
SELECT * FROM pg_temp.compare('after the third refresh');

-- accounts changed since the refresh, most without a ledger row -----------------------------------
SELECT pg_temp.rollup_writes() AS w0 \gset
SELECT loyalty.earn(:ri, 400, 'web', 'i-2');                                  -- i: Gold by the earn
SELECT is(pg_temp.rollup_writes(), :w0::bigint, 'an earn writes no rollup row (no row shared by the program)');
SELECT loyalty.set_member_status(:rj, 'closed');
SELECT loyalty.set_member_status(:rl, 'active');                              -- l reopened
SELECT loyalty.set_member_status(:rm, 'suspended');
SELECT loyalty.assign_tier(:rk, '2:Gold', reason => 'goodwill');
SELECT loyalty.erase_member(:rm);                                             -- no points: no ledger row
SELECT loyalty.award(:b, 15, 'old', occurred_at => now() - interval '3 years');
SELECT loyalty.expire_member(:b);
SELECT loyalty.update_member(:rk, region => 'east');
SELECT loyalty.merge_members(:rk, :rl);
SELECT is((SELECT count(*) FROM loyalty.account_changes), 8::bigint,
          'the status, tier and region changes are in account_changes (i''s upgrade, j, l, m twice, k twice, l merged away)');
SELECT * FROM pg_temp.compare('after status and tier changes since the refresh');
SELECT is((SELECT (done)::text FROM pg_temp.refresh()), 'true', 'a fourth refresh');
SELECT is((SELECT count(*) FROM loyalty.account_changes), 0::bigint, '... deletes the account changes it counted');
SELECT * FROM pg_temp.compare('after the fourth refresh');
-- a review lowers the tiers whose purchases aged out (set-based, no ledger row)
SELECT ok((SELECT sum(changed) FROM loyalty.review_tiers_batch(:r, now() + interval '13 months', 0, 1000)) > 0,
          'a review a year on lowers tiers');
SELECT * FROM pg_temp.compare('after a tier review since the refresh');
SELECT is((SELECT (done)::text FROM pg_temp.refresh()), 'true', 'a fifth refresh');
SELECT * FROM pg_temp.compare('after the fifth refresh');
-- a reader whose transaction began before the counted vesting points' bound
-- (as if a refresh had run since): points_pending from the lots
UPDATE loyalty.rollup_state SET vesting_from = now() + interval '1 hour';
SELECT * FROM pg_temp.compare('for a reader older than the vesting bound');
UPDATE loyalty.rollup_state SET vesting_from = now() - interval '1 day';

-- nothing new: nothing written ------------------------------------------------------------------
SELECT pg_temp.rollup_writes() AS w0 \gset
SELECT is((SELECT (entries, members, done)::text FROM pg_temp.refresh()), '(0,0,t)', 'a refresh with nothing new');
SELECT is(pg_temp.rollup_writes(), :w0::bigint, '... writes no rollup row');

-- small batches add up to the same ---------------------------------------------------------------
DELETE FROM loyalty.rollup_days; DELETE FROM loyalty.rollup_channels; DELETE FROM loyalty.rollup_cohorts;
DELETE FROM loyalty.rollup_point_months; DELETE FROM loyalty.rollup_returns;
DELETE FROM loyalty.rollup_pools; DELETE FROM loyalty.rollup_accounts; DELETE FROM loyalty.rollup_vesting;
DELETE FROM loyalty.rollup_account_sums; DELETE FROM loyalty.rollup_account_days; DELETE FROM loyalty.rollup_member_mix;
DELETE FROM loyalty.rollup_state;
-- (batches of 3 ids; a gap of 50 ids rolled back lies in the history)
CREATE FUNCTION pg_temp.refresh_in_batches(n bigint, OUT most bigint, OUT total bigint, OUT empty integer)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    calls integer := 0;
BEGIN
    most := 0; total := 0; empty := 0;
    LOOP
        SELECT * INTO r FROM loyalty.refresh_rollups_batch(n);
        most := greatest(most, r.entries); total := total + r.entries; calls := calls + 1;
        EXIT WHEN r.done OR calls > 1000;
        IF r.entries = 0 THEN
            empty := empty + 1;
        END IF;
    END LOOP;
END $$;
SELECT is((SELECT (most, total, empty)::text FROM pg_temp.refresh_in_batches(3)),
          (SELECT (3, count(*), 0)::text FROM loyalty.ledger),
          'batches of at most 3 entries count every entry once, none spent on a gap of ids');
SELECT ok((SELECT last_entry FROM loyalty.rollup_state) >= (SELECT max(entry_id) FROM loyalty.ledger), '... reach the end');
SELECT * FROM pg_temp.compare('rebuilt in batches of 3 entries');

-- arguments and rights ----------------------------------------------------------------------------
SELECT throws_ok('SELECT loyalty.refresh_rollups_batch(0)', '22023', NULL, 'a batch of 0 entries is refused');
SELECT throws_ok('SELECT loyalty.rollups_as_of(NULL)', '22004', NULL, 'rollups_as_of(NULL) is refused');
SELECT throws_ok('CALL loyalty.refresh_rollups()', '2D000', NULL, 'the procedure commits, so it refuses a transaction block');

-- the merge of a buyer's months and channels ------------------------------------------------------
SELECT is(loyalty.rollup_array_union('{2026-01-01,2026-03-01}'::date[], '{2025-12-01,2026-03-01,2026-04-01}'),
          '{2025-12-01,2026-01-01,2026-03-01,2026-04-01}'::date[], 'months: merged ascending, each once');
SELECT is(loyalty.rollup_array_union('{pos,web}'::text[] COLLATE "C", '{app,web}'), '{app,pos,web}'::text[],
          'channels: merged in the collation''s order');
SELECT is(loyalty.rollup_array_union(NULL::date[], '{2026-01-01}'), '{2026-01-01}'::date[], 'a buyer not counted yet: the new months');
SELECT is(loyalty.rollup_array_union('{}'::text[], '{}'), '{}'::text[], 'two empty arrays: empty');
SELECT is(loyalty.rollup_array_union(NULL, '{web,app,web}'::text[] COLLATE "C")
          || loyalty.rollup_array_union('{web,app,web}'::text[] COLLATE "C", NULL),
          '{app,web,app,web}'::text[], 'a day''s channels in any order, a buyer without any before: sorted, each once');
SELECT is(loyalty.rollup_array_union(NULL::date[], NULL), NULL, 'two NULLs: NULL');
SELECT is(loyalty.rollup_array_union('{c,a,c}'::text[] COLLATE "C", '{b,a}'), '{a,b,c}'::text[],
          'arrays not in order: sorted, each once');
SELECT throws_ok($$SELECT loyalty.rollup_array_union('{a,NULL}'::text[], '{b}')$$, '22004', NULL, 'an array with a null is refused');
SELECT throws_ok($$SELECT loyalty.rollup_array_union('{{1,2},{3,4}}'::int[], '{5}')$$, '2202E', NULL, 'a multidimensional array is refused');

-- the sessions the refresh waits for: this database's, of unknown database, not autovacuum
SELECT is(ARRAY[loyalty.rollup_may_write((SELECT oid FROM pg_database WHERE datname = current_database()), 'client backend'),
                loyalty.rollup_may_write(NULL, NULL),
                loyalty.rollup_may_write((SELECT oid FROM pg_database WHERE datname = 'template1'), 'client backend'),
                loyalty.rollup_may_write((SELECT oid FROM pg_database WHERE datname = current_database()), 'autovacuum worker')],
          ARRAY[true, true, false, false], 'the refresh waits for this database''s sessions only, not autovacuum');

SELECT * FROM finish();
ROLLBACK;
