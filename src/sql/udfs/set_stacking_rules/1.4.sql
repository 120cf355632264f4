CREATE FUNCTION loyalty.set_stacking_rules(program bigint, max_earn_multiplier numeric DEFAULT NULL,
                                           max_coupon_share numeric DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.require_program(set_stacking_rules.program);
    IF NOT (max_earn_multiplier >= 1 AND max_earn_multiplier < 'Infinity') THEN
        RAISE EXCEPTION 'max_earn_multiplier must be a finite multiplier of at least 1, not %', max_earn_multiplier
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL: no ceiling.';
    END IF;
    IF NOT (max_coupon_share > 0 AND max_coupon_share <= 1) THEN
        RAISE EXCEPTION 'max_coupon_share must lie in (0, 1], not %', max_coupon_share
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL: no ceiling.';
    END IF;
    UPDATE loyalty.programs p SET max_earn_multiplier = set_stacking_rules.max_earn_multiplier,
        max_coupon_share = set_stacking_rules.max_coupon_share
    WHERE p.program_id OPERATOR(pg_catalog.=) set_stacking_rules.program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
END $$;
