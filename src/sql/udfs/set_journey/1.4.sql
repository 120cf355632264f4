CREATE FUNCTION loyalty.set_journey(program bigint, kind text, days integer, step integer DEFAULT 1,
                                    segments text[] DEFAULT NULL, active boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM loyalty.require_program(set_journey.program);
    IF program IS NULL OR kind IS NULL OR days IS NULL OR step IS NULL OR active IS NULL THEN
        RAISE EXCEPTION 'program, kind, days, step and active must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF kind NOT IN ('welcome', 'inactive', 'at_risk', 'win_back', 'birthday', 'anniversary', 'tier_expiring') THEN
        RAISE EXCEPTION 'unknown journey "%"', kind USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use welcome, inactive, at_risk, win_back, birthday, anniversary or tier_expiring (points expiring: loyalty.notify_expiring).';
    END IF;
    IF days < 0 OR days > 3660 OR step < 1 OR step > 100 THEN
        RAISE EXCEPTION 'days must be between 0 and 3660 and step between 1 and 100' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF segments IS NOT NULL AND kind <> 'win_back' THEN
        RAISE EXCEPTION 'segments choose who is eligible for win-back, and only for it' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.journey_steps AS j (program_id, kind, step, days, segments, active)
    VALUES (set_journey.program, set_journey.kind, set_journey.step, set_journey.days, set_journey.segments,
            set_journey.active)
    ON CONFLICT (program_id, kind, step) DO UPDATE
    SET days = EXCLUDED.days, segments = EXCLUDED.segments, active = EXCLUDED.active;
END $$;
