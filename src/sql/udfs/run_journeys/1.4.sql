CREATE PROCEDURE loyalty.run_journeys(program bigint DEFAULT NULL, as_of timestamptz DEFAULT NULL,
                                      batch_size integer DEFAULT 5000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_as_of timestamptz := COALESCE(as_of, pg_catalog.now());
    v_program bigint;
    v_after bigint;
    v_step record;
    v_n bigint;
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_as_of OPERATOR(pg_catalog.>) pg_catalog.now() THEN
        RAISE EXCEPTION 'as_of must not be in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_program IN SELECT DISTINCT j.program_id FROM loyalty.journey_steps j
                     WHERE j.active AND (program IS NULL OR j.program_id OPERATOR(pg_catalog.=) program)
                     ORDER BY 1 LOOP
        v_after := -1;
        v_n := 0;
        LOOP
            SELECT * INTO v_step FROM loyalty.run_journeys_batch(v_program, v_as_of, v_after, batch_size);
            EXIT WHEN v_step.members OPERATOR(pg_catalog.=) 0;
            v_after := v_step.last_member;
            v_n := v_n OPERATOR(pg_catalog.+) v_step.emitted;
            COMMIT;
        END LOOP;
        COMMIT;
        RAISE NOTICE 'loyalty.run_journeys: program %: % events', v_program, v_n;
    END LOOP;
END $$;
