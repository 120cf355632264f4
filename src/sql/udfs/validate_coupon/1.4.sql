CREATE FUNCTION loyalty.validate_coupon(
    member bigint, code text, amount numeric DEFAULT NULL, lines jsonb DEFAULT NULL, channel text DEFAULT NULL,
    reference text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.coupon_check_basket(member, code, amount, lines);
    IF NOT EXISTS (SELECT FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) validate_coupon.member) THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_member(member);
    -- the same decision as redeem_coupon's, writing nothing
    RETURN loyalty.coupon_offer(member, code, amount, lines, channel, reference) - 'combinable';
END $$;
