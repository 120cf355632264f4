-- Surveys and NPS: one response per member and survey (a replay returns it,
-- another is refused), the survey's points once, input checked, the NPS
-- view, and comments erased with the member's personal data.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(17);

SELECT create_program('surveys') AS p \gset
SELECT create_survey(:p, 'nps-2026', 'How likely are you to recommend us?', reward_points => '25') AS s \gset
SELECT enroll(:p, 'app', 'm' || g) AS m FROM generate_series(1, 1) g \gset
CREATE TEMP TABLE ms AS SELECT enroll(:p, 'app', 'x' || g) AS m, g FROM generate_series(1, 10) g;

SELECT record_survey_response(:m, 'nps-2026', 10, comment => 'great coffee', channel => 'app') AS r \gset
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :m), 25::bigint, 'a response earns the survey''s points');
SELECT is(record_survey_response(:m, 'nps-2026', 10, comment => 'great coffee', channel => 'app'), :r::bigint,
          'a replay returns the same response');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :m), 25::bigint, '... and pays nothing more');
SELECT throws_ok(format('SELECT loyalty.record_survey_response(%s, %L, 3)', :m, 'nps-2026'), '23505', NULL,
                 'another response to the same survey is refused');
SELECT throws_ok(format('SELECT loyalty.record_survey_response(%s, %L, 11)', :m, 'nps-2026'), '22023', NULL, 'a score above 10');
SELECT throws_ok(format('SELECT loyalty.record_survey_response(%s, %L, -1)', :m, 'nps-2026'), '22023', NULL, 'a negative score');
SELECT throws_ok(format('SELECT loyalty.record_survey_response(%s, %L, NULL)', :m, 'nps-2026'), '22004', NULL, 'no score');
SELECT throws_ok(format('SELECT loyalty.record_survey_response(%s, %L, 5)', :m, 'nope'), 'P0002', NULL, 'an unknown survey');
SELECT throws_ok(format('SELECT loyalty.record_survey_response(%s, %L, 5, answers => %L)', :m, 'nps-2026', '[1]'), '22023', NULL,
                 'answers that are not an object');
SELECT throws_ok(format('SELECT loyalty.create_survey(%s, %L, %L)', :p, 'nps-2026', 'again'), '23505', NULL, 'a survey code taken');

-- scores of the other ten: 9, 10 promoters; 7, 8 passives; 0-6 detractors
SELECT count(record_survey_response(m, 'nps-2026', (ARRAY[9, 10, 9, 8, 7, 6, 3, 0, 9, 10])[g], channel => 'email')) FROM ms;
SELECT is((SELECT sum(responses)::bigint FROM nps WHERE program_id = :p), 11::bigint, 'nps counts eleven responses');
SELECT is((SELECT (promoters, passives, detractors, nps)::text FROM nps WHERE program_id = :p AND channel = 'email'),
          '(5,2,3,20.0)', 'by channel: 5 promoters, 2 passives, 3 detractors: NPS 20');
SELECT is((SELECT nps FROM nps WHERE program_id = :p AND channel = 'app'), 100.0, 'the app''s one promoter: 100');
SELECT is((SELECT count(*) FROM ledger WHERE kind = 'award' AND reference = 'survey:nps-2026'), 11::bigint,
          'eleven awards, one per member');

-- personal data: the comment is exported and erased
SELECT is(export_member(:m) -> 'survey_responses' -> 0 ->> 'comment', 'great coffee', 'export_member() includes the response');
SELECT erase_member(:m);
SELECT is((SELECT comment FROM survey_responses WHERE member_id = :m), NULL, 'erase_member() removes the comment (the score stays)');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');
SELECT * FROM finish();
ROLLBACK;
