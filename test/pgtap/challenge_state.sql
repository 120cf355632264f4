-- Where challenge progress is kept: the latest period of each challenge in
-- the member's one challenge_state row (what a purchase reads and writes),
-- every earlier period a row of challenge_periods (moved there when a later
-- period of its challenge opens, or written there by a fact dated before the
-- latest period); challenge_progress shows both.  Back-dated purchases,
-- refunds, completions, a challenge done once, rolling periods and merges
-- keep them apart and right, and verify() checks how they fit together.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(44);

SELECT create_program('state') AS p \gset
-- times in the program's months: this month (an hour ago at most, never
-- before its start), last month and the one before
CREATE TEMP TABLE t0 AS
SELECT greatest(x.m0, now() - interval '1 hour') AS now_at, x.m0 - interval '20 days' AS last_at,
       x.m0 - interval '50 days' AS older_at
FROM (SELECT date_trunc('month', now() AT TIME ZONE p.time_zone) AT TIME ZONE p.time_zone AS m0
      FROM programs p WHERE p.program_id = :p) x;
SELECT now_at, last_at, older_at FROM t0 \gset

SELECT create_challenge(:p, 'monthly', 'Three purchases a month', 'purchases', 3, 'month', repeating => true,
                        reward_points => '10') AS monthly \gset
SELECT create_challenge(:p, 'once', 'Two purchases in a month, once', 'purchases', 2, 'month',
                        badge => 'once') AS once \gset
SELECT create_challenge(:p, 'tenday', 'Five purchases in ten days', 'purchases', 5, 'days', period_days => 10,
                        repeating => true, reward_points => '5') AS tenday \gset
SELECT enroll(:p, 'app', 'ann', joined_at => now() - interval '200 days') AS ann,
       enroll(:p, 'app', 'bob', joined_at => now() - interval '200 days') AS bob,
       enroll(:p, 'app', 'cy', joined_at => now() - interval '200 days') AS cy,
       enroll(:p, 'app', 'dee', joined_at => now() - interval '200 days') AS dee \gset

-- one purchase moving three challenges: one state row of three periods
SELECT earn(:ann, 10, reference => 'a1', occurred_at => :'last_at');
SELECT is((SELECT cardinality(challenge_ids) FROM challenge_state WHERE member_id = :ann), 3,
          'a purchase moving three challenges writes one state row of three periods');
SELECT is((SELECT count(*) FROM challenge_periods WHERE member_id = :ann), 0::bigint, '... and no earlier period');
SELECT is((SELECT count(*) FROM challenge_progress WHERE member_id = :ann), 3::bigint,
          'challenge_progress shows the three');

-- this month's purchase: last month's period moves to challenge_periods
SELECT earn(:ann, 10, reference => 'a2', occurred_at => :'now_at');
SELECT is((SELECT array_agg(value ORDER BY period_start) FROM challenge_progress
           WHERE member_id = :ann AND challenge_id = :monthly), '{1,1}'::numeric[],
          'a purchase in a new month opens its period');
SELECT is((SELECT period_start FROM challenge_periods WHERE member_id = :ann AND challenge_id = :monthly),
          (SELECT min(period_start) FROM challenge_progress WHERE member_id = :ann AND challenge_id = :monthly),
          '... and last month''s moves to challenge_periods');
SELECT is((SELECT x.s FROM challenge_state cs, unnest(cs.challenge_ids, cs.period_starts) x(c, s)
           WHERE cs.member_id = :ann AND x.c = :monthly),
          (SELECT max(period_start) FROM challenge_progress WHERE member_id = :ann AND challenge_id = :monthly),
          '... while the state row holds this month''s');

-- a purchase dated last month moves last month's period where it is
SELECT earn(:ann, 10, reference => 'a3', occurred_at => :'last_at'::timestamptz + interval '1 day');
SELECT is((SELECT value FROM challenge_periods WHERE member_id = :ann AND challenge_id = :monthly), 2::numeric,
          'a purchase dated last month moves last month''s period, in challenge_periods');
SELECT is((SELECT max(value) FROM challenge_progress WHERE member_id = :ann AND challenge_id = :monthly
           AND period_start > (SELECT period_start FROM challenge_periods WHERE member_id = :ann AND challenge_id = :monthly)),
          1::numeric, '... and leaves this month''s as it was');

-- one more completes last month there: the award is paid, earlier_done says so
SELECT earn(:ann, 10, reference => 'a4', occurred_at => :'last_at'::timestamptz + interval '2 days');
SELECT ok((SELECT completed_at IS NOT NULL AND award_entry IS NOT NULL FROM challenge_periods
           WHERE member_id = :ann AND challenge_id = :monthly),
          'a back-dated purchase completes an earlier period, paid');
SELECT is((SELECT count(*) FROM ledger WHERE member_id = :ann AND kind = 'award' AND reason LIKE '%Three purchases%'),
          1::bigint, '... once');
SELECT ok((SELECT :monthly = ANY (earlier_done) FROM challenge_state WHERE member_id = :ann),
          '... and earlier_done names the challenge');

-- a purchase dated before every period: a new earlier period
SELECT earn(:ann, 10, reference => 'a5', occurred_at => :'older_at');
SELECT is((SELECT count(*) FROM challenge_periods WHERE member_id = :ann AND challenge_id = :monthly), 2::bigint,
          'a purchase dated before every period opens an earlier one, in challenge_periods');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :monthly
           ORDER BY period_start LIMIT 1), 1::numeric, '... counted there');

-- its refund takes last month below the goal: undone, clawed back, no longer done
SELECT balance::bigint AS before_refund FROM accounts WHERE member_id = :ann \gset
SELECT refund(:ann, 'a4');
SELECT ok((SELECT completed_at IS NULL AND award_entry IS NULL AND value = 2 FROM challenge_periods
           WHERE member_id = :ann AND challenge_id = :monthly AND period_start < (SELECT max(period_start)
           FROM challenge_progress WHERE member_id = :ann AND challenge_id = :monthly)
           ORDER BY period_start DESC LIMIT 1),
          'a refund takes an earlier period below its goal: the completion is undone');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :ann), :before_refund - 10 - 10::bigint,
          '... its 10 points clawed back with the purchase''s own 10');
SELECT ok((SELECT NOT (:monthly = ANY (earlier_done)) FROM challenge_state WHERE member_id = :ann),
          '... and earlier_done no longer names it');
SELECT is_empty('SELECT * FROM verify()', 'verify() finds the books sound');

-- a challenge done once: completed in an earlier period, it moves no more
SELECT earn(:bob, 10, reference => 'b1', occurred_at => :'now_at');
SELECT earn(:bob, 10, reference => 'b2', occurred_at => :'last_at');
SELECT earn(:bob, 10, reference => 'b3', occurred_at => :'last_at'::timestamptz + interval '1 day');
SELECT ok((SELECT completed_at IS NOT NULL FROM challenge_periods WHERE member_id = :bob AND challenge_id = :once),
          'a challenge done once, completed in an earlier period');
SELECT is((SELECT count(*) FROM member_badges WHERE member_id = :bob AND badge = 'once'), 1::bigint, '... its badge');
SELECT earn(:bob, 10, reference => 'b4', occurred_at => :'now_at');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :bob AND challenge_id = :once
           ORDER BY period_start DESC LIMIT 1), 1::numeric,
          'a later purchase no longer moves it (earlier_done), though this month''s period is open');
SELECT is((SELECT count(*) FROM ledger WHERE member_id = :bob AND kind = 'award'), 0::bigint, '... it pays no points');

-- rolling periods: a new instance moves the last one; a purchase dated in it
-- continues it there; one dated between instances opens an earlier one
SELECT earn(:cy, 10, reference => 'c1', occurred_at => now() - interval '40 days');
SELECT earn(:cy, 10, reference => 'c2', occurred_at => :'now_at');
SELECT is((SELECT count(*) FROM challenge_periods WHERE member_id = :cy AND challenge_id = :tenday), 1::bigint,
          'a purchase after a ten-day period opens the next, the last one moves');
SELECT earn(:cy, 10, reference => 'c3', occurred_at => now() - interval '38 days');
SELECT is((SELECT value FROM challenge_periods WHERE member_id = :cy AND challenge_id = :tenday), 2::numeric,
          'a purchase dated in the earlier instance continues it');
SELECT earn(:cy, 10, reference => 'c4', occurred_at => now() - interval '20 days');
SELECT is((SELECT array_agg(value ORDER BY period_start) FROM challenge_progress
           WHERE member_id = :cy AND challenge_id = :tenday), '{2,1,1}'::numeric[],
          'a purchase dated between instances opens one of its own');
SELECT is((SELECT count(*) FROM challenge_periods WHERE member_id = :cy AND challenge_id = :tenday), 2::bigint,
          '... among the earlier periods');

-- merges: the same period adds up, and each challenge's latest period of the
-- two ends in the state row (an absorbed later one replaces the survivor's)
SELECT earn(:dee, 10, reference => 'd1', occurred_at => :'last_at');
CREATE TEMP TABLE both_before AS
SELECT challenge_id, period_start, sum(value) AS value FROM challenge_progress
WHERE member_id IN (:dee, :cy) GROUP BY 1, 2;
SELECT merge_members(:dee, :cy) IS NOT NULL AS merged;
SELECT set_eq(format('SELECT challenge_id, period_start, value FROM challenge_progress WHERE member_id = %s', :dee),
              'SELECT challenge_id, period_start, value FROM both_before',
              'a merge keeps every period of the two, the same period added up');
SELECT is((SELECT count(*) FROM challenge_state WHERE member_id = :cy) + (SELECT count(*) FROM challenge_periods WHERE member_id = :cy),
          0::bigint, '... and leaves the absorbed member none, in either table');
SELECT set_eq(format('SELECT x.c, x.s FROM challenge_state cs, unnest(cs.challenge_ids, cs.period_starts) x(c, s) WHERE cs.member_id = %s', :dee),
              'SELECT challenge_id, max(period_start) FROM both_before GROUP BY 1',
              '... the latest of each challenge in the state row');
SELECT ok((SELECT count(*) FROM challenge_periods WHERE member_id = :dee) > 0, '... the earlier in challenge_periods');
SELECT is_empty('SELECT * FROM verify()', 'verify() finds the books sound after the merge');

-- joined_at is kept in the state row once a challenge of the first days needs it
SELECT create_challenge(:p, 'welcome', 'Two purchases in your first year', 'purchases', 2, 'joining',
                        period_days => 365, badge => 'welcome') AS welcome \gset
SELECT earn(:ann, 10, reference => 'a6', occurred_at => :'now_at');
SELECT is((SELECT joined_at FROM challenge_state WHERE member_id = :ann),
          (SELECT joined_at FROM members WHERE member_id = :ann), 'the state row keeps joined_at');
SELECT is((SELECT period_start FROM challenge_progress WHERE member_id = :ann AND challenge_id = :welcome),
          (SELECT joined_at FROM members WHERE member_id = :ann), '... from which the first year counts');

-- the SQL writers' one way in
SELECT throws_ok(format('SELECT loyalty.challenge_progress_put(ROW(NULL, %s, now(), NULL, %s, 1, NULL, NULL, NULL, 0, NULL, NULL, NULL, now())::loyalty.challenge_progress)',
                        :monthly, :p), '22004', NULL, 'challenge_progress_put refuses a period without a member');
SELECT throws_ok(format('SELECT loyalty.challenge_progress_put(ROW(%s, %s, now(), NULL, %s, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, now())::loyalty.challenge_progress)',
                        :ann, :monthly, :p), '22004', NULL, '... or without a value');

-- what verify() and the write path find in a state row changed by hand
SAVEPOINT tamper;
UPDATE challenge_state SET period_values = period_values[1:1] WHERE member_id = :ann;
SELECT is((SELECT count(*) FROM verify() WHERE invariant = 'a challenge state row is well-formed'), 1::bigint,
          'verify(): arrays of different lengths');
SELECT throws_ok(format('SELECT loyalty.earn(%s, 10)', :ann), 'XX001', NULL,
                 '... which a purchase refuses to read (data corrupted), changing nothing');
ROLLBACK TO SAVEPOINT tamper;
UPDATE challenge_state SET earlier_done = '{}' WHERE member_id = :bob;
UPDATE challenge_state SET joined_at = joined_at - interval '1 day' WHERE member_id = :ann;
UPDATE challenge_periods SET period_start = now() + interval '1 year'
WHERE member_id = :dee AND challenge_id = :monthly
  AND period_start = (SELECT min(period_start) FROM challenge_periods WHERE member_id = :dee AND challenge_id = :monthly);
SELECT is((SELECT count(*) FROM verify() WHERE invariant = 'earlier_done names the challenges with a completed earlier period'),
          1::bigint, 'verify(): a completed earlier period earlier_done does not name');
SELECT is((SELECT count(*) FROM verify() WHERE invariant = 'the challenge state keeps the member''s joined_at'),
          1::bigint, 'verify(): a joined_at that is not the member''s');
SELECT is((SELECT count(*) FROM verify() WHERE invariant = 'an earlier challenge period is older than the latest, in the state row'),
          1::bigint, 'verify(): an earlier period that is not older than the latest');
ROLLBACK TO SAVEPOINT tamper;
SELECT is_empty('SELECT * FROM verify()', 'verify() finds the books sound');

-- against an oracle: 300 purchases of five members in random order over four
-- months (most dated before the latest period of their challenge), then
-- refunds in full and in part; each month's purchase count (a purchase
-- counts until refunded in full) and spend (less what was refunded) equal
-- the purchases' own, wherever the periods are kept
SELECT create_program('oracle') AS q \gset
SELECT create_challenge(:q, 'count', 'Purchases a month', 'purchases', 1000000, 'month', repeating => true,
                        badge => 'never') AS qcount \gset
SELECT create_challenge(:q, 'spend', 'Spend a month', 'spend', 1000000, 'month', repeating => true,
                        badge => 'never') AS qspend \gset
CREATE TEMP TABLE om AS SELECT enroll(:q, 'app', 'o' || g, joined_at => now() - interval '200 days') AS m
FROM generate_series(1, 5) g;
SELECT setseed(0.42);
CREATE TEMP TABLE op AS
SELECT g, (SELECT m FROM om ORDER BY m OFFSET g % 5 LIMIT 1) AS m, 'op' || g AS ref,
       (5 + floor(random() * 9500) / 100)::numeric AS amount,
       now() - interval '1 hour' - random() * interval '110 days' AS at,
       random() AS r
FROM generate_series(1, 300) g;
SELECT count(earn(m, amount, reference => ref, occurred_at => at)) FROM (SELECT * FROM op ORDER BY g) x;
-- a fifth refunded in full, another fifth in part
CREATE TEMP TABLE orf AS
SELECT ref, m, CASE WHEN r < 0.2 THEN amount ELSE round(amount * 0.3, 2) END AS refunded
FROM op WHERE r < 0.4;
SELECT count(refund(m, ref, CASE WHEN refunded < amount THEN refunded END))
FROM (SELECT orf.*, op.amount FROM orf JOIN op USING (ref) ORDER BY ref) x;
CREATE TEMP TABLE oracle AS
SELECT op.m, date_trunc('month', op.at AT TIME ZONE p.time_zone) AT TIME ZONE p.time_zone AS period_start,
       count(*) FILTER (WHERE coalesce(orf.refunded, 0) < op.amount)::numeric AS purchases,
       sum(op.amount - coalesce(orf.refunded, 0)) AS spend
FROM op LEFT JOIN orf USING (ref) JOIN programs p ON p.program_id = :q
GROUP BY 1, 2;
SELECT ok((SELECT count(*) FROM challenge_periods WHERE member_id IN (SELECT m FROM om)) > 20,
          'the oracle''s purchases keep most periods in challenge_periods');
SELECT set_eq(format('SELECT member_id, period_start, value FROM challenge_progress WHERE challenge_id = %s', :qcount),
              'SELECT m, period_start, purchases FROM oracle',
              'each month''s purchase count is the purchases not refunded in full');
-- (a partial refund takes back its share of the purchase's spend, the share
-- a quotient: to the cent)
SELECT set_eq(format('SELECT member_id, period_start, round(value, 2) FROM challenge_progress WHERE challenge_id = %s', :qspend),
              'SELECT m, period_start, spend FROM oracle',
              'each month''s spend is the purchases'' amounts less the refunds, to the cent');
SELECT is_empty('SELECT * FROM verify()', 'verify() finds the books sound');

SELECT * FROM finish();
ROLLBACK;
