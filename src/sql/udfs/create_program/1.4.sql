CREATE FUNCTION loyalty.create_program(
    name            text,
    currency        text DEFAULT 'USD',
    point_value     anycompatible DEFAULT 0.01,
    earn_rate       anycompatible DEFAULT 1::numeric,
    rounding        text DEFAULT 'floor',
    expiry_period   interval DEFAULT NULL,
    pending_period  interval DEFAULT interval '0',
    refund_policy   text DEFAULT 'forgive',
    max_hold_ttl    interval DEFAULT interval '1 day')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    -- the point value and rate as numeric, whatever a driver sent (ints,
    -- floats, decimals)
    v_point_value numeric := create_program.point_value::numeric;
    v_earn_rate numeric := create_program.earn_rate::numeric;
BEGIN
    IF name IS NULL OR btrim(name) = '' THEN
        RAISE EXCEPTION 'a program needs a name' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF currency IS NULL OR currency !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION 'currency must be an ISO 4217 code such as USD, got %', coalesce(currency, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_point_value IS NULL OR v_point_value < 0 OR v_point_value = 'Infinity' OR v_point_value = 'NaN' THEN
        RAISE EXCEPTION 'point_value must be a finite, non-negative money value, got %', coalesce(v_point_value::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'One point worth one cent is 0.01.';
    END IF;
    IF v_earn_rate IS NULL OR v_earn_rate < 0 OR v_earn_rate = 'Infinity' OR v_earn_rate = 'NaN' THEN
        RAISE EXCEPTION 'earn_rate must be a finite, non-negative number of points per currency unit, got %',
            coalesce(v_earn_rate::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rounding IS NULL OR NOT rounding = ANY (ARRAY['floor', 'round', 'ceil', 'trunc']) THEN
        RAISE EXCEPTION 'unknown rounding rule "%"', coalesce(rounding, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use one of floor, round, ceil or trunc.';
    END IF;
    IF expiry_period IS NOT NULL AND expiry_period <= interval '0' THEN
        RAISE EXCEPTION 'expiry_period must be positive or NULL (never expire)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pending_period IS NULL OR pending_period < interval '0' THEN
        RAISE EXCEPTION 'pending_period must be zero or positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF refund_policy IS NULL OR NOT refund_policy = ANY (ARRAY['forgive', 'debt']) THEN
        RAISE EXCEPTION 'unknown refund policy "%"', coalesce(refund_policy, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use forgive or debt.';
    END IF;
    IF max_hold_ttl IS NULL OR max_hold_ttl <= interval '0' THEN
        RAISE EXCEPTION 'max_hold_ttl must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO loyalty.programs (name, currency, point_value, earn_rate, rounding, expiry_period,
                                  pending_period, refund_policy, max_hold_ttl)
    VALUES (create_program.name, create_program.currency, v_point_value,
            v_earn_rate, create_program.rounding, create_program.expiry_period,
            create_program.pending_period, create_program.refund_policy, create_program.max_hold_ttl)
    RETURNING program_id INTO v_id;
    RETURN v_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'a program named "%" already exists', create_program.name
        USING ERRCODE = 'unique_violation';
END $$;
