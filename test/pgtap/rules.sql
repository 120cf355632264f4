-- Earning rules (src/rules.c): every rule kind, conditions, stacking, stop,
-- order lines, explanation, preview, cache invalidation; activities and caps.
BEGIN;
SELECT plan(54);

SELECT loyalty.create_program('rules', earn_rate => 1) AS p \gset
UPDATE loyalty.programs SET time_zone = 'Europe/Paris' WHERE program_id = :p;
SELECT loyalty.enroll(:p, 'pos', 'r-1', birthday => '1990-03-15') AS m \gset
SELECT loyalty.enroll(:p, 'pos', 'r-2') AS m2 \gset

-- 2026-11-23 is a Monday, 2026-11-21 a Saturday (Paris)
\set mon '''2026-11-23 10:00:00+01'''
\set sat '''2026-11-21 10:00:00+01'''

SELECT is(loyalty.earn(:m, 10.9, occurred_at => :mon)::bigint, 10::bigint, 'no rules: amount x rate, floored');
SELECT is((SELECT details FROM loyalty.ledger WHERE member_id = :m AND kind = 'earn'), NULL,
          'no rules and no lines: no explanation stored (the short path)');

-- category multiplier on lines
SELECT ok(loyalty.create_earning_rule(:p, 'books x3', 'multiply', multiplier => 3, categories => ARRAY['books']) > 0,
          'a category multiplier is created');
SELECT is(loyalty.earn(:m, NULL, occurred_at => :mon,
                       lines => '[{"category": "books", "quantity": 2, "amount": 20}, {"category": "food", "amount": 5.5}]')::bigint,
          65::bigint, 'x3 applies to the books line only: 60 + 5.5, floored once');
SELECT is((SELECT amount FROM loyalty.ledger WHERE member_id = :m AND kind = 'earn' ORDER BY created_at DESC, entry_id DESC LIMIT 1),
          25.5, 'the earn base is the sum of the lines');
SELECT results_eq(format($$SELECT r->>'rule', r->>'effect', r->'lines' FROM loyalty.ledger l,
                           jsonb_array_elements(l.details->'rules') r
                           WHERE l.member_id = %s AND l.entry_id = (SELECT max(entry_id) FROM loyalty.ledger WHERE member_id = %s)$$, :m, :m),
                  $$VALUES ('books x3', 'x3', '[1]'::jsonb)$$, 'the explanation names the rule, its effect and its lines');
SELECT is((SELECT loyalty.earn_explanation(:m, max(entry_id))->>'line_points' FROM loyalty.ledger WHERE member_id = :m),
          '65.5', 'earn_explanation gives the exact points before rounding');

-- weekend promotion, stacking multiply (compounds)
SELECT loyalty.create_earning_rule(:p, 'double weekend', 'multiply', multiplier => 2, weekdays => ARRAY[6, 7]);
SELECT is(loyalty.earn(:m, 10, occurred_at => :mon)::bigint, 10::bigint, 'the weekend rule does not apply on Monday');
SELECT is(loyalty.earn(:m, 10, occurred_at => :sat)::bigint, 20::bigint, 'it doubles on Saturday (program time zone)');
SELECT is(loyalty.earn(:m, NULL, occurred_at => :sat, lines => '[{"category": "books", "amount": 10}]')::bigint,
          60::bigint, 'multiply rules compound: books x3 x2');

-- an add rule adds its extra only
SELECT loyalty.create_earning_rule(:p, 'app +50%', 'multiply', multiplier => 1.5, stacking => 'add', channels => ARRAY['app']);
SELECT is(loyalty.earn(:m, 10, 'app', occurred_at => :sat)::bigint, 25::bigint, 'add: 10 x (2 + 0.5) on the app');
SELECT is(loyalty.earn(:m, 10, 'pos', occurred_at => :sat)::bigint, 20::bigint, 'the channel condition excludes the till');

-- best_of: only the best one counts
SELECT loyalty.create_earning_rule(:p, 'store promo x4', 'multiply', multiplier => 4, stacking => 'best_of', stores => ARRAY['S1']);
SELECT loyalty.create_earning_rule(:p, 'store promo x5', 'multiply', multiplier => 5, stacking => 'best_of', stores => ARRAY['S1', 'S2']);
SELECT is(loyalty.earn(:m, 10, occurred_at => :mon, store => 'S1')::bigint, 50::bigint, 'best_of keeps the best of x4 and x5');
SELECT is(loyalty.earn(:m, 10, occurred_at => :mon, store => 'S3')::bigint, 10::bigint, 'the store condition excludes other stores');

-- exclusion with stop: shipping earns nothing, whatever comes later
SELECT loyalty.create_earning_rule(:p, 'no points on shipping', 'multiply', multiplier => 0, priority => 0, stop => true,
                                   categories => ARRAY['shipping']);
SELECT is(loyalty.earn(:m, NULL, occurred_at => :sat,
                       lines => '[{"category": "shipping", "amount": 7}, {"category": "food", "amount": 10}]')::bigint,
          20::bigint, 'a x0 rule with stop excludes shipping even on a double weekend');

-- tier and segment conditions
SELECT loyalty.create_earning_rule(:p, 'gold x2', 'multiply', multiplier => 2, min_tier => '2:Gold');
SELECT is(loyalty.earn(:m, 10, occurred_at => :mon)::bigint, 10::bigint, 'no tier: the gold rule does not apply');
UPDATE loyalty.accounts SET tier = '3:Platinum' WHERE member_id = :m;
SELECT is(loyalty.earn(:m, 10, occurred_at => :mon)::bigint, 20::bigint, 'a higher tier qualifies for the gold rule');
UPDATE loyalty.accounts SET tier = NULL WHERE member_id = :m;
SELECT loyalty.create_earning_rule(:p, 'win back', 'multiply', multiplier => 3, segments => ARRAY['At Risk']);
UPDATE loyalty.accounts SET segment = 'At Risk' WHERE member_id = :m2;
SELECT is(loyalty.earn(:m2, 10, occurred_at => :mon)::bigint, 30::bigint, 'the segment rule applies to its segment');

-- first purchase bonus (m2 has bought now), spend threshold, birthday
SELECT loyalty.create_earning_rule(:p, 'welcome bonus', 'bonus', bonus_points => '100', first_purchase => true);
SELECT loyalty.enroll(:p, 'pos', 'r-3') AS m3 \gset
SELECT is(loyalty.earn(:m3, 10, occurred_at => :mon)::bigint, 110::bigint, 'first purchase: +100');
SELECT is(loyalty.earn(:m3, 10, occurred_at => :mon)::bigint, 10::bigint, 'the second purchase gets no welcome bonus');
SELECT loyalty.create_earning_rule(:p, 'big basket', 'bonus', bonus_points => '25', min_amount => 100);
SELECT is(loyalty.earn(:m3, 99.99, occurred_at => :mon)::bigint, 99::bigint, 'below the threshold: no bonus');
SELECT is(loyalty.earn(:m3, 100, occurred_at => :mon)::bigint, 125::bigint, 'at the threshold: +25');
SELECT loyalty.create_earning_rule(:p, 'birthday month', 'multiply', multiplier => 2, birthday => 'month');
SELECT is(loyalty.earn(:m, 10, occurred_at => '2026-03-02 12:00+01')::bigint, 20::bigint, 'the birthday month doubles');
SELECT is(loyalty.earn(:m3, 10, occurred_at => '2026-03-02 12:00+01')::bigint, 10::bigint, 'a member without birthday gets no birthday rule');

-- best_of bonuses and stop on a bonus
SELECT loyalty.create_earning_rule(:p, 'promo A', 'bonus', bonus_points => '5', stacking => 'best_of', priority => 200);
SELECT loyalty.create_earning_rule(:p, 'promo B', 'bonus', bonus_points => '8', stacking => 'best_of', priority => 201);
SELECT is(loyalty.earn(:m3, 10, occurred_at => :mon)::bigint, 18::bigint, 'of two best_of bonuses only the larger counts');
SELECT loyalty.create_earning_rule(:p, 'stopper', 'bonus', bonus_points => '1', priority => 150, stop => true);
SELECT is(loyalty.earn(:m3, 10, occurred_at => :mon)::bigint, 11::bigint, 'a bonus with stop ends the evaluation');

-- validity window; switching a rule off takes effect at once (cache)
SELECT loyalty.set_earning_rule_active(rule_id, false) FROM loyalty.earning_rules WHERE name = 'stopper';
SELECT loyalty.create_earning_rule(:p, 'november only', 'multiply', multiplier => 10,
                                   valid_from => '2026-11-01 00:00+01', valid_until => '2026-11-22 00:00+01');
SELECT is(loyalty.earn(:m2, 1, occurred_at => :sat)::bigint, 68::bigint,
          'inside the window: 1 x 2 (weekend) x 3 (segment) x 10 (november), + 8 (best bonus)');
SELECT is(loyalty.earn(:m2, 1, occurred_at => :mon)::bigint, 11::bigint,
          'after the window (and on a Monday): 1 x 3 + 8');

-- preview: same answer, no write
CREATE TEMP TABLE before AS SELECT count(*) AS n FROM loyalty.ledger;
SELECT is((loyalty.preview_earn(:m, NULL, '[{"category": "books", "amount": 20}]', occurred_at => :mon)->>'points')::bigint,
          68::bigint, 'preview: books x3 plus the best bonus');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT n FROM before), 'preview writes nothing');
SELECT is(loyalty.earn(:m, NULL, occurred_at => :mon, lines => '[{"category": "books", "amount": 20}]')::bigint,
          68::bigint, '... and the earn then credits what the preview said');

-- bad input
SELECT throws_ok(format($$SELECT loyalty.earn(%s, NULL, lines => '{"amount": 1}')$$, :m), '22023',
                 'order lines must be a JSON array of objects', 'lines must be an array');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, NULL, lines => '[{"category": "x"}]')$$, :m), '22023',
                 'order line 1 has no amount', 'a line needs an amount');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, NULL, lines => '[{"amount": -3}]')$$, :m), '22023', NULL,
                 'a negative line is refused');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 5, lines => '[{"amount": 3}]')$$, :m), '22023',
                 'amount 5 does not match the sum of the order lines 3', 'amount must match the lines');
SELECT throws_ok(format($$SELECT loyalty.create_earning_rule(%s, 'bad', 'multiply', multiplier => 2, weekdays => ARRAY[8])$$, :p),
                 '22023', NULL, 'an invalid weekday is refused');
SELECT throws_ok(format($$SELECT loyalty.create_earning_rule(%s, 'bad', 'bonus', bonus_points => '5', stacking => 'multiply')$$, :p),
                 '22023', NULL, 'a multiplying bonus is refused');
SELECT throws_ok(format($$SELECT loyalty.create_earning_rule(%s, 'books x3', 'multiply', multiplier => 2)$$, :p),
                 '23505', NULL, 'rule names are unique per program');

-- activities: caps and budget
SELECT loyalty.set_activity_rule(:p, 'review', '20', cap_per_day => 2, cap_lifetime => 3);
SELECT is(loyalty.record_activity(:m3, 'review')::bigint, 20::bigint, 'a review earns 20');
SELECT is(loyalty.record_activity(:m3, 'review')::bigint, 20::bigint, 'a second one too');
SELECT is(loyalty.record_activity(:m3, 'review')::bigint, 0::bigint, 'the third one today is capped');
SELECT loyalty.set_activity_rule(:p, 'survey', '5', cap_per_week => 1);
SELECT is(loyalty.record_activity(:m2, 'survey')::bigint + loyalty.record_activity(:m2, 'survey')::bigint, 5::bigint,
          'a weekly cap of 1 pays the first survey of the week only');
SELECT loyalty.set_activity_rule(:p, 'custom:quiz', '3', cap_per_month => 2);
SELECT is(loyalty.record_activity(:m2, 'custom:quiz')::bigint + loyalty.record_activity(:m2, 'custom:quiz')::bigint
          + loyalty.record_activity(:m2, 'custom:quiz')::bigint, 6::bigint, 'a monthly cap of 2 pays two quizzes');
SELECT throws_ok(format($$SELECT loyalty.set_activity_rule(%s, 'dance', '3')$$, :p), '22023', NULL, 'an unknown activity kind is refused');
SELECT loyalty.set_activity_rule(:p, 'signup', '50', budget => '60');
SELECT is(loyalty.record_activity(:m, 'signup')::bigint + loyalty.record_activity(:m2, 'signup')::bigint, 50::bigint,
          'the program budget pays the first signup and refuses the second');
SELECT results_eq('SELECT outcome, count(*) FROM loyalty.activities GROUP BY 1 ORDER BY 1',
                  $$VALUES ('awarded', 6::bigint), ('budget_exhausted', 1::bigint), ('capped', 3::bigint)$$,
                  'every activity outcome is recorded');
SELECT throws_ok(format($$SELECT loyalty.record_activity(%s, 'app_download')$$, :m), '22023', NULL, 'an activity without a rule is refused');

-- every change of the rules or the tiers bumps the program's rules version
-- (the cache key), through the API and by a direct write alike
CREATE TEMP TABLE rv (step text, v bigint);
CREATE FUNCTION pg_temp.rv(step text) RETURNS void LANGUAGE sql AS
    $$ INSERT INTO rv SELECT step, rules_version FROM loyalty.programs WHERE program_id = current_setting('rv.p')::bigint $$;
SELECT set_config('rv.p', :'p', true);
SELECT pg_temp.rv('start');
SELECT loyalty.create_earning_rule(:p, 'rv rule', 'multiply', multiplier => 1);
SELECT pg_temp.rv('create_earning_rule');
SELECT loyalty.set_earning_rule_active(rule_id, false) FROM loyalty.earning_rules WHERE name = 'rv rule';
SELECT pg_temp.rv('set_earning_rule_active');
UPDATE loyalty.earning_rules SET priority = 7 WHERE name = 'rv rule';
SELECT pg_temp.rv('direct UPDATE of earning_rules');
SELECT loyalty.define_tier(:p, 9, 'RV', 1000000);
SELECT pg_temp.rv('define_tier');
DELETE FROM loyalty.tiers WHERE program_id = :p AND rank = 9;
SELECT pg_temp.rv('direct DELETE from tiers');
SELECT is((SELECT r.v FROM rv r WHERE r.step = s.step), (SELECT r.v + 1 FROM rv r WHERE r.step = s.prev),
          s.step || ' bumps rules_version')
FROM (VALUES ('create_earning_rule', 'start'), ('set_earning_rule_active', 'create_earning_rule'),
             ('direct UPDATE of earning_rules', 'set_earning_rule_active'),
             ('define_tier', 'direct UPDATE of earning_rules'), ('direct DELETE from tiers', 'define_tier')) s(step, prev);

-- a rule created and rolled back is forgotten, though the program's rules
-- version it was read under is reused by the next change
SELECT loyalty.create_program('rolled back') AS rb \gset
SELECT loyalty.enroll(:rb, 'app', 'rb-1') AS rbm \gset
SELECT loyalty.create_earning_rule(:rb, 'x2', 'multiply', 2);
SELECT loyalty.earn(:rbm, 10, reference => 'rb0');
SAVEPOINT before_x5;
SELECT loyalty.create_earning_rule(:rb, 'x5', 'multiply', 5);
SELECT loyalty.earn(:rbm, 10, reference => 'rb1');
ROLLBACK TO SAVEPOINT before_x5;
SELECT loyalty.create_earning_rule(:rb, 'x3', 'multiply', 3);
SELECT is(loyalty.earn(:rbm, 10, reference => 'rb2'), 60::bigint, 'a rolled-back rule no longer applies: 10 x 2 x 3');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
SELECT * FROM finish();
ROLLBACK;
