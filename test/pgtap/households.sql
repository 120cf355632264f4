-- Households: one household per member, roles, leaving and dissolving (points
-- stay with who earned them), and household_redeem spending the members'
-- combined points first-to-expire-first within the limits per role; the
-- transfer rule "same household only".  Runs with either store.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(47);

SELECT loyalty.create_program('home', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.create_program('other') AS q \gset
SELECT loyalty.enroll(:p, 'app', 'mum') AS mum, loyalty.enroll(:p, 'app', 'dad') AS dad,
       loyalty.enroll(:p, 'app', 'kid') AS kid, loyalty.enroll(:p, 'app', 'aunt') AS aunt,
       loyalty.enroll(:q, 'app', 'stranger') AS stranger \gset
SELECT loyalty.award(:mum, 100, 'seed', expires_at => now() + interval '60 days');
SELECT loyalty.award(:dad, 100, 'seed', expires_at => now() + interval '10 days');
SELECT loyalty.award(:kid, 50, 'seed', expires_at => now() + interval '30 days');

-- membership --------------------------------------------------------------------------------
SELECT loyalty.start_household(:mum, 'The Smiths') AS h \gset
SELECT lives_ok(format('SELECT loyalty.add_household_member(%s, %s)', :h, :dad), 'dad joins as an adult');
SELECT lives_ok(format('SELECT loyalty.add_household_member(%s, %s, %L)', :h, :kid, 'child'), 'the kid as a child');
SELECT throws_ok(format('SELECT loyalty.join_household(%s, %s)', :aunt, :h), 'LY060', NULL, 'no joining without an invitation');
SELECT ok(loyalty.invite_to_household(:h, :aunt, 'adult') = now() + interval '14 days', 'an invitation, open 14 days');
SELECT is(loyalty.join_household(:aunt, :h), 'adult', 'the aunt accepts and joins as an adult');
SELECT is((SELECT count(*) FROM loyalty.household_invitations WHERE member_id = :aunt), 0::bigint, 'the invitation is used up');
SELECT loyalty.remove_household_member(:h, :aunt);
SELECT throws_ok(format('SELECT loyalty.remove_household_member(%s, %s)', :h, :mum), 'LY060', NULL, 'the owner is not removed');
SELECT is((SELECT count(*) FROM loyalty.household_members WHERE member_id = :aunt AND left_at IS NULL), 0::bigint,
          'the aunt was removed');
SELECT throws_ok(format('SELECT loyalty.add_household_member(%s, %s)', :h, :dad), 'LY060', NULL, 'one household at a time');
SELECT throws_ok(format('SELECT loyalty.start_household(%s)', :kid), 'LY060', NULL, 'nor a household of one''s own');
SELECT throws_ok(format('SELECT loyalty.add_household_member(%s, %s)', :h, :stranger), '22023', NULL, 'not from another program');
SELECT throws_ok(format('SELECT loyalty.add_household_member(%s, %s, %L)', :h, :aunt, 'owner'), '22023', NULL,
                 'the owner is named by change_household_owner');
SELECT throws_ok(format('SELECT loyalty.add_household_member(%s, %s)', -1, :aunt), 'P0002', NULL, 'an unknown household');
SELECT throws_ok(format('SELECT loyalty.leave_household(%s)', :mum), 'LY060', NULL, 'the owner does not just leave');
SELECT is((SELECT (members, children, points, household_redemptions)::text FROM loyalty.household_summary WHERE household_id = :h),
          '(3,1,250,0)', 'the household''s summary');

-- pooled redemption ----------------------------------------------------------------------------
SELECT loyalty.household_redeem(:mum, 120, reference => 'order-1', idempotency_key => 'hh-1') AS r1 \gset
-- first to expire first across the household: dad's 100 (10 days), then the kid's (30 days)
SELECT is((SELECT array_agg(balance::bigint ORDER BY member_id) FROM loyalty.accounts WHERE member_id IN (:mum, :dad, :kid)),
          ARRAY[100, 0, 30]::bigint[], 'dad''s points went first, then 20 of the kid''s');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'redeem' AND details ->> 'redeemed_by' = :'mum'), 2::bigint,
          'a redeem entry per member who gave points');
SELECT is((SELECT (member_id, points::bigint, reference)::text FROM loyalty.ledger WHERE member_id = :dad AND kind = 'redeem'),
          format('(%s,-100,order-1)', :dad), 'dad''s share, under the order''s reference');
SELECT is(loyalty.household_redeem(:mum, 120, reference => 'order-1', idempotency_key => 'hh-1'), :r1::bigint, 'a replay');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'redeem'), 2::bigint, '... writes nothing');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 121, idempotency_key => %L)', :mum, 'hh-1'), 'LY002', NULL,
                 'the key with other points');
-- a replay is answered even after the redeemer left the household
SELECT loyalty.household_redeem(:dad, 5, idempotency_key => 'hh-dad') AS r2 \gset
SELECT loyalty.leave_household(:dad);
SELECT is(loyalty.household_redeem(:dad, 5, idempotency_key => 'hh-dad'), :r2::bigint,
          'a replay after the redeemer left answers the first result');
SELECT loyalty.add_household_member(:h, :dad);
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 131)', :dad), 'LY001', NULL, 'no more than the household has');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 5)', :kid), 'LY061', NULL, 'children may not redeem by default');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 5)', :aunt), 'LY060', NULL, 'a member in no household');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 0)', :mum), '22023', NULL, 'zero points');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, NULL)', :mum), '22004', NULL, 'NULL points');

-- limits per role ------------------------------------------------------------------------------
SELECT loyalty.set_household_rules(:p, child_can_redeem => true, child_monthly_points => 10, adult_monthly_points => 125);
SELECT is(loyalty.household_redeem(:kid, 10) > 0, true, 'a child may redeem when allowed');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 1)', :kid), 'LY061', NULL, 'up to the child''s monthly limit');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 6)', :mum), 'LY061',
                 format('household limit reached: member %s (owner) has redeemed 120 of 125 points this month', :mum),
                 'the adults'' limit counts what the member redeemed from the household');

-- owner, leaving, dissolving ---------------------------------------------------------------------
SELECT loyalty.change_household_owner(:h, :dad);
SELECT is((SELECT owner FROM loyalty.households WHERE household_id = :h), :dad::bigint, 'dad owns it now');
SELECT lives_ok(format('SELECT loyalty.leave_household(%s)', :mum), 'mum can leave now');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :mum), 100::bigint, 'her points stay with her');
SELECT is((SELECT members FROM loyalty.household_summary WHERE household_id = :h), 2::bigint, 'two left');
SELECT is(loyalty.dissolve_household(:h), 2, 'dissolving: the other two leave');
SELECT throws_ok(format('SELECT loyalty.add_household_member(%s, %s)', :h, :aunt), 'LY060', NULL, 'a dissolved household takes nobody');
SELECT is((SELECT count(*) FROM loyalty.household_members WHERE household_id = :h), 5::bigint,
          'the memberships are kept (dad''s twice: he left and came back)');

-- transfers within the household only --------------------------------------------------------------
SELECT loyalty.start_household(:mum) AS h2 \gset
SELECT loyalty.add_household_member(:h2, :kid, 'child');
SELECT loyalty.set_transfer_rules(:p, same_household => true);
SELECT lives_ok(format('SELECT loyalty.transfer(%s, %s, 5)', :mum, :kid), 'a transfer within the household');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 5)', :mum, :aunt), 'LY040', NULL, 'not outside it');

-- household tiers: members qualify on the household's combined spend
SELECT loyalty.create_program('tiered') AS t \gset
SELECT loyalty.set_tier_policy(:t, 'spend');
SELECT loyalty.define_tier(:t, 0, 'Blue', 0), loyalty.define_tier(:t, 1, 'Silver', 100);
SELECT loyalty.enroll(:t, 'app', 't-1') AS t1, loyalty.enroll(:t, 'app', 't-2') AS t2, loyalty.enroll(:t, 'app', 't-3') AS t3 \gset
SELECT loyalty.start_household(:t1) AS th \gset
SELECT loyalty.add_household_member(:th, :t2);
SELECT loyalty.earn(:t1, 60);
SELECT loyalty.earn(:t3, 60);
SELECT is((SELECT loyalty.tier_metric(:t1))::numeric, 60::numeric, 'without household tiers, the member''s own spend');
SELECT loyalty.set_household_rules(:t, household_tier => true);
SELECT is((SELECT loyalty.tier_metric(:t2))::numeric, 60::numeric, 'with them, the household''s: t2 spent nothing itself');
SELECT loyalty.earn(:t2, 50);
SELECT is((SELECT tier::text FROM loyalty.accounts WHERE member_id = :t2), '1:Silver',
          't2''s purchase lifts the household to 110: t2 is Silver at once');
SELECT * FROM loyalty.review_tiers_batch(:t, now(), 0, 100);
SELECT is((SELECT array_agg(tier::text ORDER BY member_id) FROM loyalty.accounts WHERE member_id IN (:t1, :t2, :t3)),
          ARRAY['1:Silver', '1:Silver', '0:Blue'], 'the review qualifies t1 on the household too; t3 alone stays Blue');

-- an erasure takes the member out of its household; an owner's household is dissolved
SELECT loyalty.erase_member(:kid, 'request');
SELECT is((SELECT count(*) FROM loyalty.household_members WHERE member_id = :kid AND left_at IS NULL), 0::bigint,
          'an erased member leaves its household');
SELECT loyalty.award(:aunt, 7, 'seed');
SELECT loyalty.add_household_member(:h2, :aunt);
SELECT loyalty.erase_member(:mum, 'request');
SELECT is((SELECT dissolved_at IS NOT NULL FROM loyalty.households WHERE household_id = :h2), true,
          'an erased owner''s household is dissolved');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :aunt), 7::bigint, 'the others keep their points');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');

SELECT * FROM finish();
ROLLBACK;
