CREATE FUNCTION loyalty.set_referral_rules(program bigint, referrer_points loyalty.points, referee_points loyalty.points,
    min_purchase_amount anycompatible DEFAULT 0::numeric, max_referrals_per_referrer integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- the amount as numeric, whatever a driver sent (ints, floats, decimals)
    v_min numeric := set_referral_rules.min_purchase_amount::numeric;
BEGIN
    PERFORM loyalty.require_program(set_referral_rules.program);
    IF program IS NULL OR referrer_points IS NULL OR referee_points IS NULL THEN
        RAISE EXCEPTION 'program and both bonuses must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_min = 'NaN' OR v_min < 0 OR v_min = 'Infinity' THEN
        RAISE EXCEPTION 'min_purchase_amount must be a finite amount of at least 0, got %', v_min
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        INSERT INTO loyalty.referral_rules (program_id, referrer_points, referee_points, min_purchase_amount,
                                            max_referrals_per_referrer)
        VALUES (set_referral_rules.program, set_referral_rules.referrer_points, set_referral_rules.referee_points,
                coalesce(v_min, 0), set_referral_rules.max_referrals_per_referrer)
        ON CONFLICT (program_id) DO UPDATE SET referrer_points = EXCLUDED.referrer_points,
            referee_points = EXCLUDED.referee_points, min_purchase_amount = EXCLUDED.min_purchase_amount,
            max_referrals_per_referrer = EXCLUDED.max_referrals_per_referrer;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid referral rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
