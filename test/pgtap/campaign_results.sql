-- Campaign results: a control group held out of a coupon campaign, an
-- earning rule, a challenge and a journey step, fixed by the member id and
-- the campaign's seed; campaign_results against the same figures computed
-- from the raw tables.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(18);

SELECT create_program('campaigns', earn_rate => 1) AS p \gset
CREATE TEMP TABLE mm AS SELECT enroll(:p, 'app', 'm' || g, now() - interval '30 days') AS m, g FROM generate_series(1, 200) g;
SELECT create_coupon_campaign(:p, 'ten off', 'amount_off', 10, code => 'TEN') AS coupon \gset
SELECT set_control_group('coupon', :coupon, 0.5, seed => 'spring');
CREATE TEMP TABLE grp AS SELECT m, g, in_control(m, 'spring', 0.5) AS control FROM mm;
SELECT ok((SELECT count(*) FROM grp WHERE control) BETWEEN 70 AND 130, 'about half of 200 members held out');
SELECT is((SELECT count(*) FROM grp WHERE control), (SELECT count(*) FROM grp g2 WHERE in_control(g2.m, 'spring', 0.5)),
          'the same members every time (member id and seed)');
SELECT isnt((SELECT array_agg(m ORDER BY m) FROM grp WHERE control),
            (SELECT array_agg(m ORDER BY m) FROM grp WHERE in_control(m, 'autumn', 0.5)), 'another seed, another group');
SELECT is((SELECT validate_coupon(m, 'TEN', 50) ->> 'reason' FROM grp WHERE control ORDER BY m LIMIT 1), 'control_group',
          'a held-out member may not use the coupon');
SELECT is((SELECT validate_coupon(m, 'TEN', 50) ->> 'valid' FROM grp WHERE NOT control ORDER BY m LIMIT 1), 'true',
          '... the others may');

-- an earning rule held out from a fifth: the write path asks the same function
SELECT create_earning_rule(:p, 'double', 'multiply', multiplier => 2) AS rule \gset
SELECT set_control_group('rule', :rule, 0.2, seed => 'double');
SELECT is((SELECT earn(m, 10, reference => 'r' || m) FROM mm WHERE in_control(m, 'double', 0.2) ORDER BY m LIMIT 1), 10::bigint,
          'a held-out member earns without the rule');
SELECT is((SELECT earn(m, 10, reference => 'r' || m) FROM mm WHERE NOT in_control(m, 'double', 0.2) ORDER BY m LIMIT 1), 20::bigint,
          '... the others with it');
SELECT set_control_group('rule', :rule, 0);

-- a challenge and a journey step held out
SELECT create_challenge(:p, 'one', 'One purchase', 'purchases', 1, 'campaign', badge => 'first') AS ch \gset
SELECT set_control_group('challenge', :ch, 0.5, seed => 'spring');
SELECT set_journey(:p, 'welcome', 0);
SELECT step_id AS step FROM journey_steps WHERE program_id = :p \gset
SELECT set_control_group('journey', :step, 0.5, seed => 'spring');
UPDATE members SET joined_at = now() WHERE program_id = :p;   -- (a test shortcut: the welcome is due today)
SELECT count(*) FROM run_journeys_batch(:p, now(), -1, 1000);
SELECT is((SELECT count(*) FROM events e JOIN grp ON grp.m = e.member_id WHERE e.kind = 'journey.welcome' AND grp.control), 0::bigint,
          'no welcome for the held-out members');
SELECT is((SELECT count(*) FROM events e JOIN grp ON grp.m = e.member_id WHERE e.kind = 'journey.welcome' AND NOT grp.control),
          (SELECT count(*) FROM grp WHERE NOT control), '... one for each of the others');

-- the coupon's members buy: each treated member uses the coupon on a purchase of 50, every member buys 20
SELECT count(capture_coupon(m, redeem_coupon(m, 'TEN', 50, reference => 'c' || m))) FROM grp WHERE NOT control AND g % 2 = 0;
SELECT count(earn(m, 40, reference => 'c' || m)) FROM grp WHERE NOT control AND g % 2 = 0;
SELECT count(earn(m, 20, reference => 'b' || m)) FROM grp;
SELECT refund(m, 'b' || m) FROM grp WHERE g = 3;
SELECT is((SELECT value FROM challenge_progress cp JOIN grp ON grp.m = cp.member_id WHERE grp.control LIMIT 1), NULL,
          'held-out members make no challenge progress');

-- campaign_results against the raw tables
CREATE TEMP TABLE raw AS
SELECT grp.control, count(*) AS n, sum(x.purchases) AS purchases, sum(x.revenue) AS revenue,
       avg(x.revenue) AS rpm, var_samp(x.revenue) AS v
FROM grp, LATERAL (SELECT count(*) FILTER (WHERE l.amount - coalesce(lo.reversed_amount, 0) > 0) AS purchases,
                          coalesce(sum(l.amount - coalesce(lo.reversed_amount, 0)), 0) AS revenue
                   FROM ledger l LEFT JOIN lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
                   WHERE l.member_id = grp.m AND l.kind = 'earn') x
GROUP BY grp.control;
SELECT is((SELECT (members, control_members, purchases, control_purchases, revenue, control_revenue)::text
           FROM campaign_results WHERE kind = 'coupon' AND campaign_id = :coupon),
          (SELECT (t.n, c.n, t.purchases, c.purchases, t.revenue, c.revenue)::text FROM raw t, raw c WHERE NOT t.control AND c.control),
          'members, purchases and revenue per group, net of the refund');
SELECT is((SELECT (uplift_per_member, uplift_low, uplift_high)::text FROM campaign_results WHERE kind = 'coupon' AND campaign_id = :coupon),
          (SELECT (round(t.rpm - c.rpm, 4), round(t.rpm - c.rpm - 1.96 * sqrt(t.v / t.n + c.v / c.n), 4),
                   round(t.rpm - c.rpm + 1.96 * sqrt(t.v / t.n + c.v / c.n), 4))::text FROM raw t, raw c WHERE NOT t.control AND c.control),
          'the uplift per member and its 95% interval');
SELECT is((SELECT (reached, redemptions, discounts, cost)::text FROM campaign_results WHERE kind = 'coupon' AND campaign_id = :coupon),
          (SELECT (count(*), count(*), 10 * count(*), round(10.0 * count(*), 2))::text FROM grp WHERE NOT control AND g % 2 = 0),
          'reached, used, and what it cost');
SELECT is((SELECT cost_per_incremental_purchase FROM campaign_results WHERE kind = 'coupon' AND campaign_id = :coupon),
          (SELECT round(10.0 * (SELECT count(*) FROM grp WHERE NOT control AND g % 2 = 0)
                        / ((t.purchases::numeric / t.n - c.purchases::numeric / c.n) * t.n), 2)
           FROM raw t, raw c WHERE NOT t.control AND c.control), 'cost per incremental purchase');
-- the rule doubled the first treated member's 10, each coupon user's 40 and every member's 20
SELECT is((SELECT (reached, redemptions, points_issued, cost)::text FROM campaign_results WHERE kind = 'rule' AND campaign_id = :rule),
          (SELECT (200, 1 + count(*) + 200, 10 + 40 * count(*) + 20 * 200, round((10 + 40 * count(*) + 20 * 200) * 0.01, 2))::text
           FROM grp WHERE NOT control AND g % 2 = 0),
          'a rule: the purchases it applied to, the points it added and their cost');
-- a completion carried by a merge: its award stays in the absorbed member's ledger, and counts
SELECT create_program('carried', earn_rate => 1) AS q \gset
SELECT enroll(:q, 'app', 'eve') AS eve, enroll(:q, 'app', 'fay') AS fay \gset
SELECT create_challenge(:q, 'two', 'Two purchases', 'purchases', 2, 'campaign', reward_points => '7') AS two \gset
SELECT earn(:fay, 10, reference => 'f1'), earn(:fay, 10, reference => 'f2');
SELECT merge_members(:eve, :fay) IS NOT NULL AS merged;
SELECT is((SELECT (reached, redemptions, points_issued, cost)::text FROM campaign_results WHERE kind = 'challenge' AND campaign_id = :two),
          (SELECT (1, 1, 7, round(7 * point_value, 2))::text FROM programs WHERE program_id = :q),
          'a completion carried by a merge: its award (in the absorbed member''s ledger) and its cost still count');
SELECT throws_ok('SELECT loyalty.set_control_group(''coupon'', -1, 0.1)', 'P0002', NULL, 'an unknown campaign');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');
SELECT * FROM finish();
ROLLBACK;
