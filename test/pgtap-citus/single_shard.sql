-- Member-first calls on a Citus cluster touch one shard per statement: with
-- citus.multi_task_query_log_level = error any statement Citus splits into
-- several tasks (one per shard) fails.  Inside one transaction from the
-- coordinator, so no call is delegated and every statement of the functions
-- is planned here.  Covers balance() (its holds part ran on every shard),
-- the readers, tiers, reward redemption (the voucher check scanned every
-- member's redemptions) and referrals (a recursive query across members).
-- Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(17);

SELECT loyalty.create_program('tap-shard', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'shard-1') AS m1 \gset
SELECT loyalty.enroll(:p, 'pos', 'shard-2') AS m2 \gset
SELECT loyalty.enroll(:p, 'pos', 'shard-3') AS m3 \gset

-- the readers first (before any tier or rule exists)
SET LOCAL citus.multi_task_query_log_level = error;
SELECT loyalty.earn(:m1, 100) \g /dev/null
SELECT loyalty.hold(:m1, '15') \g /dev/null
SELECT is((SELECT available::bigint FROM loyalty.balance(:m1)), 85::bigint, 'balance(): available');
SELECT is((SELECT held::bigint FROM loyalty.balance(:m1)), 15::bigint, 'balance(): held');
SELECT is(loyalty.balance_at(:m1, now())::bigint, 85::bigint, 'balance_at()');
SELECT is((SELECT count(*) FROM loyalty.history(:m1)), 2::bigint, 'history()');
RESET citus.multi_task_query_log_level;

SELECT loyalty.set_tier_policy(:p, 'spend') \g /dev/null
SELECT loyalty.define_tier(:p, 1, 'Silver', 50, earn_multiplier => 2) \g /dev/null
SELECT loyalty.create_earning_rule(:p, 'tap bonus', 'bonus', bonus_points => '5') \g /dev/null
SELECT loyalty.create_reward(:p, 'TAP-PEN', 'Pen', '10') AS pen \gset
SELECT loyalty.set_referral_rules(:p, '30', '20') \g /dev/null
-- referral codes are distributed by code: finding a member's code reads
-- every shard of loyalty.referral_codes (so it is not checked below)
SELECT loyalty.referral_code(:m1) AS c1, loyalty.referral_code(:m2) AS c2, loyalty.referral_code(:m3) AS c3 \gset

SET LOCAL citus.multi_task_query_log_level = error;
-- 10 + bonus 5; the tier is evaluated after the earn: 110 spent is Silver
SELECT is(loyalty.earn(:m1, 10)::bigint, 15::bigint, 'earn with a rule and a tier ladder');
SELECT is(loyalty.tier_metric(:m1)::bigint, 110::bigint, 'tier_metric()');
SELECT is(loyalty.qualified_tier(:m1)::text, '1:Silver', 'qualified_tier()');
SELECT is((SELECT tier::text FROM loyalty.evaluate_tier(:m1)), '1:Silver', 'evaluate_tier(): upgraded by the earn');
SELECT is(loyalty.earn(:m1, 10)::bigint, 25::bigint, 'the next earn has the Silver multiplier');

SELECT * INTO TEMP r1 FROM loyalty.redeem_reward(:m1, :pen, 'tap-r1');
SELECT matches((SELECT voucher FROM r1), '^' || upper(to_hex(:m1::bigint)) || '-[0-9A-F]{16}$',
               'redeem_reward(): the voucher starts with the member id');
SELECT is((SELECT voucher FROM loyalty.redeem_reward(:m1, :pen, 'tap-r1')), (SELECT voucher FROM r1),
          'redeem_reward(): a replay returns the first voucher');
SELECT is(loyalty.cancel_redemption(:m1, (SELECT redemption_id FROM r1))::bigint, 10::bigint, 'cancel_redemption()');

SELECT is(loyalty.refer(:m2, :'c1'), :m1::bigint, 'refer(): m1 refers m2');
SELECT is(loyalty.refer(:m3, :'c2'), :m2::bigint, 'refer(): m2 refers m3');
SELECT throws_ok(format('SELECT loyalty.refer(%s, %L)', :m2, :'c3'), 'LY020',
                 format('referral refused: member %s was already referred', :m2), 'a second referrer is refused');
SELECT is(loyalty.earn(:m3, 60)::bigint, 65::bigint, 'm3''s first purchase ...');
SELECT count(*) AS n2 FROM loyalty.ledger WHERE member_id = :m2 AND kind = 'award' \gset
SELECT count(*) AS n3 FROM loyalty.ledger WHERE member_id = :m3 AND kind = 'award' \gset
SELECT is(:n2::bigint + :n3::bigint, 2::bigint, '... pays the referral bonuses to both');

SELECT * FROM finish();
ROLLBACK;
