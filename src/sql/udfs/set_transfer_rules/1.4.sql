CREATE FUNCTION loyalty.set_transfer_rules(
    program bigint, enabled boolean DEFAULT true,
    min_points numeric DEFAULT 1, max_points numeric DEFAULT NULL,
    min_tenure interval DEFAULT '0', min_tier_rank integer DEFAULT NULL,
    sender_daily_points bigint DEFAULT NULL, sender_monthly_points bigint DEFAULT NULL,
    sender_daily_count integer DEFAULT NULL,
    receiver_daily_points bigint DEFAULT NULL, receiver_monthly_points bigint DEFAULT NULL,
    same_household boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(set_transfer_rules.program);
    IF program IS NULL OR enabled IS NULL OR min_points IS NULL OR min_tenure IS NULL OR same_household IS NULL THEN
        RAISE EXCEPTION 'program, enabled, min_points, min_tenure and same_household must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF min_points <> trunc(min_points) OR (max_points IS NOT NULL AND max_points <> trunc(max_points)) THEN
        RAISE EXCEPTION 'min_points and max_points must be whole numbers of points'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        INSERT INTO loyalty.transfer_rules AS r (program_id, enabled, min_points, max_points, min_tenure, min_tier_rank,
                                                 sender_daily_points, sender_monthly_points, sender_daily_count,
                                                 receiver_daily_points, receiver_monthly_points, same_household, updated_at)
        VALUES (set_transfer_rules.program, set_transfer_rules.enabled, set_transfer_rules.min_points::bigint,
                set_transfer_rules.max_points::bigint, set_transfer_rules.min_tenure, set_transfer_rules.min_tier_rank,
                set_transfer_rules.sender_daily_points, set_transfer_rules.sender_monthly_points,
                set_transfer_rules.sender_daily_count, set_transfer_rules.receiver_daily_points,
                set_transfer_rules.receiver_monthly_points, set_transfer_rules.same_household, now())
        ON CONFLICT (program_id) DO UPDATE SET enabled = EXCLUDED.enabled, min_points = EXCLUDED.min_points,
            max_points = EXCLUDED.max_points, min_tenure = EXCLUDED.min_tenure,
            min_tier_rank = EXCLUDED.min_tier_rank, sender_daily_points = EXCLUDED.sender_daily_points,
            sender_monthly_points = EXCLUDED.sender_monthly_points, sender_daily_count = EXCLUDED.sender_daily_count,
            receiver_daily_points = EXCLUDED.receiver_daily_points,
            -- (EXCLUDED's time: Citus evaluates no function in DO UPDATE)
            receiver_monthly_points = EXCLUDED.receiver_monthly_points, same_household = EXCLUDED.same_household,
            updated_at = EXCLUDED.updated_at;
    EXCEPTION
        WHEN check_violation OR numeric_value_out_of_range THEN
            RAISE EXCEPTION 'invalid transfer rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
