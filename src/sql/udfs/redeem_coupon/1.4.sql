CREATE FUNCTION loyalty.redeem_coupon(
    member bigint, code text, amount anycompatible DEFAULT NULL, lines jsonb DEFAULT NULL, channel text DEFAULT NULL,
    reference text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- a driver may send the amount as an integer, a float, a decimal or text
    v_amount numeric := amount::numeric;
    a loyalty.accounts;
    r loyalty.coupon_redemptions;
    c loyalty.coupon_campaigns;
    v_offer jsonb;
    v_hash text;
    v_id bigint;
    v_code text;
    v_root bigint;
BEGIN
    PERFORM loyalty.coupon_check_basket(member, code, v_amount, lines);
    IF idempotency_key = '' THEN
        RAISE EXCEPTION 'idempotency_key must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the member's lock, as every write of the member takes it
    SELECT * INTO a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) redeem_coupon.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(a.program_id);
    v_hash := md5(concat_ws('|', upper(regexp_replace(code, '[\s-]', '', 'g')), v_amount, lines, channel, reference));
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO r FROM loyalty.coupon_redemptions x
        WHERE x.member_id OPERATOR(pg_catalog.=) redeem_coupon.member
          AND x.idempotency_key OPERATOR(pg_catalog.=) redeem_coupon.idempotency_key;
        IF NOT FOUND THEN
            -- a use acknowledged on a member merged with this one replays on
            -- either (a merge leaves the uses with the absorbed member's
            -- orders): the last survivor's own key first, then those of the
            -- members merged into it
            v_root := coalesce((SELECT m.merged_into FROM loyalty.members m
                                WHERE m.member_id OPERATOR(pg_catalog.=) redeem_coupon.member), member);
            SELECT * INTO r FROM loyalty.coupon_redemptions x
            WHERE x.member_id OPERATOR(pg_catalog.=) ANY (v_root OPERATOR(pg_catalog.||)
                      ARRAY(SELECT m.member_id FROM loyalty.members m WHERE m.merged_into OPERATOR(pg_catalog.=) v_root))
              AND x.idempotency_key OPERATOR(pg_catalog.=) redeem_coupon.idempotency_key
            ORDER BY x.member_id OPERATOR(pg_catalog.<>) v_root, x.redemption_id
            LIMIT 1;
        END IF;
        IF FOUND THEN
            IF r.request_hash OPERATOR(pg_catalog.<>) v_hash THEN
                RAISE EXCEPTION 'idempotency key "%" was used for another coupon request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN r.redemption_id;
        END IF;
    END IF;
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'member % is %', member, a.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- the code, then its campaign: a use and the budget are counted under their locks
    v_offer := loyalty.coupon_offer(member, code, v_amount, lines, channel, reference);
    IF v_offer ->> 'reason' = 'unknown_code' THEN
        RAISE EXCEPTION 'coupon does not apply: unknown code' USING ERRCODE = 'LY070',
            DETAIL = format('code %s, reason unknown_code', code);
    END IF;
    v_code := v_offer ->> 'code';
    PERFORM FROM loyalty.coupon_codes k
    WHERE k.program_id OPERATOR(pg_catalog.=) a.program_id AND k.code OPERATOR(pg_catalog.=) v_code FOR NO KEY UPDATE;
    SELECT * INTO STRICT c FROM loyalty.coupon_campaigns x
    WHERE x.campaign_id OPERATOR(pg_catalog.=) (v_offer ->> 'campaign_id')::bigint FOR NO KEY UPDATE;
    PERFORM loyalty.expire_coupon_holds(a.program_id, v_code);
    -- decided again under the locks, on what they protect
    v_offer := loyalty.coupon_offer(member, code, v_amount, lines, channel, reference);
    IF NOT (v_offer ->> 'valid')::boolean THEN
        -- (the code in the detail: the message is the same for every code of a campaign)
        IF v_offer ->> 'reason' IN ('used_up', 'member_limit', 'campaign_limit', 'budget_exhausted') THEN
            RAISE EXCEPTION 'coupon cannot be used: %', replace(v_offer ->> 'reason', '_', ' ')
                USING ERRCODE = 'LY071', DETAIL = format('code %s, reason %s', v_code, v_offer ->> 'reason');
        END IF;
        RAISE EXCEPTION 'coupon does not apply: %', replace(v_offer ->> 'reason', '_', ' ')
            USING ERRCODE = 'LY070', DETAIL = format('code %s, reason %s', v_code, v_offer ->> 'reason'),
            HINT = 'loyalty.validate_coupon() says why a coupon applies or not, writing nothing.';
    END IF;
    INSERT INTO loyalty.coupon_redemptions AS x (member_id, program_id, campaign_id, code, channel, reference,
        basket_amount, discount, points, free_item, idempotency_key, request_hash, expires_at)
    VALUES (member, a.program_id, c.campaign_id, v_code, channel, reference,
            coalesce(v_amount, (v_offer ->> 'eligible_amount')::numeric), (v_offer ->> 'discount')::numeric,
            (v_offer ->> 'points')::bigint, v_offer ->> 'free_item', idempotency_key, v_hash, now() + c.hold_ttl)
    RETURNING x.redemption_id INTO v_id;
    UPDATE loyalty.coupon_codes k SET uses = k.uses + 1
    WHERE k.program_id OPERATOR(pg_catalog.=) a.program_id AND k.code OPERATOR(pg_catalog.=) v_code;
    UPDATE loyalty.coupon_campaigns x SET uses = x.uses + 1,
        spent = x.spent + CASE WHEN c.offer IN ('bonus_points', 'points_multiplier') THEN (v_offer ->> 'points')::numeric
                               ELSE (v_offer ->> 'discount')::numeric END
    WHERE x.campaign_id OPERATOR(pg_catalog.=) c.campaign_id;
    RETURN v_id;
END $$;
