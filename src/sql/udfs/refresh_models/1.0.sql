CREATE PROCEDURE loyalty.refresh_models(time_unit text DEFAULT 'week', calibration_end date DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_program bigint;
BEGIN
    FOR v_program IN SELECT p.program_id FROM loyalty.programs p ORDER BY p.program_id LOOP
        BEGIN
            -- current_date is SQL syntax, not a function a search_path could redirect
            PERFORM loyalty.fit_models(v_program, COALESCE(calibration_end, current_date), time_unit);
            RAISE NOTICE 'loyalty.refresh_models: program % fitted', v_program;
        EXCEPTION WHEN SQLSTATE 'LY030' THEN
            RAISE NOTICE 'loyalty.refresh_models: program % not fitted: %', v_program, SQLERRM;
        END;
        COMMIT;
    END LOOP;
END $$;
