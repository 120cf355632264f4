CREATE FUNCTION loyalty.coupon_check_basket(member bigint, code text, amount numeric, lines jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF member IS NULL OR code IS NULL THEN
        RAISE EXCEPTION 'member and code must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF amount IS NOT NULL AND (amount = 'NaN' OR amount < 0 OR amount = 'Infinity') THEN
        RAISE EXCEPTION 'amount must be a finite amount of at least 0, got %', amount USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF lines IS NOT NULL AND jsonb_typeof(lines) <> 'array' THEN
        RAISE EXCEPTION 'lines must be a JSON array of order lines' USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
