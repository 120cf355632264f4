-- Paid membership: plans, subscribe/renew/cancel recorded with the
-- application's payment references (replays harmless, a period paid once),
-- the benefits held for the paid period (tier, welcome and monthly points, an
-- earn multiplier) and ending with it: the tier goes back to the tier the
-- member qualifies for; renewal notices, lapses and the KPIs.  Runs with
-- either store.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(56);

SELECT loyalty.create_program('club', currency => 'EUR') AS p \gset
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0), loyalty.define_tier(:p, 1, 'Silver', 100), loyalty.define_tier(:p, 2, 'Gold', 1000);
SELECT loyalty.enroll(:p, 'app', 'ann') AS ann, loyalty.enroll(:p, 'app', 'bob') AS bob,
       loyalty.enroll(:p, 'app', 'cat') AS cat, loyalty.enroll(:p, 'app', 'dan') AS dan,
       loyalty.enroll(:p, 'app', 'eve') AS eve \gset
SELECT loyalty.earn(:ann, 150);                                   -- ann qualifies for Silver

-- plans ---------------------------------------------------------------------------------
SELECT ok(loyalty.create_plan(:p, 'PLUS', 'Club Plus', 9.99, 'month', tier => '2:Gold', earn_multiplier => 2,
                              welcome_points => 500, monthly_points => 10, reward_discount => 0.25) > 0, 'a monthly plan');
SELECT ok(loyalty.create_plan(:p, 'YEAR', 'Club Year', 99, 'year', monthly_points => 20) > 0, 'a yearly plan');
SELECT throws_ok(format('SELECT loyalty.create_plan(%s, %L, %L, 5, %L)', :p, 'X', 'x', 'week'), '22023', NULL, 'periods are month or year');
SELECT throws_ok(format('SELECT loyalty.create_plan(%s, %L, %L, -1, %L)', :p, 'X', 'x', 'month'), '22023', NULL, 'no negative fee');
SELECT throws_ok(format('SELECT loyalty.create_plan(%s, %L, %L, 5, %L, tier => %L)', :p, 'X', 'x', 'month', '5:Diamond'),
                 '22023', NULL, 'the tier must be on the ladder');
SELECT throws_ok(format('SELECT loyalty.create_plan(%s, %L, %L, 5, %L)', :p, 'PLUS', 'x', 'month'), '23505', NULL, 'codes are unique');

-- subscribe ------------------------------------------------------------------------------
SELECT loyalty.subscribe(:ann, 'PLUS', 'pay-1') AS s1 \gset
SELECT is((SELECT (tier::text, tier_locked_until) FROM loyalty.accounts WHERE member_id = :ann)::text,
          format('(2:Gold,"%s")', now() + interval '1 month'), 'the plan''s tier, held for the paid month');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE member_id = :ann AND kind = 'award' AND points::bigint = 500),
          1::bigint, 'the welcome points');
SELECT is((SELECT (kind, amount, currency)::text FROM loyalty.membership_payments WHERE payment_reference = 'pay-1'),
          '(subscribe,9.99,EUR)', 'the payment, at the plan''s fee');
SELECT is(loyalty.subscribe(:ann, 'PLUS', 'pay-1'), :s1::bigint, 'a replay of the same payment returns the membership');
SELECT is((SELECT count(*) FROM loyalty.membership_payments WHERE member_id = :ann), 1::bigint, '... and records nothing');
SELECT throws_ok(format('SELECT loyalty.subscribe(%s, %L, %L)', :ann, 'YEAR', 'pay-2'), 'LY050', NULL,
                 'one membership at a time');
SELECT throws_ok(format('SELECT loyalty.subscribe(%s, %L, %L)', :bob, 'GOLDEN', 'pay-3'), 'P0002', NULL, 'an unknown plan');
SELECT throws_ok(format('SELECT loyalty.subscribe(%s, %L, %L)', :bob, 'PLUS', ''), '22023', NULL, 'an empty payment reference');
SELECT throws_ok(format('SELECT loyalty.subscribe(%s, %L, NULL)', :bob, 'PLUS'), '22004', NULL, 'a NULL payment reference');
SELECT throws_ok(format('SELECT loyalty.subscribe(%s, %L, %L, amount => -5)', :bob, 'PLUS', 'pay-4'), '22023', NULL,
                 'a negative amount');
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :ann AND kind = 'membership.started'), 1::bigint,
          'membership.started');

-- the earn multiplier: an earning rule on the plan
SELECT is(loyalty.earn(:ann, 10), 20::bigint, 'a member of the plan earns double');
SELECT is(loyalty.earn(:bob, 10), 10::bigint, 'another does not');

-- renew ----------------------------------------------------------------------------------
-- a membership brought over from another system, started on 31 October
SELECT loyalty.subscribe(:bob, 'PLUS', 'old-1', started_at => date_trunc('month', now()) - interval '2 months' + interval '30 days 10 hours')
    AS s2 \gset
SELECT (SELECT current_period_end FROM loyalty.subscriptions WHERE subscription_id = :s2) AS end1,
       (SELECT started_at FROM loyalty.subscriptions WHERE subscription_id = :s2) AS start2 \gset
SELECT is(loyalty.renew_membership(:bob, 'pay-5', period_start => :'end1'), :'start2'::timestamptz + interval '2 months',
          'a renewal counts from the start: no drift at the end of a month');
SELECT is(loyalty.renew_membership(:bob, 'pay-5', period_start => :'end1'), :'start2'::timestamptz + interval '2 months',
          'a replay answers the same end');
SELECT throws_ok(format('SELECT loyalty.renew_membership(%s, %L, period_start => %L)', :bob, 'pay-6', :'end1'), 'LY051', NULL,
                 'the same period under another payment reference is refused');
SELECT throws_ok(format('SELECT loyalty.renew_membership(%s, %L, period_start => %L)', :bob, 'pay-6', now() + interval '5 years'),
                 '22023', NULL, 'a period that is not the next one');
SELECT throws_ok(format('SELECT loyalty.renew_membership(%s, %L)', :cat, 'pay-7'), 'LY050', NULL, 'no membership to renew');

-- cancel now with a refund: the tier goes back to the one the member qualifies for
SELECT is(loyalty.cancel_membership(:ann, at_period_end => false, refund_reference => 'ref-1', refund_amount => 9.99), now(),
          'cancelled now');
SELECT is((SELECT tier::text FROM loyalty.accounts WHERE member_id = :ann), '1:Silver',
          'ann is back to Silver, the tier her spend earns');
SELECT is((SELECT (status, end_reason)::text FROM loyalty.subscriptions WHERE subscription_id = :s1), '(ended,cancelled)',
          'the membership ended');
SELECT is(loyalty.earn(:ann, 10), 10::bigint, 'no multiplier after it');

-- cancel at period end: benefits hold until then
SELECT loyalty.subscribe(:cat, 'PLUS', 'pay-8') AS s3 \gset
SELECT is(loyalty.cancel_membership(:cat), now() + interval '1 month', 'cancelled at period end: benefits until then');
SELECT is((SELECT tier::text FROM loyalty.accounts WHERE member_id = :cat), '2:Gold', 'the tier holds');

-- the batch: renewal notices, monthly points, lapses ---------------------------------------------
SELECT loyalty.subscribe(:dan, 'PLUS', 'pay-9', started_at => now() - interval '26 days') AS s4 \gset
SELECT loyalty.subscribe(:eve, 'YEAR', 'pay-10', started_at => now() - interval '70 days') AS s5 \gset
-- bob's membership (31 October) was renewed to 31 December; lapse one that was not: an import of 40 days ago
SELECT loyalty.enroll(:p, 'app', 'fay') AS fay \gset
SELECT loyalty.subscribe(:fay, 'PLUS', 'pay-11', started_at => now() - interval '40 days') AS s6 \gset
SELECT is((SELECT (notified, bonuses, ended)::text FROM loyalty.membership_batch()), '(1,8,1)',
          'one renewal notice (dan), 8 monthly bonuses, one lapse (fay)');
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :dan AND kind = 'membership.renewal_due'), 1::bigint,
          'dan is told his membership ends within the notice');
SELECT is((SELECT sum(points::bigint) FROM loyalty.ledger WHERE member_id = :eve AND reason LIKE 'membership YEAR month %')::bigint,
          60::bigint, 'eve (yearly, 70 days in): months 1 to 3, 20 points each');
SELECT is((SELECT (status, end_reason)::text FROM loyalty.subscriptions WHERE subscription_id = :s6), '(lapsed,"not renewed")',
          'fay''s membership lapsed');
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :fay AND kind = 'membership.lapsed'), 1::bigint,
          'membership.lapsed');
SELECT is((SELECT (notified, bonuses, ended)::text FROM loyalty.membership_batch()), '(0,0,0)', 'a second run finds nothing to do');
SELECT throws_ok('SELECT * FROM loyalty.membership_batch(now() + interval ''1 day'')', '22023', NULL, 'not as of the future');

-- rewards at the plan's discount while the membership is paid (rounded up)
SELECT loyalty.create_reward(:p, 'MUG', 'Mug', '101') AS mug \gset
SELECT is((SELECT points FROM loyalty.redeem_reward(:cat, :mug)), 76::bigint, 'a member of the plan pays 101 less 25%, rounded up');
SELECT is((SELECT points FROM loyalty.redeem_reward(:fay, :mug)), 101::bigint, 'a lapsed member pays the full cost');
SELECT throws_ok(format('SELECT loyalty.create_plan(%s, %L, %L, 1, %L, reward_discount => 1)', :p, 'FREE', 'x', 'month'), '22023', NULL,
                 'a discount below 1');

-- a change of plan -------------------------------------------------------------------------------
SELECT loyalty.enroll(:p, 'app', 'gus') AS gus, loyalty.enroll(:p, 'app', 'hal') AS hal \gset
SELECT loyalty.subscribe(:gus, 'PLUS', 'gus-1') AS g1 \gset
SELECT loyalty.change_membership_plan(:gus, 'YEAR', 'gus-2', 80) AS g2 \gset
SELECT is((SELECT array_agg((p.code, s.status, s.end_reason)::text ORDER BY s.subscription_id)
           FROM loyalty.subscriptions s JOIN loyalty.membership_plans p USING (plan_id) WHERE s.member_id = :gus),
          ARRAY['(PLUS,changed,"changed to YEAR")', '(YEAR,active,)'], 'the monthly plan ends now, the yearly one starts');
SELECT is((SELECT (current_period_end - current_period_start) FROM loyalty.subscriptions WHERE subscription_id = :g2),
          (now() + interval '1 year') - now(), 'with a year of its own');
SELECT is((SELECT (kind, amount)::text FROM loyalty.membership_payments WHERE payment_reference = 'gus-2'), '(change,80)',
          'paid by what the application charged for the change');
SELECT is((SELECT tier::text FROM loyalty.accounts WHERE member_id = :gus), '0:Blue',
          'the old plan''s tier ends with it (the new plan has none): back to the qualified tier');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE member_id = :gus AND kind = 'award' AND points::bigint = 500),
          1::bigint, 'no second welcome');
SELECT is((SELECT payload ->> 'from' || '>' || (payload ->> 'plan') FROM loyalty.events
           WHERE member_id = :gus AND kind = 'membership.changed'), 'PLUS>YEAR', 'a membership.changed event');
SELECT is(loyalty.change_membership_plan(:gus, 'YEAR', 'gus-2', 80), :g2::bigint, 'a replay of the same payment');
SELECT throws_ok(format('SELECT loyalty.change_membership_plan(%s, %L, %L)', :gus, 'YEAR', 'gus-3'), '22023', NULL,
                 'to the plan it is on');
SELECT throws_ok(format('SELECT loyalty.change_membership_plan(%s, %L, %L)', :hal, 'YEAR', 'hal-1'), 'LY050', NULL,
                 'without a membership');
SELECT throws_ok(format('SELECT loyalty.change_membership_plan(%s, %L, %L)', :gus, 'GOLDEN', 'gus-4'), 'P0002', NULL,
                 'to an unknown plan');
SELECT throws_ok(format('SELECT loyalty.change_membership_plan(%s, %L, %L)', :gus, 'PLUS', 'gus-1'), 'LY002', NULL,
                 'under the reference of another payment');

-- KPIs -----------------------------------------------------------------------------------------
SELECT is((SELECT plan_changes FROM loyalty.membership_kpis WHERE program_id = :p AND month = date_trunc('month', now())::date),
          1::bigint, 'a change of plan is no cancellation');
SELECT is((SELECT (new_memberships, renewals, lapsed, cancelled, revenue)::text FROM loyalty.membership_kpis
           WHERE program_id = :p AND month = date_trunc('month', now())::date),
          format('(%s,1,%s,1,%s)',
                 (SELECT count(*) FROM loyalty.membership_payments WHERE kind = 'subscribe' AND date_trunc('month', created_at) = date_trunc('month', now())),
                 (SELECT count(*) FROM loyalty.subscriptions WHERE status = 'lapsed' AND date_trunc('month', ended_at) = date_trunc('month', now())),
                 (SELECT sum(amount) FROM loyalty.membership_payments WHERE date_trunc('month', created_at) = date_trunc('month', now()))),
          'this month''s KPIs');

-- the same for a hand-assigned tier: when its lock ends, the review goes back
-- to the qualified tier (before, one step down: Silver, never qualified for)
SELECT loyalty.assign_tier(:bob, '2:Gold', now() + interval '1 day', 'goodwill');
SELECT * FROM loyalty.review_tiers_batch(:p, now() + interval '2 days', 0, 100);
SELECT is((SELECT tier::text FROM loyalty.accounts WHERE member_id = :bob), '0:Blue',
          'an assigned tier whose lock ended falls back to the tier bob qualifies for');

SELECT ok(has_function_privilege('loyalty_app', 'loyalty.subscribe(bigint, text, text, anycompatible, timestamptz)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.create_plan(bigint, text, text, anycompatible, text, text, loyalty.tier, anycompatible, bigint, bigint, interval, anycompatible)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.end_membership_benefits(bigint, bigint, text)', 'EXECUTE')
          AND has_table_privilege('loyalty_analyst', 'loyalty.membership_kpis', 'SELECT'),
          'the application subscribes, the administrator makes plans, the analyst reads the KPIs');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');

SELECT * FROM finish();
ROLLBACK;
