-- Coupons on a Citus cluster: campaigns and codes are reference tables (one
-- row per code, locked on every node), uses are per member on its shard;
-- the last use of a code and a campaign's budget hold across shards.
-- Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(10);

SELECT loyalty.create_program('tap-coupons') AS p \gset
CREATE TEMP TABLE cm AS SELECT loyalty.enroll(:p, 'app', 'coupon-' || g) AS m FROM generate_series(1, 8) g;
SELECT a.m AS a, b.m AS b FROM cm a, cm b
WHERE get_shard_id_for_distribution_column('loyalty.members', a.m)
      <> get_shard_id_for_distribution_column('loyalty.members', b.m)
ORDER BY a.m, b.m LIMIT 1 \gset
SELECT loyalty.create_coupon_campaign(:p, 'tap-once', 'bonus_points', 25, code => 'TAPONE', uses_per_code => 1) AS c1 \gset
SELECT loyalty.redeem_coupon(:a, 'tapone', reference => 'tap-o1', idempotency_key => 'tap-k1') AS r1 \gset
SELECT loyalty.redeem_coupon(:a, 'tapone', reference => 'tap-o1', idempotency_key => 'tap-k1') AS r1_again \gset
SELECT is(:r1_again::bigint, :r1::bigint, 'a replayed redemption');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L)', :b, 'TAPONE'), 'LY071', NULL,
                 'the code used up, seen from the other shard''s member');
SELECT loyalty.capture_coupon(:a, :r1) AS pts \gset
SELECT is(:pts::bigint, 25::bigint, 'captured: 25 points');
SELECT loyalty.release_coupon(:a, :r1) AS st \gset
SELECT is(:'st'::text, 'reversed', 'given back');
SELECT loyalty.redeem_coupon(:b, 'TAPONE') IS NOT NULL AS ok_b \gset
SELECT ok(:'ok_b'::boolean, 'then usable by the member on the other shard');
SELECT loyalty.create_coupon_campaign(:p, 'tap-budget', 'amount_off', 10, budget => 15) AS c2 \gset
SELECT count(*) FROM loyalty.generate_coupon_codes(:c2, 2, 'TB');
SELECT loyalty.redeem_coupon(:a, (SELECT min(code) FROM loyalty.coupon_codes WHERE campaign_id = :c2), 30) IS NOT NULL AS ok_a \gset
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 30)', :b,
                        (SELECT max(code) FROM loyalty.coupon_codes WHERE campaign_id = :c2)),
                 'LY071', NULL, 'the campaign''s budget across shards');
SELECT loyalty.tag_member(:b, 'tap-vip');
SELECT loyalty.create_coupon_campaign(:p, 'tap-vip', 'bonus_points', 5, code => 'TAPVIP', tags => '{tap-vip}');
SELECT loyalty.validate_coupon(:a, 'TAPVIP') ->> 'reason' AS ra, loyalty.validate_coupon(:b, 'TAPVIP') ->> 'valid' AS vb \gset
SELECT is(:'ra' || ' ' || :'vb', 'tag true', 'a campaign for tagged members: the tag on the member''s shard');
-- a merge across shards: the absorbed member's use counts toward the
-- survivor's limit, and its redemption replays on the survivor
SELECT loyalty.create_coupon_campaign(:p, 'tap-member', 'amount_off', 5, code => 'TAPMEM', uses_per_member => 1) AS c3 \gset
SELECT loyalty.redeem_coupon(:b, 'TAPMEM', 20, reference => 'tap-m1', idempotency_key => 'tap-mk') AS rm \gset
SELECT loyalty.capture_coupon(:b, :rm);
SELECT loyalty.merge_members(:a, :b) IS NOT NULL AS merged;
SELECT is(loyalty.validate_coupon(:a, 'TAPMEM', 20) ->> 'reason', 'member_limit',
          'a merge across shards: the absorbed member''s use counts toward the survivor''s limit');
SELECT is(loyalty.redeem_coupon(:a, 'TAPMEM', 20, reference => 'tap-m1', idempotency_key => 'tap-mk'), :rm::bigint,
          '... and its redemption replays on the survivor');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
