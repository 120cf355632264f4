-- Household pools on a Citus cluster: the pool is an account of its own, on
-- its own shard; an earn credits it after the earner, a refund takes the
-- share back, household_redeem spends it, and dissolving splits it across
-- shards.  Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(6);

SELECT loyalty.create_program('tap-pool') AS p \gset
SELECT loyalty.set_household_rules(:p, pool_share => 0.5);
CREATE TEMP TABLE pm AS SELECT loyalty.enroll(:p, 'app', 'pool-' || g) AS m FROM generate_series(1, 8) g;
SELECT a.m AS a, b.m AS b FROM pm a, pm b
WHERE get_shard_id_for_distribution_column('loyalty.members', a.m)
      <> get_shard_id_for_distribution_column('loyalty.members', b.m)
ORDER BY a.m, b.m LIMIT 1 \gset
SELECT loyalty.start_household(:a) AS h \gset
SELECT loyalty.add_household_member(:h, :b);
SELECT pool_member AS pool FROM loyalty.households WHERE household_id = :h \gset
SELECT loyalty.earn(:a, 100, reference => 'pool-o1'), loyalty.earn(:b, 40, reference => 'pool-o2');
SELECT balance::bigint AS bp FROM loyalty.accounts WHERE member_id = :pool \gset
SELECT is(:bp::bigint, 70::bigint, 'both members'' earns fed the pool (members and pool on their shards)');
SELECT loyalty.refund(:b, 'pool-o2', 20);
SELECT balance::bigint AS bp FROM loyalty.accounts WHERE member_id = :pool \gset
SELECT is(:bp::bigint, 60::bigint, 'a half refund took half the share back');
SELECT loyalty.household_redeem(:b, 30, idempotency_key => 'pool-r1') AS r \gset
SELECT loyalty.household_redeem(:b, 30, idempotency_key => 'pool-r1') AS r_again \gset
SELECT is(:r_again::bigint, :r::bigint, 'a replayed redemption from the pool');
SELECT pool_points::bigint AS pp FROM loyalty.household_summary WHERE household_id = :h \gset
SELECT is(:pp::bigint, 30::bigint, 'the summary shows the pool');
-- contributions 50 and 10: 25 and 5 of the 30 left
SELECT loyalty.dissolve_household(:h);
SELECT array_agg(points::bigint ORDER BY member_id)::text AS parts FROM loyalty.ledger
WHERE kind = 'transfer' AND details ->> 'household' = :'h' AND points::bigint > 0 \gset
SELECT is(:'parts'::text, '{25,5}'::text, 'the pool split by contributions across shards');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
