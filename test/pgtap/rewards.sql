-- Rewards: catalog checks (window, tier gate, per-member limit, stock), the
-- voucher, cancellation back to the same lots and stock, idempotent replay,
-- money off an order within the program's limits.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(29);

SELECT loyalty.create_program('rw', point_value => 0.01, expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'app', 'rw-1') AS m \gset
SELECT loyalty.enroll(:p, 'app', 'rw-2') AS m2 \gset
SELECT loyalty.award(:m, '300', 'old points', expires_at => now() + interval '10 days');
SELECT loyalty.award(:m, '1000', 'new points', expires_at => now() + interval '300 days');
SELECT loyalty.award(:m2, '50', 'a few');

SELECT loyalty.create_reward(:p, 'MUG', 'Coffee mug', '400', stock => 2, per_member_limit => 1) AS mug \gset
SELECT loyalty.create_reward(:p, 'LOUNGE', 'Lounge pass', '100', min_tier => '2:Gold') AS lounge \gset
SELECT loyalty.create_reward(:p, 'XMAS', 'Christmas box', '100', valid_from => now() + interval '20 days') AS xmas \gset
SELECT loyalty.create_reward(:p, 'FREE', 'Sticker', '10') AS sticker \gset

CREATE TEMP TABLE snap AS SELECT (SELECT count(*) FROM loyalty.ledger) AS entries,
    (SELECT stock FROM loyalty.rewards WHERE reward_id = :mug) AS stock;

SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :lounge), 'LY012', NULL, 'a tier-gated reward needs the tier');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :xmas), 'LY011', NULL, 'a reward outside its window is refused');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m2, :mug), 'LY001', NULL, 'too few points: LY001');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, 999999)', :m), 'P0002', NULL, 'an unknown reward is refused');
SELECT is((SELECT (SELECT count(*) FROM loyalty.ledger) = entries AND
                  (SELECT stock FROM loyalty.rewards WHERE reward_id = :mug) = stock FROM snap), true,
          'refusals changed nothing (ledger, stock)');

SELECT * INTO TEMP r1 FROM loyalty.redeem_reward(:m, :mug, idempotency_key => 'k-mug');
SELECT is((SELECT points::bigint FROM r1), 400::bigint, 'the mug costs 400 points');
SELECT matches((SELECT voucher FROM r1), '^' || upper(to_hex(:m::bigint)) || '-[0-9A-F]{16}$',
               'a voucher code is issued: the member id in hex, a dash, 16 random hex digits');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :mug), 1::bigint, 'one unit left in stock');
SELECT results_eq(format($$SELECT lot_id, remaining::bigint FROM loyalty.lots WHERE member_id = %s ORDER BY expires_at$$, :m),
                  format($$VALUES ((SELECT min(lot_id) FROM loyalty.lots WHERE member_id = %s), 0::bigint),
                                  ((SELECT max(lot_id) FROM loyalty.lots WHERE member_id = %s), 900::bigint)$$, :m, :m),
                  'the points came from the soonest-expiring lot first');
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :m AND kind = 'reward.redeemed'), 1::bigint,
          'reward.redeemed is emitted');

-- replay
SELECT is((SELECT redemption_id FROM loyalty.redeem_reward(:m, :mug, idempotency_key => 'k-mug')), (SELECT redemption_id FROM r1),
          'a replay returns the first redemption');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :mug), 1::bigint, '... and takes no second unit');
SELECT throws_ok(format($$SELECT * FROM loyalty.redeem_reward(%s, %s, idempotency_key => 'k-mug')$$, :m, :sticker), 'LY002', NULL,
                 'the same key for another reward is refused');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :mug), 'LY013', NULL, 'the per-member limit holds');

-- cancel: points back to the same lots, unit back to stock
SELECT is(loyalty.cancel_redemption(:m, (SELECT redemption_id FROM r1))::bigint, 400::bigint, 'cancelling gives the 400 points back');
SELECT results_eq(format($$SELECT remaining::bigint FROM loyalty.lots WHERE member_id = %s ORDER BY expires_at$$, :m),
                  $$VALUES (300::bigint), (1000::bigint)$$, '... to the lots they came from');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :mug), 2::bigint, '... and the unit to stock');
SELECT throws_ok(format('SELECT loyalty.cancel_redemption(%s, %s)', :m, (SELECT redemption_id FROM r1)), '55000', NULL,
                 'a cancelled redemption cannot be cancelled again');
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :mug), 'after cancelling, the limit allows a new one');

-- stock runs out
SELECT loyalty.award(:m2, '1000', 'more');
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m2, :mug), 'the last unit goes to m2');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :mug), 0::bigint, 'the mug is sold out');
SELECT is(loyalty.restock_reward(:mug, 5), 5::bigint, 'restocking adds units');
SELECT throws_ok(format('SELECT loyalty.restock_reward(%s, -6)', :mug), '22023', NULL, 'stock never goes below zero');

-- tier gate passes with the tier
UPDATE loyalty.accounts SET tier = '2:Gold' WHERE member_id = :m;
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :lounge), 'a Gold member gets the lounge pass');

-- money off an order
SELECT loyalty.set_redemption_rules(:p, min_points => '100', max_points => '500', max_share_of_order => 0.5);
SELECT is(loyalty.redeem_for_discount(:m, 20.00, '200', 'order-9'), 2.00, '200 points pay 2.00 of an order');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 20.00, '50')$$, :m), '22023',
                 'at least 100 points must be redeemed on an order, got 50', 'below the minimum');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 200.00, '600')$$, :m), '22023',
                 'at most 500 points can be redeemed on an order, got 600', 'above the maximum');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 5.00, '300')$$, :m), '22023', NULL,
                 'above the share of the order');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
SELECT * FROM finish();
ROLLBACK;
