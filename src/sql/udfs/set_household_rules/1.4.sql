CREATE FUNCTION loyalty.set_household_rules(
    program bigint, max_members integer DEFAULT 6, child_can_redeem boolean DEFAULT false,
    adult_monthly_points bigint DEFAULT NULL, child_monthly_points bigint DEFAULT NULL,
    household_tier boolean DEFAULT false, pool_share anycompatible DEFAULT NULL, pool_on_dissolve text DEFAULT 'split')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h record;
    -- the share as numeric, whatever a driver sent (ints, floats, decimals)
    v_share numeric := pool_share::numeric;
BEGIN
    PERFORM loyalty.require_program(set_household_rules.program);
    IF program IS NULL OR max_members IS NULL OR child_can_redeem IS NULL OR household_tier IS NULL
       OR pool_on_dissolve IS NULL THEN
        RAISE EXCEPTION 'program, max_members, child_can_redeem, household_tier and pool_on_dissolve must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (v_share > 0 AND v_share <= 1) THEN
        RAISE EXCEPTION 'pool_share must lie in (0, 1], not %', v_share USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The share of each earn also credited to the household pool, e.g. 0.1; NULL: no pool (pooled redemption).';
    END IF;
    BEGIN
        INSERT INTO loyalty.household_rules AS r (program_id, max_members, child_can_redeem, adult_monthly_points,
                                                  child_monthly_points, household_tier, pool_on_dissolve)
        VALUES (set_household_rules.program, set_household_rules.max_members, set_household_rules.child_can_redeem,
                set_household_rules.adult_monthly_points, set_household_rules.child_monthly_points,
                set_household_rules.household_tier, set_household_rules.pool_on_dissolve)
        ON CONFLICT (program_id) DO UPDATE SET max_members = EXCLUDED.max_members,
            child_can_redeem = EXCLUDED.child_can_redeem, adult_monthly_points = EXCLUDED.adult_monthly_points,
            child_monthly_points = EXCLUDED.child_monthly_points, household_tier = EXCLUDED.household_tier,
            pool_on_dissolve = EXCLUDED.pool_on_dissolve;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid household rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
    -- the share is read with the program by every earn
    UPDATE loyalty.programs p SET household_pool_share = v_share
    WHERE p.program_id OPERATOR(pg_catalog.=) set_household_rules.program
      AND p.household_pool_share IS DISTINCT FROM v_share;
    -- households that have none get their pool (ones that have keep it, even
    -- when sharing stops: its points stay spendable by the household)
    IF v_share IS NOT NULL THEN
        FOR h IN SELECT x.household_id FROM loyalty.households x
                 WHERE x.program_id OPERATOR(pg_catalog.=) set_household_rules.program
                   AND x.dissolved_at IS NULL AND x.pool_member IS NULL
                 ORDER BY x.household_id
        LOOP
            PERFORM loyalty.household_open_pool(h.household_id);
        END LOOP;
    END IF;
END $$;
