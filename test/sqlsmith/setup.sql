-- Fixture of test/scripts/sqlsmith.sh: a populated program, written through
-- the public API only, and a shop's orders table with loyalty.order_trigger,
-- so the random queries find rows (and ids 1..100, sqlsmith's integer
-- constants) to call the extension's functions with.
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS loyalty;
SELECT setseed(0.31);

SELECT loyalty.create_program('smith', currency => 'EUR', earn_rate => 10, expiry_period => '1 year',
                              pending_period => '0', refund_policy => 'debt') AS p \gset
SELECT loyalty.create_program('other', earn_rate => 1) AS q \gset
-- 60 members in the first program, 10 in the second
SELECT count(loyalty.enroll(:p, 'pos', 'c' || g, joined_at => now() - interval '400 days',
                            region => (ARRAY['north', 'south'])[1 + g % 2],
                            birthday => date '1980-01-01' + g * 97)) FROM generate_series(1, 60) g;
SELECT count(loyalty.enroll(:q, 'web', 'o' || g)) FROM generate_series(1, 10) g;
SELECT count(loyalty.link_identity(loyalty.member_id(:p, 'pos', 'c' || g), 'web', 'c' || g || '@example.org'))
FROM generate_series(1, 20) g;

-- tiers, earning rules, activities, plans
SELECT loyalty.set_tier_policy(:p, 'spend', window_months => 12);
SELECT loyalty.define_tier(:p, 0, 'Blue', 0), loyalty.define_tier(:p, 1, 'Silver', 50, earn_multiplier => 1.5),
       loyalty.define_tier(:p, 2, 'Gold', 500, earn_multiplier => 2);
SELECT loyalty.create_earning_rule(:p, 'books x2', 'multiply', multiplier => 2, categories => ARRAY['books']);
SELECT loyalty.create_earning_rule(:p, 'big basket', 'bonus', bonus_points => '50', stacking => 'add', min_amount => 40);
SELECT loyalty.create_earning_rule(:p, 'weekend', 'multiply', multiplier => 1.25, stacking => 'add', weekdays => '{6,7}');
SELECT loyalty.create_earning_rule(:p, 'wine', 'multiply', multiplier => 1, categories => '{wine}', apply_tags => '{wine-lover}');
SELECT loyalty.set_stacking_rules(:p, max_earn_multiplier => 5, max_coupon_share => 0.5);
SELECT loyalty.set_activity_rule(:p, 'review', '20', cap_per_day => 1);
SELECT loyalty.create_plan(:p, 'PLUS', 'Plus', 4.99, 'month', earn_multiplier => 2, welcome_points => '100');
SELECT loyalty.set_referral_rules(:p, referrer_points => '200', referee_points => '100');
SELECT loyalty.set_redemption_rules(:p, min_points => '5', max_share_of_order => 0.5);

-- rewards, challenges, coupons
SELECT loyalty.create_reward(:p, 'MUG', 'Mug', '80', stock => 20);
SELECT loyalty.create_reward(:p, 'BAG', 'Bag', '300', min_tier => '1:Silver', per_member_limit => 2);
SELECT loyalty.create_challenge(:p, 'five', 'Five purchases', 'purchases', 5, 'month', repeating => true,
                                reward_points => '50', badge => 'regular');
SELECT loyalty.create_challenge(:p, 'books', 'Books', 'spend', 100, 'campaign', categories => '{books}', badge => 'reader',
                                valid_from => now() - interval '1 year', valid_until => now() + interval '1 year');
SELECT loyalty.create_challenge(:p, 'streak', 'Three weeks', 'streak_weeks', 3, 'streak', reward_points => '30');
SELECT loyalty.create_coupon_campaign(:p, 'spring', 'percent_off', 25, code => 'SPRING25', min_basket => 20,
                                      uses_per_member => 1) AS spring \gset
SELECT loyalty.create_coupon_campaign(:p, 'welcome', 'bonus_points', 500) AS welcome \gset
SELECT count(*) FROM loyalty.generate_coupon_codes(:welcome, 10, prefix => 'WB');

-- purchases: totals and lines, over the last year
SELECT count(loyalty.earn(loyalty.member_id(:p, 'pos', 'c' || (1 + g % 60)), round((5 + random() * 80)::numeric, 2),
                          channel => (ARRAY['pos', 'web', 'app'])[1 + g % 3], reference => 'o-' || g,
                          occurred_at => now() - (g % 300) * interval '1 day'))
FROM generate_series(1, 400) g;
SELECT count(loyalty.earn(loyalty.member_id(:p, 'pos', 'c' || (1 + g % 60)), NULL, reference => 'l-' || g,
                          lines => jsonb_build_array(
                              jsonb_build_object('category', 'books', 'product', 'B-' || g % 7, 'quantity', 1 + g % 3, 'amount', 10 + g % 40),
                              jsonb_build_object('category', (ARRAY['food', 'wine'])[1 + g % 2], 'amount', 3.5 + g % 9))))
FROM generate_series(1, 150) g;
SELECT count(loyalty.earn(loyalty.member_id(:q, 'web', 'o' || (1 + g % 10)), 10 + g, reference => 'q-' || g))
FROM generate_series(1, 30) g;
SELECT count(loyalty.award(loyalty.member_id(:p, 'pos', 'c' || g), '25', 'welcome')) FROM generate_series(1, 60, 3) g;
SELECT count(loyalty.record_activity(loyalty.member_id(:p, 'pos', 'c' || g), 'review', reference => 'rv-' || g))
FROM generate_series(1, 60, 4) g;

-- redemptions, holds, refunds, reversals
SELECT count(loyalty.redeem(loyalty.member_id(:p, 'pos', 'c' || g), '40')) FROM generate_series(1, 60, 2) g;
SELECT count(loyalty.capture(loyalty.hold(loyalty.member_id(:p, 'pos', 'c' || g), '30'), '20')) FROM generate_series(2, 60, 5) g;
SELECT count(loyalty.hold(loyalty.member_id(:p, 'pos', 'c' || g), '10', ttl => '10 minutes')) FROM generate_series(3, 60, 7) g;
SELECT count(loyalty.refund(loyalty.member_id(:p, 'pos', 'c' || (1 + g % 60)), 'o-' || g, amount => 2)) FROM generate_series(1, 400, 9) g;
SELECT count(loyalty.refund(loyalty.member_id(:p, 'pos', 'c' || (1 + g % 60)), 'l-' || g)) FROM generate_series(1, 150, 11) g;
SELECT count(loyalty.adjust(loyalty.member_id(:p, 'pos', 'c' || g), '-5', 'correction')) FROM generate_series(1, 60, 10) g;
SELECT count(r) FROM (SELECT loyalty.redeem_reward(loyalty.member_id(:p, 'pos', 'c' || g), 1) r FROM generate_series(1, 60, 6) g) s;
SELECT count(loyalty.redeem_for_discount(loyalty.member_id(:p, 'pos', 'c' || g), 30.00, 10, reference => 'd-' || g))
FROM generate_series(1, 60, 8) g;

-- coupons: held, captured and released
SELECT count(loyalty.capture_coupon(m, loyalty.redeem_coupon(m, 'SPRING25', 40.00, reference => 'cp-' || m)))
FROM (SELECT loyalty.member_id(:p, 'pos', 'c' || g) m FROM generate_series(1, 12) g) s;
SELECT count(loyalty.redeem_coupon(loyalty.member_id(:p, 'pos', 'c' || g), 'SPRING25', 50.00, reference => 'cq-' || g))
FROM generate_series(13, 18) g;

-- households (one with a second adult invited), tags, referrals, a subscription, a merge
SELECT count(loyalty.start_household(loyalty.member_id(:p, 'pos', 'c' || (4 * g - 3)), 'house ' || g)) FROM generate_series(1, 5) g;
SELECT count(loyalty.add_household_member(h.household_id, loyalty.member_id(:p, 'pos', 'c' || (4 * g - 3 + k))))
FROM generate_series(1, 5) g, generate_series(1, 2) k,
     LATERAL (SELECT household_id FROM loyalty.households WHERE name = 'house ' || g) h;
SELECT loyalty.household_redeem(loyalty.member_id(:p, 'pos', 'c2'), '30', reference => 'hh-1');
SELECT count(loyalty.tag_member(loyalty.member_id(:p, 'pos', 'c' || g), (ARRAY['vip', 'win-back', 'staff'])[1 + g % 3]))
FROM generate_series(1, 60, 2) g;
SELECT loyalty.enroll(:p, 'app', 'friend-1', referral_code => loyalty.referral_code(loyalty.member_id(:p, 'pos', 'c7'))) AS friend \gset
SELECT loyalty.earn(:friend, 25, reference => 'f-1');
SELECT loyalty.subscribe(loyalty.member_id(:p, 'pos', 'c9'), 'PLUS', 'psp-1');
SELECT loyalty.enroll(:p, 'app', 'dup-c11') AS dup \gset
SELECT loyalty.earn(:dup, 12, reference => 'dup-1');
SELECT loyalty.merge_members(loyalty.member_id(:p, 'pos', 'c11'), :dup);
CALL loyalty.refresh_segments();

-- the shop: an orders table earning through the row trigger
CREATE SCHEMA shop;
CREATE TABLE shop.orders (
    id        bigint PRIMARY KEY,
    member_id bigint,
    total     numeric(12,2) NOT NULL,
    status    text NOT NULL DEFAULT 'paid',
    channel   text,
    placed_at timestamptz NOT NULL DEFAULT now(),
    coupon    text
);
CREATE TRIGGER orders_loyalty AFTER INSERT OR UPDATE OR DELETE ON shop.orders
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('member_id', 'total', 'id', 'status', 'channel', 'placed_at', 'coupon=coupon');
INSERT INTO shop.orders (id, member_id, total, channel, placed_at)
SELECT 1000 + g, loyalty.member_id(:p, 'pos', 'c' || (1 + g % 60)), 5 + g % 70, 'web', now() - g * interval '1 hour'
FROM generate_series(1, 100) g;
INSERT INTO shop.orders (id, member_id, total) VALUES (2000, NULL, 12.00);
UPDATE shop.orders SET total = total / 2 WHERE id % 7 = 0 AND id < 2000;
UPDATE shop.orders SET status = 'cancelled' WHERE id % 11 = 0 AND id < 2000;
DELETE FROM shop.orders WHERE id % 13 = 0 AND id < 2000;
GRANT USAGE ON SCHEMA shop TO loyalty_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON shop.orders TO loyalty_app;

SELECT count(*) AS violations FROM loyalty.verify();
