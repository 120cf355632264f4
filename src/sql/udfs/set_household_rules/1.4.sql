CREATE FUNCTION loyalty.set_household_rules(
    program bigint, max_members integer DEFAULT 6, child_can_redeem boolean DEFAULT false,
    adult_monthly_points bigint DEFAULT NULL, child_monthly_points bigint DEFAULT NULL,
    household_tier boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(set_household_rules.program);
    IF program IS NULL OR max_members IS NULL OR child_can_redeem IS NULL OR household_tier IS NULL THEN
        RAISE EXCEPTION 'program, max_members, child_can_redeem and household_tier must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.household_rules AS r (program_id, max_members, child_can_redeem, adult_monthly_points,
                                                  child_monthly_points, household_tier)
        VALUES (set_household_rules.program, set_household_rules.max_members, set_household_rules.child_can_redeem,
                set_household_rules.adult_monthly_points, set_household_rules.child_monthly_points,
                set_household_rules.household_tier)
        ON CONFLICT (program_id) DO UPDATE SET max_members = EXCLUDED.max_members,
            child_can_redeem = EXCLUDED.child_can_redeem, adult_monthly_points = EXCLUDED.adult_monthly_points,
            child_monthly_points = EXCLUDED.child_monthly_points, household_tier = EXCLUDED.household_tier;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid household rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
