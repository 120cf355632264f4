CREATE FUNCTION loyalty.set_tier_policy(program bigint, metric text, tier_window text DEFAULT 'rolling',
    window_months integer DEFAULT 12, downgrade text DEFAULT 'one_step', grace interval DEFAULT interval '0',
    refund_demotes boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(set_tier_policy.program);
    IF program IS NULL OR metric IS NULL THEN
        RAISE EXCEPTION 'program and metric must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- before the calendar check, which would divide by it
    IF window_months < 1 OR window_months > 120 THEN
        RAISE EXCEPTION 'window_months must be between 1 and 120, got %', window_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF tier_window = 'calendar' AND 12 % window_months <> 0 THEN
        RAISE EXCEPTION 'a calendar window must divide the year (1, 2, 3, 4, 6 or 12 months), got %', window_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        UPDATE loyalty.programs p SET tier_metric = metric, tier_window = coalesce(set_tier_policy.tier_window, 'rolling'),
            tier_window_months = coalesce(window_months, 12), tier_downgrade = coalesce(downgrade, 'one_step'),
            tier_grace = coalesce(grace, interval '0'), tier_refund_demotes = coalesce(refund_demotes, false)
        WHERE p.program_id OPERATOR(pg_catalog.=) program;
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'invalid tier policy: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
            HINT = 'metric: spend, points or visits; window: rolling, calendar or anniversary (1..120 months); downgrade: one_step or to_qualified; grace >= 0.';
    END;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
END $$;
