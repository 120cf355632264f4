CREATE FUNCTION loyalty.validate_coupon(
    member bigint, code text, amount anycompatible DEFAULT NULL, lines jsonb DEFAULT NULL, channel text DEFAULT NULL,
    reference text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- a driver may send the amount as an integer, a float, a decimal or text
    v_amount numeric := amount::numeric;
BEGIN
    PERFORM loyalty.coupon_check_basket(member, code, v_amount, lines);
    IF NOT EXISTS (SELECT FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) validate_coupon.member) THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_member(member);
    -- the same decision as redeem_coupon's, writing nothing
    RETURN loyalty.coupon_offer(member, code, v_amount, lines, channel, reference) - 'combinable';
END $$;
