CREATE FUNCTION loyalty.set_challenge_policy(program bigint, clawback boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(set_challenge_policy.program);
    IF program IS NULL OR clawback IS NULL THEN
        RAISE EXCEPTION 'program and clawback must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    UPDATE loyalty.programs p SET challenge_clawback = clawback WHERE p.program_id OPERATOR(pg_catalog.=) program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
END $$;
