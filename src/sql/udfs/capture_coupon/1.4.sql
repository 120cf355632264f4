CREATE FUNCTION loyalty.capture_coupon(member bigint, redemption bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r loyalty.coupon_redemptions;
    c loyalty.coupon_campaigns;
    v_member bigint;
    v_entry bigint;
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
                   WHERE x.member_id OPERATOR(pg_catalog.=) capture_coupon.member
                     AND x.redemption_id OPERATOR(pg_catalog.=) capture_coupon.redemption) THEN
        SELECT x.member_id INTO v_member FROM loyalty.coupon_redemptions x
        WHERE x.member_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT m.member_id FROM loyalty.members m
                                                            WHERE m.merged_into OPERATOR(pg_catalog.=) capture_coupon.member))
          AND x.redemption_id OPERATOR(pg_catalog.=) capture_coupon.redemption;
        v_member := coalesce(v_member, member);
    END IF;
    PERFORM FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) v_member FOR NO KEY UPDATE;
    SELECT * INTO r FROM loyalty.coupon_redemptions x
    WHERE x.member_id OPERATOR(pg_catalog.=) v_member AND x.redemption_id OPERATOR(pg_catalog.=) capture_coupon.redemption
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % has no coupon redemption %', member, redemption USING ERRCODE = 'no_data_found';
    END IF;
    IF r.status = 'captured' THEN
        RETURN r.points;                                -- the same capture again
    END IF;
    IF r.status OPERATOR(pg_catalog.<>) 'held' OR r.expires_at <= now() THEN
        RAISE EXCEPTION 'coupon redemption % is %', redemption,
            CASE WHEN r.status = 'held' THEN 'expired' ELSE r.status END USING ERRCODE = 'LY003',
            HINT = 'Redeem the coupon again.';
    END IF;
    SELECT * INTO STRICT c FROM loyalty.coupon_campaigns x WHERE x.campaign_id OPERATOR(pg_catalog.=) r.campaign_id;
    IF r.points > 0 THEN
        PERFORM loyalty.award(member, r.points, 'coupon ' OPERATOR(pg_catalog.||) r.code
                              OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||) c.name OPERATOR(pg_catalog.||) ')',
                              r.channel, r.reference, 'coupon:' OPERATOR(pg_catalog.||) r.redemption_id);
        v_entry := loyalty.last_entry();
    END IF;
    UPDATE loyalty.coupon_redemptions x SET status = 'captured', entry_id = v_entry, resolved_at = now()
    WHERE x.member_id OPERATOR(pg_catalog.=) r.member_id AND x.redemption_id OPERATOR(pg_catalog.=) r.redemption_id;
    PERFORM loyalty.emit_event(member, 'coupon.redeemed',
        jsonb_build_object('redemption_id', r.redemption_id, 'code', r.code, 'campaign', c.name,
                           'discount', r.discount, 'points', r.points, 'reference', r.reference));
    RETURN r.points;
END $$;
