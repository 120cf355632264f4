CREATE FUNCTION loyalty.redeem_reward(member bigint, reward bigint, idempotency_key text DEFAULT NULL,
                                      channel text DEFAULT NULL)
RETURNS TABLE (redemption_id bigint, voucher text, points bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_acc loyalty.accounts;
    v_r loyalty.rewards;
    v_prev loyalty.redemptions;
    v_used bigint;
    v_entry bigint;
    v_id bigint;
    v_voucher text;
    v_cost bigint;
BEGIN
    PERFORM loyalty.require_member(redeem_reward.member);
    IF member IS NULL OR reward IS NULL THEN
        RAISE EXCEPTION 'member and reward must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id = redeem_reward.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO v_prev FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.idempotency_key = redeem_reward.idempotency_key;
        IF FOUND THEN
            IF v_prev.reward_id <> reward THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN QUERY SELECT v_prev.redemption_id, v_prev.voucher, v_prev.points::bigint;
            RETURN;
        END IF;
    END IF;
    SELECT * INTO v_r FROM loyalty.rewards r WHERE r.reward_id = reward AND r.program_id = v_acc.program_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reward % does not exist in the program of member %', reward, member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT v_r.active OR (v_r.valid_from IS NOT NULL AND now() < v_r.valid_from)
       OR (v_r.valid_until IS NOT NULL AND now() >= v_r.valid_until) THEN
        RAISE EXCEPTION 'reward "%" is not available now', v_r.code USING ERRCODE = 'LY011',
            DETAIL = format('active: %s, valid from %s until %s', v_r.active, coalesce(v_r.valid_from::text, '-'),
                            coalesce(v_r.valid_until::text, '-'));
    END IF;
    IF v_r.min_tier IS NOT NULL
       AND (v_acc.tier IS NULL OR loyalty.tier_rank(v_acc.tier) < loyalty.tier_rank(v_r.min_tier)) THEN
        RAISE EXCEPTION 'reward "%" needs tier % or above', v_r.code, v_r.min_tier USING ERRCODE = 'LY012',
            DETAIL = format('The member''s tier is %s.', coalesce(v_acc.tier::text, 'none'));
    END IF;
    IF v_r.per_member_limit IS NOT NULL THEN
        SELECT count(*) INTO v_used FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.reward_id = reward AND x.status = 'issued';
        IF v_used >= v_r.per_member_limit THEN
            RAISE EXCEPTION 'member % already redeemed reward "%" % times (the limit)', member, v_r.code, v_used
                USING ERRCODE = 'LY013';
        END IF;
    END IF;
    IF v_r.stock IS NOT NULL THEN
        -- waits for a concurrent buyer of the same reward, then re-checks the stock
        UPDATE loyalty.rewards r SET stock = r.stock - 1 WHERE r.reward_id = reward AND r.stock > 0;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'reward "%" is out of stock', v_r.code USING ERRCODE = 'LY010';
        END IF;
    END IF;
    -- a paid membership's discount on rewards, while the membership is paid
    v_cost := ceil(v_r.point_cost::bigint * (1 - coalesce((
        SELECT p.reward_discount FROM loyalty.subscriptions s JOIN loyalty.membership_plans p ON p.plan_id = s.plan_id
        WHERE s.member_id = redeem_reward.member AND s.status = 'active' AND s.current_period_end > now()), 0)));
    v_entry := loyalty.redeem(member, v_cost, channel, 'reward:' || v_r.code,
                              CASE WHEN idempotency_key IS NOT NULL THEN 'reward:' || idempotency_key END);
    -- the member id, then 64 bits from the strong random source: distinct from
    -- every other member's vouchers by the prefix, so only this member's are
    -- checked (one shard on Citus); the unique index is the last word
    LOOP
        v_voucher := upper(to_hex(member)) || '-' || upper(substr(md5(gen_random_uuid()::text), 1, 16));
        EXIT WHEN NOT EXISTS (SELECT FROM loyalty.redemptions x
                              WHERE x.member_id = redeem_reward.member AND x.voucher = v_voucher);
    END LOOP;
    INSERT INTO loyalty.redemptions (member_id, reward_id, points, entry_id, voucher, idempotency_key, channel)
    VALUES (member, reward, v_cost, v_entry, v_voucher, idempotency_key, channel)
    RETURNING redemptions.redemption_id INTO v_id;
    PERFORM loyalty.emit_event(member, 'reward.redeemed',
        jsonb_build_object('reward_id', reward, 'reward_code', v_r.code, 'redemption_id', v_id,
                           'voucher', v_voucher, 'points', v_cost));
    RETURN QUERY SELECT v_id, v_voucher, v_cost;
END $$;
