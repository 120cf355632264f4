CREATE FUNCTION loyalty.set_activity_rule(program bigint, activity text, points loyalty.points,
    cap_per_day integer DEFAULT NULL, cap_per_week integer DEFAULT NULL, cap_per_month integer DEFAULT NULL,
    cap_lifetime integer DEFAULT NULL, budget loyalty.points DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF program IS NULL OR activity IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'program, activity and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.activity_rules AS r (program_id, activity, points, cap_per_day, cap_per_week,
                                                 cap_per_month, cap_lifetime, budget)
        VALUES (set_activity_rule.program, set_activity_rule.activity, set_activity_rule.points,
                set_activity_rule.cap_per_day, set_activity_rule.cap_per_week, set_activity_rule.cap_per_month,
                set_activity_rule.cap_lifetime, set_activity_rule.budget)
        ON CONFLICT (program_id, activity) DO UPDATE SET points = EXCLUDED.points,
            cap_per_day = EXCLUDED.cap_per_day, cap_per_week = EXCLUDED.cap_per_week,
            cap_per_month = EXCLUDED.cap_per_month, cap_lifetime = EXCLUDED.cap_lifetime,
            budget = EXCLUDED.budget, active = true;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid activity rule for "%": %', activity, SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Activities: signup, profile_completed, review, survey, social_share, app_download, custom:<name>; points, caps and budget positive.';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
