-- Households on a Citus cluster: the members live on different shards; the
-- household (a reference table) is locked first, then each member on its
-- shard, and household_redeem (its first argument is not named member, so it
-- runs on the coordinator) writes each member's share on that member's shard.
-- Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(5);

SELECT loyalty.create_program('tap-home') AS p \gset
CREATE TEMP TABLE hm AS SELECT loyalty.enroll(:p, 'app', 'home-' || g) AS m FROM generate_series(1, 8) g;
SELECT a.m AS a, b.m AS b FROM hm a, hm b
WHERE get_shard_id_for_distribution_column('loyalty.members', a.m)
      <> get_shard_id_for_distribution_column('loyalty.members', b.m)
ORDER BY a.m, b.m LIMIT 1 \gset
SELECT loyalty.award(:a, 50, 'seed', expires_at => now() + interval '20 days');
SELECT loyalty.award(:b, 50, 'seed', expires_at => now() + interval '10 days');
SELECT loyalty.start_household(:a) AS h \gset
SELECT loyalty.add_household_member(:h, :b);
SELECT loyalty.household_redeem(:a, 70, idempotency_key => 'home-1') AS r \gset
SELECT loyalty.household_redeem(:a, 70, idempotency_key => 'home-1') AS r_again \gset
SELECT is(:r_again::bigint, :r::bigint, 'a replayed household redemption');
SELECT balance::bigint AS ba FROM loyalty.accounts WHERE member_id = :a \gset
SELECT balance::bigint AS bb FROM loyalty.accounts WHERE member_id = :b \gset
SELECT is(ARRAY[:ba, :bb]::bigint[], ARRAY[30, 0]::bigint[], 'first to expire first across two shards');
SELECT members::bigint AS n, household_redemptions::bigint AS red FROM loyalty.household_summary WHERE household_id = :h \gset
SELECT is(ARRAY[:n, :red]::bigint[], ARRAY[2, 70]::bigint[], 'the household summary');
SELECT loyalty.dissolve_household(:h) AS left_ \gset
SELECT is(:left_::integer, 2, 'dissolved');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
