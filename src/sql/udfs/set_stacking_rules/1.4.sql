CREATE FUNCTION loyalty.set_stacking_rules(program bigint, max_earn_multiplier anycompatible DEFAULT NULL,
                                           max_coupon_share anycompatible DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- the ceilings as numeric, whatever a driver sent (ints, floats, decimals)
    v_multiplier numeric := max_earn_multiplier::numeric;
    v_share numeric := max_coupon_share::numeric;
BEGIN
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.require_program(set_stacking_rules.program);
    IF NOT (v_multiplier >= 1 AND v_multiplier < 'Infinity') THEN
        RAISE EXCEPTION 'max_earn_multiplier must be a finite multiplier of at least 1, not %', v_multiplier
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL: no ceiling.';
    END IF;
    IF NOT (v_share > 0 AND v_share <= 1) THEN
        RAISE EXCEPTION 'max_coupon_share must lie in (0, 1], not %', v_share
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL: no ceiling.';
    END IF;
    UPDATE loyalty.programs p SET max_earn_multiplier = v_multiplier, max_coupon_share = v_share
    WHERE p.program_id OPERATOR(pg_catalog.=) set_stacking_rules.program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
END $$;
