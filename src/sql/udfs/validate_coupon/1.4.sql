CREATE FUNCTION loyalty.validate_coupon(
    member bigint, code text, amount numeric DEFAULT NULL, lines jsonb DEFAULT NULL, channel text DEFAULT NULL,
    reference text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
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
    IF NOT EXISTS (SELECT FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) validate_coupon.member) THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_member(member);
    -- the same decision as redeem_coupon's, writing nothing
    RETURN loyalty.coupon_offer(member, code, amount, lines, channel, reference) - 'combinable';
END $$;
