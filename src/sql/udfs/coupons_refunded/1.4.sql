CREATE FUNCTION loyalty.coupons_refunded(member bigint, reference text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_n integer := 0;
BEGIN
    -- the order was refunded in full or cancelled: its coupons are given back
    -- (a captured one's points taken back)
    FOR r IN SELECT x.redemption_id FROM loyalty.coupon_redemptions x
             WHERE x.member_id OPERATOR(pg_catalog.=) coupons_refunded.member
               AND x.reference OPERATOR(pg_catalog.=) coupons_refunded.reference
               AND x.status IN ('held', 'captured')
             ORDER BY x.redemption_id
    LOOP
        PERFORM loyalty.release_coupon(member, r.redemption_id,
                                       'order ' OPERATOR(pg_catalog.||) reference OPERATOR(pg_catalog.||) ' refunded');
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END $$;
