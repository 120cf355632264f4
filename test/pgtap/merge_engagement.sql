-- A merge carries the absorbed member's engagement to the survivor with its
-- books: tags, badges (once each, as first earned), challenge progress
-- (added up, a later refund of an absorbed purchase taking its share back
-- from the survivor) and survey answers (one per survey).
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(26);

SELECT create_program('merge engagement', earn_rate => 1) AS p \gset
SELECT enroll(:p, 'app', 'ann') AS ann, enroll(:p, 'app', 'bob') AS bob \gset
-- this test's purchases fall on two days of the program's last month
CREATE TEMP TABLE t0 AS
SELECT x.month_start + interval '1 hour' AS d1, x.month_start + interval '1 day 1 hour' AS d2
FROM (SELECT date_trunc('month', (now() AT TIME ZONE p.time_zone) - interval '1 month') AT TIME ZONE p.time_zone AS month_start
      FROM programs p WHERE p.program_id = :p) x;
SELECT create_challenge(:p, 'five', 'Five purchases this month', 'purchases', 5, 'month', reward_points => '50') AS five \gset
SELECT create_challenge(:p, 'days', 'Ten days this month', 'visits', 10, 'month', badge => 'regular') AS days \gset
SELECT create_challenge(:p, 'first', 'A first purchase', 'purchases', 1, 'campaign', badge => 'first-buy') AS first \gset
SELECT create_survey(:p, 'nps', 'How likely are you to recommend us?'), create_survey(:p, 'shop', 'The shop');

-- ann: three purchases on one day, bob one on another; both earn the badge
SELECT earn(:ann, 10, reference => 'a' || g, occurred_at => (SELECT d1 FROM t0)) FROM generate_series(1, 3) g;
SELECT earn(:bob, 20, reference => 'b1', occurred_at => (SELECT d2 FROM t0));
UPDATE member_badges SET earned_at = earned_at - interval '1 day' WHERE member_id = :bob;   -- bob's was earlier
SELECT tag_member(:ann, 'vip'), tag_member(:bob, 'vip'), tag_member(:bob, 'student');
SELECT record_survey_response(:ann, 'nps', 9), record_survey_response(:bob, 'nps', 3),
       record_survey_response(:bob, 'shop', 7);

SELECT merge_members(:ann, :bob) IS NOT NULL AS merged;

SELECT is((SELECT array_agg(tag ORDER BY tag) FROM member_tags WHERE member_id = :ann), ARRAY['student', 'vip'],
          'the survivor has both members'' tags');
SELECT is((SELECT count(*) FROM member_tags WHERE member_id = :bob), 0::bigint, '... the absorbed member none');
SELECT is((SELECT count(*) FROM member_badges WHERE member_id = :ann AND badge = 'first-buy'), 1::bigint,
          'a badge both earned is held once');
SELECT is((SELECT earned_at FROM member_badges WHERE member_id = :ann AND badge = 'first-buy'),
          (SELECT d2 FROM t0) - interval '1 day', '... as first earned (by the absorbed member)');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :five), 4::numeric,
          'progress adds up: 3 + 1 purchases');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :days), 2::numeric,
          '... days counted once each: two days');
SELECT is((SELECT count(*) FROM challenge_progress WHERE member_id = :bob), 0::bigint, '... none left with the absorbed member');
SELECT is((SELECT array_agg(survey_id ORDER BY survey_id) FROM survey_responses WHERE member_id = :ann),
          (SELECT array_agg(survey_id ORDER BY survey_id) FROM surveys WHERE program_id = :p),
          'the survivor takes the answer to the survey it had not answered');
SELECT is((SELECT score FROM survey_responses r JOIN surveys s USING (survey_id) WHERE r.member_id = :ann AND s.code = 'nps'),
          9, '... and keeps its own to the one both answered');

-- a refund of the absorbed member's purchase takes its progress back from the survivor
SELECT refund(:ann, 'b1');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :five), 3::numeric,
          'a refund of the absorbed member''s purchase takes its progress back');
SELECT is((SELECT value FROM challenge_progress WHERE member_id = :ann AND challenge_id = :days), 1::numeric,
          '... and its day');

-- the next purchases complete the challenge on the survivor, paid once
SELECT earn(:ann, 10, reference => 'a4', occurred_at => (SELECT d1 FROM t0));
SELECT earn(:ann, 10, reference => 'a5', occurred_at => (SELECT d1 FROM t0));
SELECT is((SELECT completed_at IS NOT NULL FROM challenge_progress WHERE member_id = :ann AND challenge_id = :five), true,
          'the survivor completes the challenge');
SELECT is((SELECT sum(points::bigint)::bigint FROM ledger WHERE member_id = :ann AND kind = 'award' AND reference = 'challenge:five'),
          50::bigint, '... paid once');

-- a merge whose sum reaches a goal completes on the next fact, not in the merge
SELECT enroll(:p, 'app', 'cy') AS cy, enroll(:p, 'app', 'dee') AS dee \gset
SELECT earn(:cy, 10, reference => 'c' || g, occurred_at => (SELECT d1 FROM t0)) FROM generate_series(1, 3) g;
SELECT earn(:dee, 10, reference => 'd' || g, occurred_at => (SELECT d1 FROM t0)) FROM generate_series(1, 2) g;
SELECT merge_members(:cy, :dee) IS NOT NULL AS merged;
SELECT is((SELECT (value, completed_at) FROM challenge_progress WHERE member_id = :cy AND challenge_id = :five),
          (5::numeric, NULL::timestamptz), 'a merge pays nothing: 5 of 5, not yet completed');
SELECT earn(:cy, 10, reference => 'c4', occurred_at => (SELECT d1 FROM t0));
SELECT is((SELECT points::bigint FROM ledger WHERE member_id = :cy AND kind = 'award' AND reference = 'challenge:five'),
          50::bigint, '... the next purchase completes it');

-- a completion paid to the absorbed member is carried; its refund claws it back
SELECT create_challenge(:p, 'two', 'Two purchases', 'purchases', 2, 'campaign', reward_points => '7') AS two \gset
SELECT enroll(:p, 'app', 'eve') AS eve, enroll(:p, 'app', 'fay') AS fay \gset
SELECT earn(:fay, 10, reference => 'f1'), earn(:fay, 10, reference => 'f2');
SELECT merge_members(:eve, :fay) IS NOT NULL AS merged;
SELECT is((SELECT (completed_at IS NOT NULL, award_member) FROM challenge_progress WHERE member_id = :eve AND challenge_id = :two),
          (true, :fay::bigint), 'a paid completion is carried, its award in the absorbed member''s ledger');
SELECT is_empty('SELECT * FROM loyalty.verify()', '... which verify() accepts (the survivor records the merge)');
SELECT refund(:eve, 'f2');
SELECT is((SELECT (value, completed_at, award_entry) FROM challenge_progress WHERE member_id = :eve AND challenge_id = :two),
          (1::numeric, NULL::timestamptz, NULL::bigint), 'a refund of the absorbed member''s purchase undoes it');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :eve), 10::bigint,
          '... and claws its 7 points back from the survivor (10 + 10 + 7 - 10 - 7)');

-- after a second merge, a carried award still names the ledger it was paid to
SELECT enroll(:p, 'app', 'gus') AS gus, enroll(:p, 'app', 'hal') AS hal, enroll(:p, 'app', 'ida') AS ida \gset
SELECT earn(:ida, 10, reference => 'i1'), earn(:ida, 10, reference => 'i2');
SELECT merge_members(:hal, :ida) IS NOT NULL AS merged;
SELECT merge_members(:gus, :hal) IS NOT NULL AS merged;
SELECT is((SELECT award_member FROM challenge_progress WHERE member_id = :gus AND challenge_id = :two), :ida::bigint,
          'after two merges a carried award names the member it was paid to, not the one in between');
SELECT is((SELECT points_issued FROM campaign_results WHERE kind = 'challenge' AND campaign_id = :two), 7::numeric,
          '... so campaign_results counts its points');
SELECT is_empty('SELECT * FROM loyalty.verify()', '... and verify() accepts it');
SAVEPOINT tamper;
UPDATE challenge_state SET award_members[array_position(challenge_ids, :two::bigint)] = :hal
WHERE member_id = :gus AND :two = ANY (challenge_ids);
UPDATE challenge_periods SET award_member = :hal WHERE member_id = :gus AND challenge_id = :two;
SELECT count(*) AS flagged FROM loyalty.verify() WHERE invariant = 'a paid challenge completion names its award' \gset
ROLLBACK TO SAVEPOINT tamper;
SELECT is(:flagged::bigint, 1::bigint, 'verify() finds a carried award that names a ledger without it');
SELECT refund(:gus, 'i2');
SELECT is((SELECT (value, award_entry) FROM challenge_progress WHERE member_id = :gus AND challenge_id = :two),
          (1::numeric, NULL::bigint), 'a refund of the first absorbed member''s purchase undoes the completion');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :gus), 10::bigint,
          '... and claws its 7 points back from the last survivor (10 + 10 + 7 - 10 - 7)');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');
SELECT * FROM finish();
ROLLBACK;
