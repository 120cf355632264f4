-- Rewards, the edges: every refusal of redeem_reward, cancel_redemption,
-- create_reward, restock_reward, set_redemption_rules and redeem_for_discount
-- with its SQLSTATE and proof that it wrote nothing; unlimited stock; a replay
-- after the stock ran out or the redemption was cancelled; the redemption's
-- ledger entries and event; discount limits at their boundaries; privileges.
BEGIN;
SELECT plan(76);

SELECT loyalty.create_program('rwe', point_value => 0.01) AS p \gset
SELECT loyalty.create_program('rwe-other') AS q \gset
SELECT loyalty.enroll(:p, 'app', 'rwe-rich') AS m \gset
SELECT loyalty.enroll(:p, 'app', 'rwe-poor') AS poor \gset
SELECT loyalty.enroll(:p, 'app', 'rwe-away') AS away \gset
SELECT loyalty.award(:m, '2000', 'stock up');
SELECT loyalty.award(:poor, '50', 'a few');
SELECT loyalty.award(:away, '2000', 'stock up');
SELECT loyalty.set_member_status(:away, 'suspended');

SELECT loyalty.create_reward(:p, 'LAST', 'The last one', '100', stock => 1) AS last \gset
SELECT loyalty.create_reward(:p, 'NONE', 'Sold out', '100', stock => 0) AS none \gset
SELECT loyalty.create_reward(:p, 'OFF', 'Withdrawn', '100') AS off \gset
SELECT loyalty.create_reward(:p, 'PAST', 'Last season', '100', valid_until => now() - interval '1 day') AS past \gset
SELECT loyalty.create_reward(:p, 'GOLD', 'Gold only', '100', min_tier => '2:Gold') AS gold \gset
SELECT loyalty.create_reward(:p, 'TWICE', 'Twice each', '100', per_member_limit => 2) AS twice \gset
SELECT loyalty.create_reward(:p, 'ANY', 'Unlimited', '100') AS unl \gset
SELECT loyalty.create_reward(:q, 'ELSE', 'Another program''s', '100') AS other \gset
UPDATE loyalty.rewards SET active = false WHERE reward_id = :off;

-- everything a refusal could have touched
CREATE TEMP VIEW st AS SELECT
    (SELECT count(*) FROM loyalty.ledger) AS entries,
    (SELECT count(*) FROM loyalty.lots WHERE remaining::bigint <> original::bigint) AS touched_lots,
    (SELECT count(*) FROM loyalty.events) AS events,
    (SELECT count(*) FROM loyalty.redemptions) AS redemptions,
    (SELECT count(*) FILTER (WHERE status = 'cancelled') FROM loyalty.redemptions) AS cancelled,
    (SELECT string_agg(reward_id || ':' || coalesce(stock::text, '-'), ' ' ORDER BY reward_id) FROM loyalty.rewards) AS stock,
    (SELECT string_agg(member_id || ':' || balance::text, ' ' ORDER BY member_id) FROM loyalty.accounts) AS balances;
CREATE TEMP TABLE snap AS SELECT * FROM st;

-- 1. redeem_reward refusals
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(NULL, %s)', :last), '22004', NULL, 'a NULL member: 22004');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, NULL)', :m), '22004', NULL, 'a NULL reward: 22004');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(-1, %s)', :last), 'P0002', NULL, 'an unknown member: P0002');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :other), 'P0002', NULL,
                 'a reward of another program: P0002');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :off), 'LY011', NULL, 'an inactive reward: LY011');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :past), 'LY011', NULL,
                 'a reward past its valid_until: LY011');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :gold), 'LY012', NULL,
                 'a member without a tier cannot take a gated reward: LY012');
UPDATE loyalty.accounts SET tier = '1:Silver' WHERE member_id = :m;
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :gold), 'LY012', NULL,
                 'a lower tier cannot take it either: LY012');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :none), 'LY010', NULL,
                 'a reward with no stock: LY010');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :poor, :last), 'LY001', NULL,
                 'too few points: LY001 (after the unit was taken)');
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :away, :last), '55000', NULL,
                 'a suspended member: 55000 (after the unit was taken)');
SELECT is((SELECT row(st.*)::text FROM st), (SELECT row(snap.*)::text FROM snap),
          'the refusals wrote nothing: ledger, lots, events, redemptions, stock, balances as before');

-- a higher tier passes the gate
UPDATE loyalty.accounts SET tier = '3:Platinum' WHERE member_id = :m;
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :gold), 'a higher tier than the gate passes');

-- 2. per-member limit counts issued redemptions only
SELECT * INTO TEMP tw1 FROM loyalty.redeem_reward(:m, :twice);
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :twice), 'the second of two is allowed');
DELETE FROM snap; INSERT INTO snap SELECT * FROM st;
SELECT throws_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :twice), 'LY013', NULL, 'the third: LY013');
SELECT is((SELECT row(st.*)::text FROM st), (SELECT row(snap.*)::text FROM snap), '... and it wrote nothing');
SELECT loyalty.award(:poor, '100', 'top up');
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :poor, :twice), 'the limit is per member');
SELECT loyalty.cancel_redemption(:m, (SELECT redemption_id FROM tw1));
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :twice), 'a cancelled one no longer counts');

-- 3. unlimited stock stays unlimited
SELECT lives_ok(format('SELECT * FROM loyalty.redeem_reward(%s, %s)', :m, :unl), 'an unlimited reward is redeemed');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :unl), NULL::bigint, '... and its stock stays NULL');
SELECT throws_ok(format('SELECT loyalty.restock_reward(%s, 5)', :unl), '22023', NULL, 'an unlimited reward cannot be restocked');
SELECT throws_ok('SELECT loyalty.restock_reward(-1, 5)', 'P0002', NULL, 'restocking an unknown reward: P0002');
SELECT is(loyalty.restock_reward(:none, 3), 3::bigint, 'restocking 3 units of an empty reward gives 3');
SELECT is(loyalty.restock_reward(:none, -3), 0::bigint, 'taking 3 units back gives 0');
SELECT throws_ok(format('SELECT loyalty.restock_reward(%s, -1)', :none), '22023', NULL, 'stock cannot go below zero');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :none), 0::bigint, '... and stays 0');

-- 4. the redemption: its ledger entry, voucher and event; idempotent replay
CREATE TEMP TABLE led AS SELECT count(*) AS n FROM loyalty.ledger WHERE member_id = :m;
SELECT * INTO TEMP r1 FROM loyalty.redeem_reward(:m, :last, idempotency_key => 'k-last', channel => 'app');
SELECT results_eq(format($$SELECT l.kind, l.points::bigint, l.reference, l.channel
                           FROM loyalty.ledger l JOIN loyalty.redemptions x ON x.entry_id = l.entry_id
                           WHERE x.member_id = %s AND x.redemption_id = %s$$, :m, (SELECT redemption_id FROM r1)),
                  $$VALUES ('redeem'::text, -100::bigint, 'reward:LAST'::text, 'app'::text)$$,
                  'the redemption points at its redeem entry: -100, reference reward:LAST, the channel');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE member_id = :m) - (SELECT n FROM led), 1::bigint,
          'a redemption writes one ledger entry');
SELECT is((SELECT count(DISTINCT voucher) FROM loyalty.redemptions), (SELECT count(*) FROM loyalty.redemptions),
          'every voucher is different');
SELECT throws_ok($$INSERT INTO loyalty.redemptions (member_id, reward_id, points, entry_id, voucher)
                   SELECT member_id, reward_id, points, entry_id, voucher FROM loyalty.redemptions LIMIT 1$$,
                 '23505', NULL, '... and a member''s voucher can never name two of its redemptions (unique with member_id)');
SELECT results_eq(format($$SELECT (payload->>'reward_id')::bigint, (payload->>'redemption_id')::bigint,
                                  (payload->>'points')::bigint, payload->>'reward_code'
                           FROM loyalty.events WHERE member_id = %s AND kind = 'reward.redeemed'
                             AND (payload->>'redemption_id')::bigint = %s$$, :m, (SELECT redemption_id FROM r1)),
                  format($$VALUES (%s::bigint, %s::bigint, 100::bigint, 'LAST'::text)$$, :last, (SELECT redemption_id FROM r1)),
                  'reward.redeemed carries the reward, the redemption, the points and the code');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :last), 0::bigint, 'the last unit is gone');
DELETE FROM snap; INSERT INTO snap SELECT * FROM st;
SELECT results_eq(format($$SELECT redemption_id, voucher, points::bigint FROM loyalty.redeem_reward(%s, %s, 'k-last', 'app')$$, :m, :last),
                  'SELECT redemption_id, voucher, points::bigint FROM r1',
                  'a replay after the stock ran out returns the first redemption (no LY010)');
SELECT is((SELECT row(st.*)::text FROM st), (SELECT row(snap.*)::text FROM snap), '... and writes nothing, takes no unit');
SELECT throws_ok(format($$SELECT * FROM loyalty.redeem_reward(%s, %s, 'k-last')$$, :poor, :last), 'LY010', NULL,
                 'the key is per member: another member with the same key gets no unit (LY010)');

-- 5. cancel
SELECT throws_ok(format('SELECT loyalty.cancel_redemption(NULL, %s)', (SELECT redemption_id FROM r1)), '22004', NULL,
                 'cancel with a NULL member: 22004');
SELECT throws_ok(format('SELECT loyalty.cancel_redemption(%s, -1)', :m), 'P0002', NULL, 'cancel an unknown redemption: P0002');
SELECT throws_ok(format('SELECT loyalty.cancel_redemption(%s, %s)', :poor, (SELECT redemption_id FROM r1)), 'P0002', NULL,
                 'cancel another member''s redemption: P0002');
SELECT is((SELECT row(st.*)::text FROM st), (SELECT row(snap.*)::text FROM snap), 'the refused cancels wrote nothing');
SELECT is(loyalty.cancel_redemption(:m, (SELECT redemption_id FROM r1), 'changed my mind')::bigint, 100::bigint,
          'cancelling gives back 100 points');
SELECT results_eq(format($$SELECT l.kind, l.points::bigint, l.reason, l.entry_id = x.cancel_entry
                           FROM loyalty.ledger l JOIN loyalty.redemptions x
                             ON l.member_id = x.member_id AND l.source_entry = x.entry_id
                           WHERE x.member_id = %s AND x.redemption_id = %s$$, :m, (SELECT redemption_id FROM r1)),
                  $$VALUES ('reverse'::text, 100::bigint, 'changed my mind'::text, true)$$,
                  '... as one reverse entry of the redeem entry, with the reason, kept as cancel_entry');
SELECT results_eq(format($$SELECT status, cancelled_at IS NOT NULL FROM loyalty.redemptions
                           WHERE member_id = %s AND redemption_id = %s$$, :m, (SELECT redemption_id FROM r1)),
                  $$VALUES ('cancelled'::text, true)$$, '... marks the redemption cancelled, with the time');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :last), 1::bigint, '... and puts the unit back');
SELECT is((SELECT redemption_id FROM loyalty.redeem_reward(:m, :last, 'k-last', 'app')), (SELECT redemption_id FROM r1),
          'a replay of a cancelled redemption still returns it');
SELECT is((SELECT stock FROM loyalty.rewards WHERE reward_id = :last), 1::bigint, '... and takes no unit');

-- 6. create_reward refusals
SELECT throws_ok(format($$SELECT loyalty.create_reward(%s, 'LAST', 'Again', '10')$$, :p), '23505', NULL,
                 'a code is unique per program');
SELECT lives_ok(format($$SELECT loyalty.create_reward(%s, 'LAST', 'Same code elsewhere', '10')$$, :q),
                '... but may repeat in another program');
SELECT throws_ok(format($$SELECT loyalty.create_reward(%s, 'ZERO', 'Free', '0')$$, :p), '22023', NULL, 'point_cost 0: 22023');
SELECT throws_ok(format($$SELECT loyalty.create_reward(%s, 'NEG', 'Negative', '10', stock => -1)$$, :p), '22023', NULL,
                 'negative stock: 22023');
SELECT throws_ok(format($$SELECT loyalty.create_reward(%s, 'LIM0', 'Never', '10', per_member_limit => 0)$$, :p), '22023', NULL,
                 'per_member_limit 0: 22023');
SELECT throws_ok(format($$SELECT loyalty.create_reward(%s, 'WIN', 'Backwards', '10', valid_from => now(),
                                                       valid_until => now() - interval '1 day')$$, :p), '22023', NULL,
                 'a window that ends before it starts: 22023');
SELECT throws_ok(format($$SELECT loyalty.create_reward(%s, 'NULLNAME', NULL, '10')$$, :p), '22004', NULL, 'a NULL name: 22004');
SELECT throws_ok($$SELECT loyalty.create_reward(-1, 'NOPROG', 'Nowhere', '10')$$, 'P0002', NULL, 'an unknown program: P0002');

-- 7. money off an order
SELECT loyalty.enroll(:p, 'app', 'rwe-shopper') AS s \gset
SELECT loyalty.award(:s, '1000', 'to spend');
SELECT is(loyalty.redeem_for_discount(:s, 10.00, '150', 'o-1'), 1.50, 'without rules: 150 points pay 1.50');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 5.00, '501')$$, :s), '22023',
                 'a discount of 5.01 exceeds the order amount 5.00', 'without rules: never more than the order');
SELECT loyalty.set_redemption_rules(:p, min_points => '100', max_points => '500', max_share_of_order => 0.5);
DELETE FROM snap; INSERT INTO snap SELECT * FROM st;
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 10.00, '99')$$, :s), '22023',
                 'at least 100 points must be redeemed on an order, got 99', 'one below the minimum: the message says 100');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 100.00, '501')$$, :s), '22023',
                 'at most 500 points can be redeemed on an order, got 501', 'one above the maximum: the message says 500');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 7.00, '400')$$, :s), '22023',
                 'points may pay at most 0.5 of an order (3.500 of 7.00), got a discount of 4.00',
                 '4.00 off an order of 7.00 is more than half: the message says the limit');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 0, '100')$$, :s), '22023', NULL, 'an order of 0: 22023');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 'NaN', '100')$$, :s), '22023', NULL, 'an order of NaN: 22023');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, NULL, '100')$$, :s), '22004', NULL, 'a NULL order: 22004');
SELECT throws_ok($$SELECT loyalty.redeem_for_discount(-1, 10.00, '100')$$, 'P0002', NULL, 'an unknown member: P0002');
SELECT throws_ok(format($$SELECT loyalty.redeem_for_discount(%s, 10.00, '100')$$, :poor), 'LY001', NULL,
                 'too few points: LY001');
SELECT is((SELECT row(st.*)::text FROM st), (SELECT row(snap.*)::text FROM snap), 'the refused discounts wrote nothing');
SELECT is(loyalty.redeem_for_discount(:s, 10.00, '500', 'o-2', 'dk-2'), 5.00, 'exactly half of the order and the maximum: allowed');
SELECT is(loyalty.redeem_for_discount(:s, 10.00, '500', 'o-2', 'dk-2'), 5.00, 'a replay returns the same discount');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE member_id = :s AND kind = 'redeem'), 2::bigint, '... and redeems once');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :s), 350::bigint, '1000 - 150 - 500 = 350 left');
SELECT throws_ok(format($$SELECT loyalty.set_redemption_rules(%s, max_share_of_order => 1.5)$$, :p), '22023', NULL,
                 'a share above 1: 22023');
SELECT throws_ok(format($$SELECT loyalty.set_redemption_rules(%s, '100', '50')$$, :p), '22023', NULL,
                 'a maximum below the minimum: 22023');
SELECT throws_ok($$SELECT loyalty.set_redemption_rules(-1)$$, 'P0002', NULL, 'rules for an unknown program: P0002');

-- 8. who may call what
SELECT ok(has_function_privilege('loyalty_app', 'loyalty.redeem_reward(bigint, bigint, text, text)', 'EXECUTE')
          AND has_function_privilege('loyalty_app', 'loyalty.cancel_redemption(bigint, bigint, text)', 'EXECUTE')
          AND has_function_privilege('loyalty_app', 'loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text)', 'EXECUTE'),
          'the app may redeem, cancel and pay with points');
SELECT ok(NOT has_function_privilege('loyalty_app', 'loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.restock_reward(bigint, bigint)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible)', 'EXECUTE'),
          'the app may not change the catalog or the rules');
SELECT ok(has_function_privilege('loyalty_admin', 'loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer)', 'EXECUTE')
          AND has_function_privilege('loyalty_admin', 'loyalty.restock_reward(bigint, bigint)', 'EXECUTE')
          AND has_function_privilege('loyalty_admin', 'loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible)', 'EXECUTE'),
          'the administrator keeps the catalog and the rules');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
           WHERE p.pronamespace = 'loyalty'::regnamespace AND a.privilege_type = 'EXECUTE'
             AND p.proname = ANY ('{create_reward,restock_reward,redeem_reward,cancel_redemption,set_redemption_rules,redeem_for_discount}')
             AND (a.grantee = 0 OR a.grantee = 'loyalty_analyst'::regrole)), 0::bigint,
          'neither PUBLIC nor the analyst may call any of them');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
SELECT * FROM finish();
ROLLBACK;
