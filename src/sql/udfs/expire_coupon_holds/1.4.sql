CREATE FUNCTION loyalty.expire_coupon_holds(program bigint, code text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_n bigint := 0;
BEGIN
    -- a code's overdue holds give their use (and budget) back; the code and
    -- its campaign are locked first (the order every use takes them in)
    FOR r IN
        SELECT x.member_id, x.redemption_id, x.program_id, x.code, x.campaign_id,
               CASE WHEN c.offer IN ('bonus_points', 'points_multiplier') THEN x.points ELSE x.discount END AS cost
        FROM loyalty.coupon_redemptions x JOIN loyalty.coupon_campaigns c ON c.campaign_id = x.campaign_id
        WHERE x.status = 'held' AND x.expires_at <= now()
          AND x.program_id OPERATOR(pg_catalog.=) expire_coupon_holds.program
          AND x.code OPERATOR(pg_catalog.=) expire_coupon_holds.code
    LOOP
        PERFORM FROM loyalty.coupon_codes k
        WHERE k.program_id OPERATOR(pg_catalog.=) r.program_id AND k.code OPERATOR(pg_catalog.=) r.code FOR NO KEY UPDATE;
        PERFORM FROM loyalty.coupon_campaigns c WHERE c.campaign_id OPERATOR(pg_catalog.=) r.campaign_id FOR NO KEY UPDATE;
        UPDATE loyalty.coupon_redemptions x SET status = 'expired', resolved_at = now()
        WHERE x.member_id OPERATOR(pg_catalog.=) r.member_id AND x.redemption_id OPERATOR(pg_catalog.=) r.redemption_id
          AND x.status = 'held';
        CONTINUE WHEN NOT FOUND;            -- captured or released meanwhile
        PERFORM loyalty.coupon_give_back(r.program_id, r.code, r.campaign_id, r.cost);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END $$;
