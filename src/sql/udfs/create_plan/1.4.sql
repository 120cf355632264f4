CREATE FUNCTION loyalty.create_plan(
    program bigint, code text, name text, fee anycompatible, period text,
    currency text DEFAULT NULL, tier loyalty.tier DEFAULT NULL, earn_multiplier anycompatible DEFAULT NULL,
    welcome_points bigint DEFAULT 0, monthly_points bigint DEFAULT 0,
    renewal_notice interval DEFAULT '7 days', reward_discount anycompatible DEFAULT 0::numeric)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_currency text;
    -- the fee, multiplier and discount as numeric, whatever a driver sent
    -- (ints, floats, decimals)
    v_fee numeric := fee::numeric;
    v_multiplier numeric := earn_multiplier::numeric;
    v_discount numeric := reward_discount::numeric;
BEGIN
    PERFORM loyalty.require_program(create_plan.program);
    IF program IS NULL OR code IS NULL OR name IS NULL OR v_fee IS NULL OR period IS NULL THEN
        RAISE EXCEPTION 'program, code, name, fee and period must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT p.currency INTO v_currency FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) create_plan.program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    IF period NOT IN ('month', 'year') THEN
        RAISE EXCEPTION 'unknown plan period "%"', period USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use month or year.';
    END IF;
    IF v_fee = 'NaN' OR v_fee < 0 OR v_fee = 'Infinity' THEN
        RAISE EXCEPTION 'fee must be a finite amount of at least 0, got %', v_fee USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF tier IS NOT NULL AND NOT EXISTS (SELECT FROM loyalty.tiers t WHERE t.program_id OPERATOR(pg_catalog.=) create_plan.program
                                        AND t.rank OPERATOR(pg_catalog.=) loyalty.tier_rank(create_plan.tier)
                                        AND t.name OPERATOR(pg_catalog.=) loyalty.tier_name(create_plan.tier)) THEN
        RAISE EXCEPTION 'tier % is not on the ladder of program %', tier, program USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        INSERT INTO loyalty.membership_plans (program_id, code, name, fee, currency, period, tier, welcome_points,
                                              monthly_points, renewal_notice, reward_discount)
        VALUES (program, code, name, v_fee, coalesce(currency, v_currency), period, tier, coalesce(welcome_points, 0),
                coalesce(monthly_points, 0), coalesce(renewal_notice, '7 days'), coalesce(v_discount, 0))
        RETURNING plan_id INTO v_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a plan "%"', program, code USING ERRCODE = 'unique_violation';
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid plan "%": %', code, SQLERRM USING ERRCODE = 'invalid_parameter_value';
    END;
    -- the plan's earn multiplier is an earning rule on the plan
    IF v_multiplier IS NOT NULL THEN
        PERFORM loyalty.create_earning_rule(program, 'plan ' OPERATOR(pg_catalog.||) code, 'multiply',
                                            multiplier => v_multiplier, plans => ARRAY[code]);
    END IF;
    RETURN v_id;
END $$;
