CREATE FUNCTION loyalty.set_challenge_active(challenge bigint, active boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
BEGIN
    IF challenge IS NULL OR active IS NULL THEN
        RAISE EXCEPTION 'challenge and active must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.program_id INTO v_program FROM loyalty.challenges c WHERE c.challenge_id OPERATOR(pg_catalog.=) challenge;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'challenge % does not exist', challenge USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(v_program);
    UPDATE loyalty.challenges c SET active = set_challenge_active.active
    WHERE c.challenge_id OPERATOR(pg_catalog.=) challenge;
    UPDATE loyalty.programs p
    SET has_challenges = EXISTS (SELECT FROM loyalty.challenges c
                                 WHERE c.program_id OPERATOR(pg_catalog.=) v_program AND c.active)
    WHERE p.program_id OPERATOR(pg_catalog.=) v_program;
END $$;
