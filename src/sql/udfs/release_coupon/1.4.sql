CREATE FUNCTION loyalty.release_coupon(member bigint, redemption bigint, reason text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r loyalty.coupon_redemptions;
    c loyalty.coupon_campaigns;
    v_member bigint;
BEGIN
    IF member IS NULL OR redemption IS NULL THEN
        RAISE EXCEPTION 'member and redemption must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.require_member(member);
    -- a use by a member merged into this one stays that member's (with its
    -- order): it is found by the survivor's id too, and handled as the
    -- absorbed member's, which is locked, as a refund of its order locks it
    v_member := member;
    IF NOT EXISTS (SELECT FROM loyalty.coupon_redemptions x
                   WHERE x.member_id OPERATOR(pg_catalog.=) release_coupon.member
                     AND x.redemption_id OPERATOR(pg_catalog.=) release_coupon.redemption) THEN
        SELECT x.member_id INTO v_member FROM loyalty.coupon_redemptions x
        WHERE x.member_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT m.member_id FROM loyalty.members m
                                                            WHERE m.merged_into OPERATOR(pg_catalog.=) release_coupon.member))
          AND x.redemption_id OPERATOR(pg_catalog.=) release_coupon.redemption;
        v_member := coalesce(v_member, member);
    END IF;
    PERFORM FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) v_member FOR NO KEY UPDATE;
    SELECT * INTO r FROM loyalty.coupon_redemptions x
    WHERE x.member_id OPERATOR(pg_catalog.=) v_member AND x.redemption_id OPERATOR(pg_catalog.=) release_coupon.redemption;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % has no coupon redemption %', member, redemption USING ERRCODE = 'no_data_found';
    END IF;
    -- the code and the campaign before the redemption: the order of every use
    PERFORM FROM loyalty.coupon_codes k
    WHERE k.program_id OPERATOR(pg_catalog.=) r.program_id AND k.code OPERATOR(pg_catalog.=) r.code FOR NO KEY UPDATE;
    SELECT * INTO STRICT c FROM loyalty.coupon_campaigns x WHERE x.campaign_id OPERATOR(pg_catalog.=) r.campaign_id
    FOR NO KEY UPDATE;
    SELECT * INTO STRICT r FROM loyalty.coupon_redemptions x
    WHERE x.member_id OPERATOR(pg_catalog.=) r.member_id AND x.redemption_id OPERATOR(pg_catalog.=) r.redemption_id FOR UPDATE;
    IF r.status IN ('released', 'expired', 'reversed') THEN
        RETURN r.status;                                -- given back already
    END IF;
    IF r.status = 'captured' THEN
        -- the order went through, then was refunded: its points go back too
        IF r.entry_id IS NOT NULL THEN
            PERFORM loyalty.reverse(r.member_id, r.entry_id, reason => coalesce(release_coupon.reason, 'coupon ' OPERATOR(pg_catalog.||) r.code OPERATOR(pg_catalog.||) ' cancelled'));
        END IF;
        UPDATE loyalty.coupon_redemptions x SET status = 'reversed', resolved_at = now()
        WHERE x.member_id OPERATOR(pg_catalog.=) r.member_id AND x.redemption_id OPERATOR(pg_catalog.=) r.redemption_id;
    ELSE
        UPDATE loyalty.coupon_redemptions x SET status = 'released', resolved_at = now()
        WHERE x.member_id OPERATOR(pg_catalog.=) r.member_id AND x.redemption_id OPERATOR(pg_catalog.=) r.redemption_id;
    END IF;
    PERFORM loyalty.coupon_give_back(r.program_id, r.code, r.campaign_id,
        CASE WHEN c.offer IN ('bonus_points', 'points_multiplier') THEN r.points ELSE r.discount END);
    RETURN CASE WHEN r.status = 'captured' THEN 'reversed' ELSE 'released' END;
END $$;
