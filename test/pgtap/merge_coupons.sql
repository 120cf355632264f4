-- A merge and the absorbed member's coupons: its uses count toward the
-- survivor's per-member limits (a merge gives no second "once per member"
-- use, after any number of merges), its captured uses stay with the orders
-- they were on (a refund of one, by either member's id, gives the coupon back and
-- takes its points back from the survivor), its held uses are released as
-- its points holds are, and a redemption acknowledged on it replays on
-- either member, writing nothing.  Runs with either store.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(24);

SELECT create_program('merge coupons', earn_rate => 1) AS p \gset
SELECT enroll(:p, 'app', 'ann') AS ann, enroll(:p, 'app', 'bob') AS bob, enroll(:p, 'app', 'cy') AS cy \gset
SELECT create_coupon_campaign(:p, 'once', 'amount_off', 10, code => 'ONCE', uses_per_member => 1) AS once \gset
SELECT create_coupon_campaign(:p, 'bonus', 'bonus_points', 5, code => 'BONUS', uses_per_member => 1) AS bonus \gset
SELECT create_coupon_campaign(:p, 'held', 'percent_off', 10, code => 'HELD', uses_per_member => 1) AS held \gset

-- bob uses ONCE on order b1 and BONUS on order b2, and holds HELD at a checkout
SELECT earn(:bob, 50, reference => 'b1');
SELECT capture_coupon(:bob, redeem_coupon(:bob, 'ONCE', 50, reference => 'b1', idempotency_key => 'bk-1'));
SELECT redemption_id AS r1 FROM coupon_redemptions WHERE member_id = :bob AND idempotency_key = 'bk-1' \gset
SELECT earn(:bob, 30, reference => 'b2');
SELECT capture_coupon(:bob, redeem_coupon(:bob, 'BONUS', 30, reference => 'b2', idempotency_key => 'bk-2'));
SELECT redeem_coupon(:bob, 'HELD', 40, reference => 'b3', idempotency_key => 'bk-3') AS r3 \gset
SELECT create_coupon_campaign(:p, 'four', 'bonus_points', 4, code => 'FOUR') AS four \gset
SELECT earn(:bob, 20, reference => 'b4');
SELECT capture_coupon(:bob, redeem_coupon(:bob, 'FOUR', 20, reference => 'b4'));

SELECT merge_members(:ann, :bob) IS NOT NULL AS merged;
CREATE TEMP TABLE n AS SELECT (SELECT count(*) FROM coupon_redemptions) AS redemptions, (SELECT count(*) FROM ledger) AS entries,
    (SELECT array_agg((campaign_id, uses, spent)::text ORDER BY campaign_id) FROM coupon_campaigns WHERE program_id = :p) AS campaigns;

-- the per-member limits count the absorbed member's uses
SELECT is(validate_coupon(:ann, 'ONCE', 50) ->> 'reason', 'member_limit',
          'the survivor has used a once-per-member coupon the absorbed member used');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 50, reference => %L)', :ann, 'ONCE', 'a1'),
                 'LY071', 'coupon cannot be used: member limit', '... so redeeming it is refused');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 50, reference => %L)', :ann, 'BONUS', 'a2'),
                 'LY071', 'coupon cannot be used: member limit', '... as is a points coupon it used');

-- the absorbed member's hold is released with the merge (as its points holds are)
SELECT is((SELECT status FROM coupon_redemptions WHERE redemption_id = :r3), 'released',
          'the absorbed member''s held coupon is released by the merge');
SELECT is((SELECT (uses, spent = 0)::text FROM coupon_campaigns WHERE campaign_id = :held), '(0,t)',
          '... its use given back to the campaign');
SELECT throws_ok(format('SELECT loyalty.capture_coupon(%s, %s)', :bob, :r3), 'LY003', NULL,
                 '... so it cannot be captured afterwards');
SELECT is(validate_coupon(:ann, 'HELD', 40) ->> 'valid', 'true', '... and the survivor may use the coupon');

-- replays of the absorbed member's redemption, on either member
SELECT is(redeem_coupon(:bob, 'ONCE', 50, reference => 'b1', idempotency_key => 'bk-1'), :r1::bigint,
          'a redemption acknowledged on the absorbed member replays there');
SELECT is(redeem_coupon(:ann, 'ONCE', 50, reference => 'b1', idempotency_key => 'bk-1'), :r1::bigint,
          '... and on the survivor');
SELECT is(redeem_coupon(:ann, 'HELD', 40, reference => 'b3', idempotency_key => 'bk-3'), :r3::bigint,
          '... a released one too (its first result)');
SELECT throws_ok(format('SELECT loyalty.redeem_coupon(%s, %L, 60, reference => %L, idempotency_key => %L)',
                        :ann, 'ONCE', 'b1', 'bk-1'), 'LY002', NULL,
                 '... and the key with another request is refused');
SELECT is((SELECT (count(*), (SELECT count(*) FROM ledger),
                   (SELECT array_agg((campaign_id, uses, spent)::text ORDER BY campaign_id) FROM coupon_campaigns WHERE program_id = :p))::text
           FROM coupon_redemptions),
          (SELECT (redemptions, entries, campaigns)::text FROM n), 'the replays wrote nothing');

-- a second merge: the first absorbed member's uses still count, its keys still replay
SELECT merge_members(:cy, :ann) IS NOT NULL AS merged;
SELECT is(validate_coupon(:cy, 'ONCE', 50) ->> 'reason', 'member_limit', 'after a second merge the use still counts');
SELECT is(redeem_coupon(:cy, 'ONCE', 50, reference => 'b1', idempotency_key => 'bk-1'), :r1::bigint,
          '... and its key replays on the last survivor');
SELECT is(redeem_coupon(:ann, 'ONCE', 50, reference => 'b1', idempotency_key => 'bk-1'), :r1::bigint,
          '... and on the member in between');

-- a refund of the absorbed member's order gives its coupon back
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :cy), 109::bigint, 'the survivor has 50 + 30 + 5 + 20 + 4 points');
SELECT refund(:bob, 'b4');
SELECT is((SELECT (status, (SELECT balance::bigint FROM accounts WHERE member_id = :cy))::text FROM coupon_redemptions
           WHERE member_id = :bob AND campaign_id = :four), '(reversed,85)',
          'a refund by the absorbed member''s id reverses its coupon too, its 20 + 4 points taken from the last survivor');
SELECT refund(:cy, 'b2');
SELECT is((SELECT status FROM coupon_redemptions WHERE member_id = :bob AND campaign_id = :bonus), 'reversed',
          'a refund of the absorbed member''s order through the survivor reverses its coupon');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :cy), 50::bigint,
          '... taking the order''s 30 points and the coupon''s 5 back from the survivor');
SELECT is((SELECT (uses, spent)::text FROM coupon_campaigns WHERE campaign_id = :bonus), '(0,0)',
          '... and giving the use back to the campaign');
SELECT is(validate_coupon(:cy, 'BONUS', 30) ->> 'valid', 'true', '... so the survivor may use it again');
SELECT is(release_coupon(:cy, :r1), 'reversed', 'the survivor gives back an absorbed member''s captured coupon');
SELECT is(validate_coupon(:cy, 'ONCE', 50) ->> 'valid', 'true', '... which it may then use');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');
SELECT * FROM finish();
ROLLBACK;
