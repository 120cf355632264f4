-- Surveys and NPS's objects, for the install script and the 1.3 -> 1.4 upgrade.

CREATE TABLE loyalty.surveys (
    survey_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id     bigint NOT NULL REFERENCES loyalty.programs,
    code           text NOT NULL,
    name           text NOT NULL CHECK (name <> ''),
    reward_points  loyalty.points,
    valid_from     timestamptz,
    valid_until    timestamptz,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, code)
);
COMMENT ON TABLE loyalty.surveys IS 'Surveys (an NPS question and any other answers), with the points a completed one earns once';

CREATE TABLE loyalty.survey_responses (
    member_id     bigint NOT NULL,
    response_id   bigint GENERATED ALWAYS AS IDENTITY,
    survey_id     bigint NOT NULL,
    program_id    bigint NOT NULL,
    score         integer NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment       text,
    channel       text,
    answers       jsonb,
    tier          text,
    segment       text,
    entry_id      bigint,
    responded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, survey_id)
);
COMMENT ON TABLE loyalty.survey_responses IS
    'One response per member and survey: the 0-10 score, comment, channel and answers, with the member''s tier and stored segment when it answered; comments and answers are personal data';

SELECT pg_catalog.pg_extension_config_dump('loyalty.surveys', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.surveys_survey_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.survey_responses', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.survey_responses_response_id_seq', '');

#include "udfs/create_survey/1.4.sql"
COMMENT ON FUNCTION loyalty.create_survey(bigint, text, text, numeric, timestamptz, timestamptz) IS
    'Create a survey of a program (a code the application quotes), with the points a response earns once; returns its id';
#include "udfs/record_survey_response/1.4.sql"
COMMENT ON FUNCTION loyalty.record_survey_response(bigint, text, integer, text, text, jsonb) IS
    'Record a member''s response to a survey (score 0-10, comment, channel, answers): one per member and survey, the survey''s points awarded once; a replay returns the same response';

#include "udfs/nps/1.4.sql"
COMMENT ON VIEW loyalty.nps IS 'Net promoter score per program, survey, month, tier, segment and channel (counts add up across rows; NPS does not)';
COMMENT ON COLUMN loyalty.nps.program_id IS 'Program';
COMMENT ON COLUMN loyalty.nps.survey IS 'Survey code';
COMMENT ON COLUMN loyalty.nps.month IS 'Month of the responses';
COMMENT ON COLUMN loyalty.nps.tier IS 'The member''s tier when it answered';
COMMENT ON COLUMN loyalty.nps.segment IS 'The member''s stored segment when it answered';
COMMENT ON COLUMN loyalty.nps.channel IS 'Channel of the response';
COMMENT ON COLUMN loyalty.nps.responses IS 'Responses';
COMMENT ON COLUMN loyalty.nps.promoters IS 'Scores of 9 or 10';
COMMENT ON COLUMN loyalty.nps.passives IS 'Scores of 7 or 8';
COMMENT ON COLUMN loyalty.nps.detractors IS 'Scores of 0 to 6';
COMMENT ON COLUMN loyalty.nps.nps IS 'Net promoter score: percent promoters minus percent detractors (-100 to 100)';
COMMENT ON COLUMN loyalty.nps.average_score IS 'Average score';

REVOKE ALL ON FUNCTION loyalty.create_survey(bigint, text, text, numeric, timestamptz, timestamptz),
    loyalty.record_survey_response(bigint, text, integer, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.create_survey(bigint, text, text, numeric, timestamptz, timestamptz) TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.record_survey_response(bigint, text, integer, text, text, jsonb) TO loyalty_app, loyalty_admin;
GRANT SELECT ON loyalty.nps TO loyalty_analyst, loyalty_admin;
