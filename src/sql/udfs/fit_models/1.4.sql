CREATE FUNCTION loyalty.fit_models(program bigint, calibration_end date DEFAULT current_date, time_unit text DEFAULT 'week')
RETURNS loyalty.models
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v loyalty.models;
BEGIN
    PERFORM loyalty.require_program(fit_models.program);
    IF time_unit IS NULL OR time_unit NOT IN ('day', 'week') THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id = program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    v.program_id := program;
    v.fitted_at := clock_timestamp();
    v.calibration_end := coalesce(calibration_end, current_date);
    v.time_unit := time_unit;
    SELECT loyalty.bgnbd_fit(s.x, s.t_x, s."T") INTO v.bgnbd
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s."T" > 0;
    IF v.bgnbd IS NULL THEN
        RAISE EXCEPTION 'program % has no purchases before %', program, v.calibration_end
            USING ERRCODE = 'LY030';
    END IF;
    -- the spend model on its own: when the data cannot identify it, or
    -- identify one without an expected value (q <= 1: spend too
    -- heavy-tailed), the purchase model is kept and the failure recorded
    BEGIN
        SELECT loyalty.gamma_gamma_fit(s.x, s.m_x) INTO v.gamma_gamma
        FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s.x > 0;
        IF v.gamma_gamma IS NULL THEN
            v.gamma_gamma_failure := 'no customer with a repeat purchase';
        ELSIF NOT (v.gamma_gamma).q > 1 THEN
            v.gamma_gamma_failure := format('q = %s: spend this heavy-tailed has no expected value (q must exceed 1)',
                                            round((v.gamma_gamma).q::numeric, 4));
            v.gamma_gamma := NULL;
        END IF;
    EXCEPTION WHEN SQLSTATE 'LY030' THEN
        v.gamma_gamma := NULL;
        v.gamma_gamma_failure := SQLERRM;
    END;
    INSERT INTO loyalty.models VALUES (v.*);
    RETURN v;
END $$;
