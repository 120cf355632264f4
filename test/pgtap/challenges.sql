-- Challenges, badges and streaks: progress moved in the same transaction as
-- the purchase, activity or referral; completion pays points through the
-- ledger and a badge once; a refund takes progress back and undoes the
-- completion (points clawed back by policy); member_progress for the app.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(59);

SELECT create_program('challenges', earn_rate => 1) AS p \gset
SELECT enroll(:p, 'app', 'ann') AS ann, enroll(:p, 'app', 'bob') AS bob \gset
-- the month's purchases of this test fall in the program's month of now()
CREATE TEMP TABLE t0 AS
SELECT greatest(x.month_start, now() - interval '1 hour') AS at, x.month_start
FROM (SELECT date_trunc('month', now() AT TIME ZONE p.time_zone) AT TIME ZONE p.time_zone AS month_start
      FROM programs p WHERE p.program_id = :p) x;

SELECT create_challenge(:p, 'five', 'Five visits this month', 'purchases', 5, 'month', repeating => true,
                        reward_points => '50', badge => 'Regular') AS five \gset
SELECT create_challenge(:p, 'books', 'Spend 100 on books', 'spend', 100, 'campaign', reward_points => '20',
                        categories => '{books}') AS books \gset
SELECT create_challenge(:p, 'streak', 'Three weeks in a row', 'streak_weeks', 3, 'streak', reward_points => '30') AS streak \gset
SELECT create_challenge(:p, 'explorer', 'Three categories this month', 'categories', 3, 'month', badge => 'explorer') AS explorer \gset
SELECT create_challenge(:p, 'reviews', 'Two reviews a week', 'activities', 2, 'week', reward_points => '5',
                        activities => '{review}') AS reviews \gset
SELECT is((SELECT has_challenges FROM programs WHERE program_id = :p), true, 'the program now has challenges');

SELECT is(jsonb_array_length(member_progress(:ann) -> 'challenges'), 5, 'member_progress lists the five open challenges');
SELECT is((SELECT (c ->> 'value')::numeric FROM jsonb_array_elements(member_progress(:ann) -> 'challenges') c
           WHERE c ->> 'code' = 'five'), 0::numeric, '... with no progress yet');
SELECT ok((SELECT (c ->> 'time_left')::interval > '0' FROM jsonb_array_elements(member_progress(:ann) -> 'challenges') c
           WHERE c ->> 'code' = 'five'), '... and time left');

-- five purchases: completed once, 50 points through the ledger, the badge
SELECT earn(:ann, 10, reference => 'a' || g, occurred_at => (SELECT at FROM t0)) FROM generate_series(1, 4) g;
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :five), 4::numeric, 'four purchases: 4 of 5');
SELECT is((SELECT count(*) FROM ledger WHERE member_id = :ann AND kind = 'award'), 0::bigint, 'nothing paid yet');
SELECT earn(:ann, 10, reference => 'a5', occurred_at => (SELECT at FROM t0));
SELECT is((SELECT points::bigint FROM ledger WHERE member_id = :ann AND kind = 'award'), 50::bigint,
          'the fifth completes it: 50 points awarded');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :ann), 100::bigint, '... on the balance (50 earned + 50)');
SELECT is((SELECT badge FROM member_badges WHERE member_id = :ann), 'regular', '... and the badge (kept in lower case)');
SELECT is((SELECT array_agg(kind ORDER BY event_id) FROM events WHERE member_id = :ann AND kind IN ('challenge.completed', 'badge.earned')),
          ARRAY['challenge.completed', 'badge.earned'], '... announced by events');
SELECT earn(:ann, 10, reference => 'a6', occurred_at => (SELECT at FROM t0));
SELECT is((SELECT count(*) FROM ledger WHERE member_id = :ann AND kind = 'award'), 1::bigint, 'a sixth purchase pays nothing more');
-- a replayed purchase moves nothing
SELECT earn(:ann, 10, reference => 'a7', idempotency_key => 'k7', occurred_at => (SELECT at FROM t0));
SELECT earn(:ann, 10, reference => 'a7', idempotency_key => 'k7', occurred_at => (SELECT at FROM t0));
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :five), 7::numeric,
          'a replayed key counts once');
-- a purchase back-dated into last month counts for last month
SELECT earn(:ann, 10, reference => 'old', occurred_at => (SELECT at FROM t0) - interval '1 month');
SELECT is((SELECT count(*) FROM challenge_progress WHERE member_id = :ann AND challenge_id = :five), 2::bigint,
          'a purchase of last month opens last month''s period');

-- spend on lines of a category; a refund takes it back and claws back the points
SELECT earn(:bob, NULL, reference => 'b1', lines => '[{"category": "books", "amount": 60}, {"category": "food", "amount": 40}]');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :bob AND challenge_id = :books), 60::numeric,
          'only the books line counts');
SELECT earn(:bob, NULL, reference => 'b2', lines => '[{"category": "books", "amount": 50}]');
SELECT is((SELECT completed_at IS NOT NULL FROM challenge_progress WHERE member_id = :bob AND challenge_id = :books), true,
          '110 on books completes it');
SELECT is((SELECT sum(points::bigint)::bigint FROM ledger WHERE member_id = :bob AND kind = 'award'), 20::bigint, '... 20 points');
SELECT refund(:bob, 'b2', 25);
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :bob AND challenge_id = :books), 85::numeric,
          'a partial refund takes back its share of the spend');
SELECT is((SELECT completed_at FROM challenge_progress WHERE member_id = :bob AND challenge_id = :books), NULL,
          '... below the goal: the completion is undone');
SELECT is((SELECT sum(points::bigint)::bigint FROM ledger WHERE member_id = :bob AND kind IN ('award', 'reverse') AND reference = 'challenge:books'),
          0::bigint, '... and its 20 points clawed back');
SELECT earn(:bob, NULL, reference => 'b3', lines => '[{"category": "books", "amount": 15}]');
SELECT is((SELECT sum(points::bigint)::bigint FROM ledger WHERE member_id = :bob AND kind = 'award' AND reference = 'challenge:books'),
          40::bigint, 'completed again (100): a new award, its own key');
-- the program lets paid completions stand
SELECT set_challenge_policy(:p, false);
SELECT refund(:bob, 'b3');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :bob AND challenge_id = :books), 85::numeric,
          'without clawback a refund still takes the spend back');
SELECT isnt((SELECT completed_at FROM challenge_progress WHERE member_id = :bob AND challenge_id = :books), NULL,
          '... but the paid completion stands');
SELECT set_challenge_policy(:p, true);

-- categories: distinct categories of the month; a badge-only completion is undone by a refund
SELECT earn(:bob, NULL, reference => 'c1', lines => '[{"category": "music", "amount": 5}, {"category": "books", "amount": 5}]');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :bob AND challenge_id = :explorer
           AND period_start = (SELECT month_start FROM t0)), 3::numeric, 'books, food, music: three categories');
SELECT is((SELECT badge FROM member_badges WHERE member_id = :bob), 'explorer', '... the explorer badge');
SELECT refund(:bob, 'c1');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :bob AND challenge_id = :explorer
           AND period_start = (SELECT month_start FROM t0)), 2::numeric, 'refunded: music is gone, books stays (another purchase)');
SELECT is((SELECT count(*) FROM member_badges WHERE member_id = :bob), 0::bigint, '... and the unpaid completion with its badge');

-- a streak: a purchase in each of three consecutive weeks
SELECT enroll(:p, 'app', 'cy') AS cy \gset
SELECT earn(:cy, 5, reference => 's1', occurred_at => now() - interval '14 days');
SELECT earn(:cy, 5, reference => 's1b', occurred_at => now() - interval '14 days');
SELECT earn(:cy, 5, reference => 's2', occurred_at => now() - interval '7 days');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :cy AND challenge_id = :streak), 2::numeric,
          'two weeks in a row (two purchases in one week count once)');
SELECT earn(:cy, 5, reference => 's3');
SELECT is((SELECT points::bigint FROM ledger WHERE member_id = :cy AND kind = 'award'), 30::bigint, 'the third week completes the streak');
SELECT enroll(:p, 'app', 'dee') AS dee \gset
SELECT earn(:dee, 5, reference => 'd1', occurred_at => now() - interval '21 days');
SELECT earn(:dee, 5, reference => 'd2');
SELECT is((SELECT array_agg(value ORDER BY period_start) FROM challenge_progress WHERE member_id = :dee AND challenge_id = :streak),
          ARRAY[1, 1]::numeric[], 'a week missed: the streak starts again');

-- activities count, whatever their points
SELECT set_activity_rule(:p, 'review', '1', cap_per_day => 1);
SELECT record_activity(:cy, 'review'), record_activity(:cy, 'review');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :cy AND challenge_id = :reviews), 2::numeric,
          'two reviews (one capped) count');
SELECT is((SELECT sum(points::bigint)::bigint FROM ledger WHERE member_id = :cy AND reference = 'challenge:reviews'), 5::bigint,
          '... and complete the week''s challenge');

-- a referral counts for the referrer once the new member buys
SELECT create_challenge(:p, 'ambassador', 'Bring a friend', 'referrals', 1, 'campaign', badge => 'ambassador') AS amb \gset
SELECT set_referral_rules(:p, '10', '0');
SELECT enroll(:p, 'app', 'eve', referral_code => referral_code(:cy)) AS eve \gset
SELECT is((SELECT count(*) FROM member_badges WHERE member_id = :cy AND badge = 'ambassador'), 0::bigint, 'no badge before the friend buys');
SELECT earn(:eve, 30, reference => 'e1');
SELECT is((SELECT count(*) FROM member_badges WHERE member_id = :cy AND badge = 'ambassador'), 1::bigint, '... the ambassador badge after');

-- a backfill through earn_batch moves challenges as the sales one by one would
SELECT enroll(:p, 'app', 'fay') AS fay, enroll(:p, 'app', 'gus') AS gus \gset
SELECT earn(:fay, 10, reference => 'f' || g, occurred_at => (SELECT at FROM t0) - make_interval(mins => g)) FROM generate_series(6, 1, -1) g;   -- in the order of the sales
SELECT * FROM earn_batch(array_fill(:gus::bigint, ARRAY[6]), array_fill(10::numeric, ARRAY[6]),
                         ARRAY(SELECT 'g' || g FROM generate_series(1, 6) g),
                         ARRAY(SELECT (SELECT at FROM t0) - make_interval(mins => g) FROM generate_series(1, 6) g), NULL, NULL);
SELECT is((SELECT array_agg(value ORDER BY challenge_id) FROM challenge_progress WHERE member_id = :gus),
          (SELECT array_agg(value ORDER BY challenge_id) FROM challenge_progress WHERE member_id = :fay), 'earn_batch: the same progress');
SELECT is((SELECT balance FROM accounts WHERE member_id = :gus), (SELECT balance FROM accounts WHERE member_id = :fay),
          '... the same award');

-- member_progress and the leaderboard
SELECT is((SELECT (c ->> 'value')::numeric FROM jsonb_array_elements(member_progress(:ann) -> 'challenges') c
           WHERE c ->> 'code' = 'five'), 7::numeric, 'member_progress shows this month''s progress');
SELECT is((SELECT c ->> 'completed_at' IS NOT NULL FROM jsonb_array_elements(member_progress(:ann) -> 'challenges') c
           WHERE c ->> 'code' = 'five'), true, '... completed');
SELECT is(member_progress(:ann) -> 'badges' -> 0 ->> 'badge', 'regular', '... and the badges');
SELECT is((SELECT member_id FROM challenge_leaderboard WHERE challenge_id = :five AND rank = 1
           AND period_start = (SELECT month_start FROM t0)), :ann::bigint, 'the leaderboard ranks her first');

-- a challenge stopped moves nothing
SELECT set_challenge_active(:five, false);
SELECT earn(:ann, 10, reference => 'a8', occurred_at => (SELECT at FROM t0));
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :five
           AND period_start = (SELECT month_start FROM t0)), 7::numeric, 'a stopped challenge moves nothing');

-- N days from the first step: a purchase continues the period it falls in
SELECT create_challenge(:p, 'week3', 'Three purchases in seven days', 'purchases', 3, 'days', period_days => 7,
                        repeating => true, reward_points => '5') AS week3 \gset
SELECT enroll(:p, 'app', 'hal') AS hal \gset
SELECT earn(:hal, 5, reference => 'h1', occurred_at => now() - interval '10 days');
SELECT earn(:hal, 5, reference => 'h2', occurred_at => now() - interval '5 days');
SELECT earn(:hal, 5, reference => 'h3');
SELECT is((SELECT array_agg(value ORDER BY period_start) FROM challenge_progress WHERE member_id = :hal AND challenge_id = :week3),
          ARRAY[2, 1]::numeric[], 'days: two purchases within seven days of the first, the third opens a new period');
SELECT is((SELECT array_agg(period_end - period_start) FROM challenge_progress WHERE member_id = :hal AND challenge_id = :week3),
          ARRAY[interval '7 days', interval '7 days'], '... each seven days long');
-- the first days of membership: a purchase dated before joining does not count
SELECT create_challenge(:p, 'welcome', 'Two purchases in your first month', 'purchases', 2, 'joining', period_days => 30,
                        reward_points => '15') AS welcome \gset
SELECT earn(:hal, 5, reference => 'h4');
SELECT enroll(:p, 'app', 'ivy') AS ivy \gset
SELECT earn(:ivy, 5, reference => 'i0', occurred_at => now() - interval '1 day');
SELECT earn(:ivy, 5, reference => 'i1');
SELECT is((SELECT count(*) FROM challenge_progress WHERE member_id = :hal AND challenge_id = :welcome), 1::bigint,
          'joining: a member of ten days counts');
SELECT is((SELECT (value, period_start) FROM challenge_progress WHERE member_id = :ivy AND challenge_id = :welcome),
          (SELECT (1::numeric, joined_at) FROM members WHERE member_id = :ivy), '... from the day it joined, not before');
-- a purchase's channel and minimum amount
SELECT create_challenge(:p, 'app3', 'Three app orders of 20', 'purchases', 3, 'month', reward_points => '5',
                        channels => '{app}', min_amount => 20) AS app3 \gset
SELECT earn(:ivy, 25, reference => 'i2', channel => 'app'), earn(:ivy, 25, reference => 'i3', channel => 'pos'),
       earn(:ivy, 15, reference => 'i4', channel => 'app');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ivy AND challenge_id = :app3), 1::numeric,
          'channels and min_amount: only the app order of 25 counts');

-- periods in the program's time zone, across daylight saving time
SELECT is(loyalty.challenge_period('month', NULL, NULL, NULL, '2026-03-29 12:00+02', 'Europe/Paris', NULL),
          tstzrange('2026-03-01 00:00+01', '2026-04-01 00:00+02'), 'period: the local month (DST starts in it)');
SELECT is(loyalty.challenge_period('week', NULL, NULL, NULL, '2026-11-01 01:30-04', 'America/New_York', NULL),
          tstzrange('2026-10-26 00:00-04', '2026-11-02 00:00-05'), 'period: the local ISO week, from Monday');
SELECT is(loyalty.challenge_period('streak', NULL, NULL, NULL, '2027-01-01 00:30+09', 'Asia/Tokyo', NULL),
          tstzrange('2026-12-28 00:00+09', NULL), 'period: a streak from its local week on, open-ended');
SELECT is(loyalty.challenge_period('campaign', NULL, NULL, '2027-01-01', '2026-12-01', 'UTC', NULL),
          tstzrange('-infinity', '2027-01-01'), 'period: a campaign''s window');
SELECT throws_ok($$SELECT loyalty.challenge_period('fortnight', NULL, NULL, NULL, now(), 'UTC', NULL)$$,
                 '22023', 'unknown challenge period "fortnight"', 'period: an unknown one is refused');

-- a challenge created and rolled back is forgotten, though the program's
-- rules version it was read under is reused by the next change
SELECT enroll(:p, 'app', 'jo') AS jo \gset
SAVEPOINT before_gone;
SELECT create_challenge(:p, 'gone', 'Rolled back', 'purchases', 100, 'month', reward_points => '1') AS gone \gset
SELECT earn(:jo, 1, reference => 'j1');
ROLLBACK TO SAVEPOINT before_gone;
SELECT create_challenge(:p, 'kept', 'Kept', 'purchases', 100, 'month', reward_points => '1') AS kept \gset
SELECT earn(:jo, 1, reference => 'j2');
SELECT is((SELECT array_agg(challenge_id) FROM challenge_progress WHERE member_id = :jo AND challenge_id IN (:gone, :kept)),
          ARRAY[:kept]::bigint[], 'a rolled-back challenge moves nothing, the one made instead moves');

-- bad definitions are refused
SELECT throws_ok(format('SELECT loyalty.create_challenge(%s, %L, %L, %L, 3, %L, reward_points => %L)', :p, 'x', 'x', 'hugs', 'month', '5'),
                 '22023', NULL, 'an unknown metric');
SELECT throws_ok(format('SELECT loyalty.create_challenge(%s, %L, %L, %L, 3, %L, reward_points => %L)', :p, 'x', 'x', 'purchases', 'days', '5'),
                 '22023', NULL, 'days without period_days');
SELECT throws_ok(format('SELECT loyalty.create_challenge(%s, %L, %L, %L, 3, %L)', :p, 'x', 'x', 'purchases', 'month'),
                 '22023', NULL, 'no reward');
SELECT throws_ok(format('SELECT loyalty.create_challenge(%s, %L, %L, %L, 2.5, %L, reward_points => %L)', :p, 'x', 'x', 'purchases', 'month', '5'),
                 '22023', NULL, 'a fractional count');
SELECT throws_ok(format('SELECT loyalty.create_challenge(%s, %L, %L, %L, 3, %L, reward_points => %L)', :p, 'five', 'x', 'purchases', 'month', '5'),
                 '23505', NULL, 'a code taken');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');
-- what verify() would find had the rows been changed by hand (the latest
-- period of each challenge is an element of the member's state row, the
-- earlier ones rows of challenge_periods)
UPDATE challenge_state SET award_entries = array_fill(NULL::bigint, ARRAY[cardinality(challenge_ids)])
WHERE member_id = :ann;
UPDATE challenge_periods SET award_entry = NULL WHERE member_id = :ann;
UPDATE challenge_state SET completed_ats[array_position(challenge_ids, :amb::bigint)] = NULL
WHERE member_id = :cy AND :amb = ANY (challenge_ids);
UPDATE challenge_periods SET completed_at = NULL WHERE member_id = :cy AND challenge_id = :amb;
SELECT is((SELECT count(*) FROM verify() WHERE invariant = 'a paid challenge completion names its award'), 1::bigint,
          'verify(): a paid completion without its award');
SELECT is((SELECT count(*) FROM verify() WHERE invariant = 'a badge comes from a completed challenge period'), 1::bigint,
          'verify(): a badge without its completion');
SELECT * FROM finish();
ROLLBACK;
