CREATE FUNCTION loyalty.record_survey_response(member bigint, survey text, score integer, comment text DEFAULT NULL,
                                               channel text DEFAULT NULL, answers jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    a record;
    s loyalty.surveys;
    r loyalty.survey_responses;
    v_entry bigint;
BEGIN
    PERFORM loyalty.require_member(record_survey_response.member);
    IF member IS NULL OR survey IS NULL OR score IS NULL THEN
        RAISE EXCEPTION 'member, survey and score must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF score < 0 OR score > 10 THEN
        RAISE EXCEPTION 'score must be between 0 and 10, got %', score USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF answers IS NOT NULL AND jsonb_typeof(answers) <> 'object' THEN
        RAISE EXCEPTION 'answers must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the member's lock: one response per member and survey, and its award once
    SELECT x.program_id, x.status, x.tier, x.segment INTO a FROM loyalty.accounts x
    WHERE x.member_id = record_survey_response.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF a.status <> 'active' THEN
        RAISE EXCEPTION 'member % is %', member, a.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO s FROM loyalty.surveys x WHERE x.program_id = a.program_id AND x.code = record_survey_response.survey;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % has no survey "%"', a.program_id, survey USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO r FROM loyalty.survey_responses x
    WHERE x.member_id = record_survey_response.member AND x.survey_id = s.survey_id;
    IF FOUND THEN
        -- a replay of the same response returns it; another one is refused
        IF r.score = record_survey_response.score AND r.comment IS NOT DISTINCT FROM record_survey_response.comment
           AND r.answers IS NOT DISTINCT FROM record_survey_response.answers THEN
            RETURN r.response_id;
        END IF;
        RAISE EXCEPTION 'member % already answered survey "%"', member, survey USING ERRCODE = 'unique_violation',
            DETAIL = 'One response per member and survey.';
    END IF;
    IF NOT s.active OR (s.valid_from IS NOT NULL AND now() < s.valid_from) OR (s.valid_until IS NOT NULL AND now() >= s.valid_until) THEN
        RAISE EXCEPTION 'survey "%" is not open', survey USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF s.reward_points IS NOT NULL THEN
        v_entry := loyalty.award(member, s.reward_points::numeric, 'survey: ' || s.name, channel, 'survey:' || s.code,
                                 'survey:' || s.survey_id);
    END IF;
    INSERT INTO loyalty.survey_responses (member_id, survey_id, program_id, score, comment, channel, answers,
                                          tier, segment, entry_id)
    VALUES (member, s.survey_id, a.program_id, score, comment, channel, answers, (a.tier).name, a.segment, v_entry)
    RETURNING response_id INTO r.response_id;
    RETURN r.response_id;
END $$;
