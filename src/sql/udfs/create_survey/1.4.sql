CREATE FUNCTION loyalty.create_survey(program bigint, code text, name text, reward_points numeric DEFAULT NULL,
                                      valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_points loyalty.points := loyalty.points(reward_points);   -- whole points, from any driver
BEGIN
    PERFORM loyalty.require_program(create_survey.program);
    IF program IS NULL OR code IS NULL OR name IS NULL THEN
        RAISE EXCEPTION 'program, code and name must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF code !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$' OR name = '' THEN
        RAISE EXCEPTION 'a survey code is 1 to 63 letters, digits, and _ . : - (not first), and its name is not empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_points IS NOT NULL AND v_points::bigint <= 0 THEN
        RAISE EXCEPTION 'reward_points must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF valid_until IS NOT NULL AND valid_from IS NOT NULL AND valid_until <= valid_from THEN
        RAISE EXCEPTION 'valid_until must be after valid_from' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    BEGIN
        INSERT INTO loyalty.surveys (program_id, code, name, reward_points, valid_from, valid_until)
        VALUES (program, code, name, v_points, valid_from, valid_until)
        RETURNING survey_id INTO v_id;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION 'program % already has a survey "%"', program, code USING ERRCODE = 'unique_violation';
    END;
    RETURN v_id;
END $$;
