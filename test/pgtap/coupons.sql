-- Coupons: campaigns with a public code or generated single-use codes,
-- validate_coupon (why, and what, writing nothing), redeem_coupon's hold,
-- capture (bonus points credited) and release (a refunded order's points
-- taken back), the limits per code, member and campaign, budgets, stacking,
-- conditions on channel, basket and lines.  Runs with either store.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(69);

SELECT loyalty.create_program('coupons') AS p \gset
SELECT loyalty.enroll(:p, 'app', 'ann') AS ann, loyalty.enroll(:p, 'app', 'bob') AS bob,
       loyalty.enroll(:p, 'app', 'cy') AS cy \gset

-- a public code --------------------------------------------------------------------------------
SELECT loyalty.create_coupon_campaign(:p, 'spring', 'percent_off', 25, code => 'spring-25', min_basket => 50,
                                      valid_until => now() + interval '30 days', uses_per_member => 1) AS spring \gset
SELECT is((SELECT code FROM loyalty.coupon_codes WHERE campaign_id = :spring), 'SPRING25', 'the code is kept in capitals');
SELECT is(loyalty.validate_coupon(:ann, 'spring25', 100) - 'campaign_id',
          '{"valid": true, "reason": null, "code": "SPRING25", "campaign": "spring", "offer": "percent_off",
            "eligible_amount": 100, "discount": 25.00, "points": 0, "free_item": null}'::jsonb,
          'validate_coupon: it applies, and gives 25 off');
SELECT is(loyalty.validate_coupon(:ann, 'SPRING25', 40) ->> 'reason', 'min_basket', 'below the minimum basket');
SELECT is(loyalty.validate_coupon(:ann, 'WINTER', 100) ->> 'reason', 'unknown_code', 'an unknown code');
SELECT is((SELECT count(*) FROM loyalty.coupon_redemptions), 0::bigint, 'validating writes nothing');

SELECT loyalty.redeem_coupon(:ann, 'Spring 25', 100, reference => 'o-1', idempotency_key => 'c-1') AS r1 \gset
SELECT is((SELECT (status, discount, code)::text FROM loyalty.coupon_redemptions WHERE redemption_id = :r1),
          '(held,25.00,SPRING25)', 'redeem_coupon holds a use');
SELECT is(loyalty.redeem_coupon(:ann, 'Spring 25', 100, reference => 'o-1', idempotency_key => 'c-1'), :r1::bigint,
          'a replay returns the same use');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 120, reference => %L, idempotency_key => %L)',
                        :ann, 'SPRING25', 'o-1', 'c-1'), 'LY002', NULL, 'the key with another basket');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 100, reference => %L)', :ann, 'SPRING25', 'o-2'),
                 'LY071', 'coupon cannot be used: member limit', 'once per member');
SELECT is((SELECT (uses, spent)::text FROM loyalty.coupon_campaigns WHERE campaign_id = :spring), '(1,25.00)',
          'the campaign counts the held use and its cost');
SELECT is(loyalty.capture_coupon(:ann, :r1), 0::bigint, 'captured with the order (no points: a discount)');
SELECT is(loyalty.capture_coupon(:ann, :r1), 0::bigint, 'a second capture changes nothing');
SELECT is((SELECT payload ->> 'code' FROM loyalty.events WHERE kind = 'coupon.redeemed' AND member_id = :ann), 'SPRING25',
          'a coupon.redeemed event');
SELECT is(loyalty.release_coupon(:ann, :r1, 'order o-1 refunded'), 'reversed', 'the order refunded: the use is reversed');
SELECT is((SELECT (uses, spent)::text FROM loyalty.coupon_campaigns WHERE campaign_id = :spring), '(0,0.00)',
          '... and given back');
SELECT is(loyalty.release_coupon(:ann, :r1), 'reversed', 'a second release changes nothing');
SELECT lives_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 100, reference => %L)', :ann, 'SPRING25', 'o-3'),
                'the member may use it again');

-- generated single-use codes with bonus points ------------------------------------------------------
SELECT loyalty.create_coupon_campaign(:p, 'welcome', 'bonus_points', 50) AS welcome \gset
CREATE TEMP TABLE codes AS SELECT * FROM loyalty.generate_coupon_codes(:welcome, 3, 'W', 8) c(code);
SELECT is((SELECT count(DISTINCT code) FROM codes), 3::bigint, 'three unique codes');
SELECT ok((SELECT bool_and(code ~ '^W[0-9A-HJKMNP-TV-Z]{9}$' AND right(code, 1) = loyalty.coupon_check_char(left(code, 9)))
           FROM codes), 'prefix, 8 characters of Crockford base 32 and a check character');
SELECT is((SELECT array_agg(max_uses) FROM loyalty.coupon_codes WHERE campaign_id = :welcome), ARRAY[1, 1, 1],
          'single use each');
SELECT min(code) AS w1 FROM codes \gset
SELECT is(loyalty.coupon_check_char('W0000000A'), loyalty.coupon_check_char('W0000000A'), 'the check is a function of the code');
SELECT isnt(loyalty.coupon_check_char('W0000000A'), loyalty.coupon_check_char('W0000000B'), 'a changed character changes it');
SELECT throws_ok(format('SELECT loyalty.generate_coupon_codes(%s, 1000, %L, 4)', :welcome, 'W'), '22023', NULL,
                 'too short codes for so many are refused (guessable)');
SELECT throws_ok(format('SELECT loyalty.generate_coupon_codes(%s, 1, %L)', :welcome, 'LOU'), '22023', NULL,
                 'a prefix outside the alphabet');

SELECT loyalty.redeem_coupon(:bob, lower(:'w1'), reference => 'b-1') AS rb \gset
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, reference => %L)', :cy, :'w1', 'c-1'), 'LY071',
                 'coupon cannot be used: used up', 'a single-use code held by another member');
SELECT is(loyalty.release_coupon(:bob, :rb), 'released', 'the checkout abandoned: released');
SELECT loyalty.redeem_coupon(:cy, :'w1', reference => 'c-1') AS rc \gset
SELECT is(loyalty.capture_coupon(:cy, :rc), 50::bigint, 'the code used by another member, captured: 50 points');
SELECT is((SELECT (kind, points::bigint, reference)::text FROM loyalty.ledger WHERE member_id = :cy),
          '(award,50,c-1)', 'an award under the order''s reference');
SELECT is(loyalty.release_coupon(:cy, :rc), 'reversed', 'refunded');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :cy), 0::bigint, 'the points are taken back');

-- an overdue hold gives its use back ----------------------------------------------------------------
SELECT min(code) AS w2 FROM codes WHERE code > :'w1' \gset
SELECT loyalty.redeem_coupon(:bob, :'w2') AS rh \gset
-- (the clock does not move inside this transaction: the hold is made overdue by hand)
UPDATE loyalty.coupon_redemptions SET expires_at = now() - interval '1 second' WHERE redemption_id = :rh;
SELECT throws_ok(format('SELECT loyalty.capture_coupon(%s, %s)', :bob, :rh), 'LY003', NULL, 'an overdue hold is not captured');
SELECT lives_ok(format('SELECT loyalty.redeem_coupon(%s, %L)', :cy, :'w2'), 'another member gets the code');
SELECT is((SELECT status FROM loyalty.coupon_redemptions WHERE redemption_id = :rh), 'expired', 'the overdue hold expired');

-- budgets, campaign limits, stacking -----------------------------------------------------------------
SELECT loyalty.create_coupon_campaign(:p, 'tenner', 'amount_off', 10, code => 'TEN', budget => 15, combinable => true) AS ten \gset
SELECT loyalty.redeem_coupon(:ann, 'TEN', 30, reference => 'o-9') IS NOT NULL AS used \gset
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 30)', :bob, 'TEN'), 'LY071',
                 'coupon cannot be used: budget exhausted', 'the campaign''s budget');
SELECT loyalty.create_coupon_campaign(:p, 'pair', 'amount_off', 5, code => 'PAIR', max_uses => 1, combinable => true) AS pair \gset
SELECT lives_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 30, reference => %L)', :ann, 'PAIR', 'o-9'),
                'two combinable coupons on one order');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 30)', :bob, 'PAIR'), 'LY071',
                 'coupon cannot be used: campaign limit', 'the campaign''s number of uses');
SELECT is(loyalty.validate_coupon(:ann, 'SPRING25', 100, reference => 'o-9') ->> 'reason', 'not_combinable',
          'a coupon that does not combine, on an order that has coupons');
SELECT is(loyalty.validate_coupon(:ann, 'TEN', 100, reference => 'o-9') ->> 'reason', 'already_applied',
          'nor the same campaign twice');

-- conditions: channel, lines, multiplier ----------------------------------------------------------------
SELECT loyalty.create_coupon_campaign(:p, 'books', 'percent_off', 10, code => 'READ', categories => '{books}',
                                      channels => '{app}');
SELECT is(loyalty.validate_coupon(:bob, 'READ', 100, channel => 'pos') ->> 'reason', 'channel', 'not on this channel');
SELECT is(loyalty.validate_coupon(:bob, 'READ', 100, channel => 'app') ->> 'reason', 'no_eligible_items',
          'an amount without lines has no books');
SELECT is(loyalty.validate_coupon(:bob, 'READ', NULL, '[{"category": "books", "amount": 30}, {"category": "food", "amount": 70}]',
                                  'app') ->> 'discount', '3.00', 'ten percent of the books only');
SELECT loyalty.create_coupon_campaign(:p, 'double', 'points_multiplier', 2, code => 'DOUBLE');
SELECT is(loyalty.validate_coupon(:bob, 'DOUBLE', 80) ->> 'points', '80', 'double points: 80 more on 80');

-- ceilings: the coupons of an order, and earning rules that stack ------------------------------------------
SELECT loyalty.set_stacking_rules(:p, max_coupon_share => 0.1);
SELECT is(loyalty.validate_coupon(:bob, 'SPRING25', 100) ->> 'reason', 'order_ceiling',
          'a quarter off is above a ceiling of a tenth of the order');
SELECT is(loyalty.validate_coupon(:bob, 'DOUBLE', 100) ->> 'valid', 'true',
          'points count at their value: 100 more points worth 1.00 are within it');
SELECT loyalty.set_stacking_rules(:p);
SELECT throws_ok(format('SELECT loyalty.set_stacking_rules(%s, max_earn_multiplier => 0.5)', :p), '22023', NULL,
                 'a ceiling below the base rate');
SELECT loyalty.create_program('stacked') AS q \gset
SELECT loyalty.enroll(:q, 'app', 'dee') AS dee \gset
SELECT loyalty.create_earning_rule(:q, 'triple week', 'multiply', multiplier => 3);
SELECT loyalty.create_earning_rule(:q, 'own brand', 'multiply', multiplier => 2);
SELECT is(loyalty.earn(:dee, 10), 60::bigint, 'two multipliers stack: 6 times the base');
SELECT loyalty.set_stacking_rules(:q, max_earn_multiplier => 4);
SELECT is(loyalty.earn(:dee, 10, reference => 'capped'), 40::bigint, 'with a ceiling of 4: 40');
SELECT is((SELECT details -> 'ceiling' FROM loyalty.ledger WHERE member_id = :dee AND reference = 'capped'),
          '{"max_multiplier": 4, "points_before": 60}'::jsonb, 'the explanation says it was capped, from what');

-- with the order: a refund in full gives the coupon back; the order trigger's coupon column ---------------
SELECT loyalty.earn(:bob, 80, reference => 'b-9');
SELECT loyalty.capture_coupon(:bob, loyalty.redeem_coupon(:bob, 'DOUBLE', 80, reference => 'b-9')) AS bonus \gset
SELECT loyalty.refund(:bob, 'b-9', 40);
SELECT is((SELECT status FROM loyalty.coupon_redemptions WHERE member_id = :bob AND reference = 'b-9'), 'captured',
          'a partial refund keeps the coupon');
SELECT loyalty.refund(:bob, 'b-9');
SELECT is((SELECT status FROM loyalty.coupon_redemptions WHERE member_id = :bob AND reference = 'b-9'), 'reversed',
          'the refund of the rest gives it back');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :bob), 0::bigint,
          '... with its 80 bonus points and the purchase''s');

SELECT loyalty.create_coupon_campaign(:p, 'bonus', 'bonus_points', 20, code => 'BONUS', uses_per_member => 5);
CREATE TEMP TABLE orders (id bigint PRIMARY KEY, customer bigint, total numeric NOT NULL,
                          status text NOT NULL DEFAULT 'paid', coupon text);
CREATE TRIGGER loyalty_row AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'coupon=coupon');
INSERT INTO orders VALUES (1, :cy, 50, 'paid', 'bonus');
SELECT is((SELECT (status, reference, points)::text FROM loyalty.coupon_redemptions WHERE member_id = :cy AND code = 'BONUS'),
          '(captured,1,20)', 'an order with a coupon uses it with the sale');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :cy), 70::bigint, 'the purchase''s 50 and the coupon''s 20');
UPDATE orders SET status = 'cancelled' WHERE id = 1;
SELECT is((SELECT (r.status, a.balance::bigint)::text FROM loyalty.coupon_redemptions r JOIN loyalty.accounts a USING (member_id)
           WHERE r.member_id = :cy AND r.code = 'BONUS'), '(reversed,0)', 'the order cancelled: the coupon with it');
CREATE TEMP TABLE orders2 (LIKE orders);
CREATE TRIGGER loyalty_ins AFTER INSERT ON orders2 REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'coupon=coupon');
CREATE TRIGGER loyalty_del AFTER DELETE ON orders2 REFERENCING OLD TABLE AS loyalty_old
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'coupon=coupon');
INSERT INTO orders2 VALUES (11, :cy, 10, 'paid', 'BONUS'), (12, :cy, 10, 'paid', NULL), (13, :cy, 10, 'paid', 'BONUS');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :cy), 70::bigint,
          'a statement of orders: 30 earned and two coupons'' 40, the account right after each');
SELECT throws_ok(format('INSERT INTO orders2 VALUES (14, %s, 10, %L, %L)', :cy, 'paid', 'NOPE'), 'LY070', NULL,
                 'an order with an unknown coupon fails');
DELETE FROM orders2 WHERE id = 13;
SELECT is((SELECT count(*) FROM loyalty.coupon_redemptions WHERE member_id = :cy AND status = 'captured'), 1::bigint,
          'a deleted order gives its coupon back');
CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW
    EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'coupon=total');
SELECT throws_ok(format('INSERT INTO orders VALUES (2, %s, 1)', :cy), '42804', NULL, 'a coupon column must be text');

-- results ----------------------------------------------------------------------------------------------
SELECT is((SELECT (uses, members, reversed, abandoned, discount, points, cost, revenue)::text
           FROM loyalty.coupon_performance WHERE campaign = 'spring'),
          '(0,0,1,0,0,0,0.00,0)', 'spring: one use reversed, one held (not counted yet)');
SELECT is((SELECT (codes, uses, members, reversed, abandoned, points, cost, revenue)::text
           FROM loyalty.coupon_performance WHERE campaign = 'welcome'),
          '(3,0,0,1,2,0,0.00,0)', 'welcome: three codes, one use reversed, two abandoned (one released, one expired)');
SELECT is((SELECT (uses, members, points, cost, revenue, cost_per_use)::text
           FROM loyalty.coupon_performance WHERE campaign = 'bonus'),
          '(1,1,20,0.20,10,0.20)', 'bonus: the order still paid, 20 points worth 0.20 on 10 of revenue');

-- refusals --------------------------------------------------------------------------------------------
SELECT throws_ok('SELECT loyalty.redeem_coupon(NULL, ''TEN'')', '22004', NULL, 'no member');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, %L)', :bob, 'TEN', 'NaN'), '22023', NULL, 'a NaN basket');
SELECT throws_ok(format('SELECT loyalty.create_coupon_campaign(%s, %L, %L, 150)', :p, 'x', 'percent_off'), '22023', NULL,
                 'more than 100 percent off');
SELECT throws_ok(format('SELECT loyalty.create_coupon_campaign(%s, %L, %L, 2, code => %L)', :p, 'y', 'amount_off', 'TEN'),
                 '23505', NULL, 'a code used by another campaign');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');

-- a free item needs the item in the basket; names in the conditions are checked
SELECT create_coupon_campaign(:p, 'free croissant', 'free_item', 2.50, code => 'CROISSANT', item => 'CR-1') AS fc \gset
SELECT is(validate_coupon(:cy, 'CROISSANT', 10, lines => '[{"product": "CO-1", "amount": 10}]') ->> 'reason', 'item_not_in_basket',
          'a free item not in the basket');
SELECT is(validate_coupon(:cy, 'CROISSANT', NULL, lines => '[{"product": "CR-1", "amount": 2.50}]') ->> 'free_item', 'CR-1',
          '... in the basket: given');
SELECT throws_ok(format('SELECT loyalty.create_coupon_campaign(%s, %L, %L, 5, categories => %L)', :p, 'x', 'amount_off', '{books,""}'),
                 '22023', NULL, 'an empty category name');
SELECT * FROM finish();
ROLLBACK;
