-- A purchase's earning rules and its challenges see the same facts: the
-- challenges take the order lines, the local day and the member's tags from
-- what the rules read, and tags a rule puts on the member with this purchase
-- count for the challenges it moves.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(11);

SELECT create_program('challenge rules', earn_rate => 1) AS p \gset
-- a time zone far from UTC, so a local day differs from the UTC day
UPDATE programs SET time_zone = 'Pacific/Kiritimati' WHERE program_id = :p;
SELECT enroll(:p, 'app', 'ann') AS ann, enroll(:p, 'app', 'bob') AS bob \gset

-- rules that read the tags (a condition on them) and put one on the member
SELECT create_earning_rule(:p, 'wine lovers', 'multiply', multiplier => 1, categories => '{wine}',
                           apply_tags => '{wine-lover}') > 0 AS rule;
SELECT create_earning_rule(:p, 'vip', 'multiply', multiplier => 2, tags => '{vip}') > 0 AS rule;
SELECT create_challenge(:p, 'cellar', 'Five purchases for wine lovers', 'purchases', 5, 'campaign',
                        tags => '{wine-lover}', badge => 'cellar') AS cellar \gset
SELECT create_challenge(:p, 'explorer', 'Three categories', 'categories', 3, 'campaign', badge => 'explorer') AS explorer \gset
SELECT create_challenge(:p, 'days', 'Ten days', 'visits', 10, 'campaign', badge => 'days') AS days \gset

SELECT earn(:ann, NULL, reference => 'a1', occurred_at => '2026-03-01 11:30+00',
            lines => '[{"category": "wine", "amount": 12}, {"category": "bread", "amount": 3},
                       {"category": null, "amount": 1}, {"category": "cheese", "amount": 0}]');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :cellar), 1::numeric,
          'the tag the rule put on the member with this purchase moves the tagged challenge');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :explorer), 2::numeric,
          'the categories of the lines the rules read (a line without a category or amount counts for none)');
SELECT is((SELECT last_item FROM challenge_progress WHERE member_id = :ann AND challenge_id = :days), '2026-03-02',
          'the day is the program''s local day (UTC+14), as the rules see it');

-- the items count each day or category with the purchases behind it
SELECT earn(:ann, NULL, reference => 'a2', occurred_at => '2026-03-01 12:00+00',
            lines => '[{"category": "wine", "amount": 5}, {"category": "bread", "amount": 2}]');
SELECT is((SELECT items FROM challenge_progress WHERE member_id = :ann AND challenge_id = :explorer),
          '{"bread": 2, "wine": 2}'::jsonb, 'a category bought again counts its purchases, not again in the value');
SELECT is((SELECT (value, items) FROM challenge_progress WHERE member_id = :ann AND challenge_id = :days),
          (1::numeric, '{"2026-03-02": 2}'::jsonb), '... and so does a day');
-- the periods of the challenges a purchase moves are found among those of
-- others (here of a challenge paused between them)
SELECT set_challenge_active(:explorer, false);
SELECT earn(:ann, NULL, reference => 'a3', occurred_at => '2026-03-02 12:00+00',
            lines => '[{"category": "cheese", "amount": 4}]');
SELECT is((SELECT array_agg(value ORDER BY challenge_id) FROM challenge_progress WHERE member_id = :ann),
          ARRAY[3, 2, 2]::numeric[], 'a paused challenge does not move; those around it do');
SELECT set_challenge_active(:explorer, true);
SELECT earn(:ann, NULL, reference => 'a4', occurred_at => '2026-03-02 13:00+00',
            lines => '[{"category": "cheese", "amount": 4}]');
SELECT is((SELECT (value, items, completed_at IS NOT NULL) FROM challenge_progress
           WHERE member_id = :ann AND challenge_id = :explorer),
          (3::numeric, '{"bread": 2, "cheese": 1, "wine": 2}'::jsonb, true),
          'active again, it continues its period: a third category completes it');

-- a member the rules do not tag: the tags read by the rules are used as they are
SELECT tag_member(:bob, 'vip');
SELECT earn(:bob, NULL, reference => 'b1', occurred_at => '2026-03-01 09:00+00',
            lines => '[{"category": "bread", "amount": 10}]') AS bob_points \gset
SELECT is(:bob_points::bigint, 20::bigint, 'the vip rule read the tags');
SELECT is((SELECT count(*) FROM challenge_progress WHERE member_id = :bob AND challenge_id = :cellar), 0::bigint,
          'no wine-lover tag: the tagged challenge does not move');
SELECT tag_member(:bob, 'wine-lover');
SELECT earn(:bob, NULL, reference => 'b2', occurred_at => '2026-03-01 10:00+00',
            lines => '[{"category": "bread", "amount": 10}]');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :bob AND challenge_id = :cellar), 1::numeric,
          'tagged by the application: it moves');
SELECT is_empty('SELECT * FROM verify()', 'verify() finds the books sound');

SELECT * FROM finish();
ROLLBACK;
