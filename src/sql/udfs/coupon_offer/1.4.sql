CREATE FUNCTION loyalty.coupon_offer(member bigint, code text, amount numeric, lines jsonb, channel text,
                                     reference text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a loyalty.accounts;
    k loyalty.coupon_codes;
    c loyalty.coupon_campaigns;
    p loyalty.programs;
    v_code text := upper(regexp_replace(coupon_offer.code, '[\s-]', '', 'g'));
    v_eligible numeric;
    v_discount numeric := 0;
    v_points numeric := 0;
    v_cost numeric;
    v_reason text;
    v_uses bigint;
    v_order_cost numeric;
BEGIN
    SELECT * INTO a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) coupon_offer.member;
    SELECT * INTO k FROM loyalty.coupon_codes x
    WHERE x.program_id OPERATOR(pg_catalog.=) a.program_id AND x.code OPERATOR(pg_catalog.=) v_code;
    IF NOT FOUND THEN
        -- as printed, a Crockford code may be read with I or L for 1 and O for 0
        v_code := translate(v_code, 'ILO', '110');
        SELECT * INTO k FROM loyalty.coupon_codes x
        WHERE x.program_id OPERATOR(pg_catalog.=) a.program_id AND x.code OPERATOR(pg_catalog.=) v_code;
        IF NOT FOUND THEN
            RETURN jsonb_build_object('valid', false, 'reason', 'unknown_code');
        END IF;
    END IF;
    SELECT * INTO STRICT c FROM loyalty.coupon_campaigns x WHERE x.campaign_id OPERATOR(pg_catalog.=) k.campaign_id;
    SELECT * INTO STRICT p FROM loyalty.programs x WHERE x.program_id OPERATOR(pg_catalog.=) a.program_id;

    -- what the basket offers the campaign: the lines of its categories and
    -- products (all lines when it names none), or the amount
    IF lines IS NOT NULL THEN
        SELECT coalesce(sum((e ->> 'amount')::numeric), 0) INTO v_eligible
        FROM jsonb_array_elements(lines) e
        WHERE (c.categories IS NULL AND c.products IS NULL)
           OR (e ->> 'category') = ANY (c.categories) OR (e ->> 'product') = ANY (c.products);
    ELSIF c.categories IS NULL AND c.products IS NULL THEN
        v_eligible := coalesce(amount, 0);
    ELSE
        v_eligible := 0;
    END IF;

    v_reason := CASE
        WHEN a.status OPERATOR(pg_catalog.<>) 'active' THEN 'member_not_active'
        WHEN NOT c.active THEN 'inactive'
        WHEN c.valid_from IS NOT NULL AND now() < c.valid_from THEN 'not_started'
        WHEN c.valid_until IS NOT NULL AND now() >= c.valid_until THEN 'expired'
        WHEN c.channels IS NOT NULL AND (channel IS NULL OR NOT channel = ANY (c.channels)) THEN 'channel'
        WHEN c.min_tier_rank IS NOT NULL AND coalesce(loyalty.tier_rank(a.tier), -1) < c.min_tier_rank THEN 'tier'
        WHEN c.segments IS NOT NULL AND (a.segment IS NULL OR NOT a.segment = ANY (c.segments)) THEN 'segment'
        WHEN c.tags IS NOT NULL AND NOT EXISTS (SELECT 1 FROM loyalty.member_tags t
                                                WHERE t.member_id OPERATOR(pg_catalog.=) coupon_offer.member
                                                  AND t.tag = ANY (c.tags)) THEN 'tag'
        -- held out to measure the campaign (campaign_results)
        WHEN c.control_share > 0 AND loyalty.in_control(coupon_offer.member, c.control_seed, c.control_share::float8)
            THEN 'control_group'
        WHEN v_eligible <= 0 AND c.offer IN ('percent_off', 'amount_off', 'points_multiplier') THEN 'no_eligible_items'
        WHEN v_eligible < c.min_basket THEN 'min_basket'
        -- a free item needs the item in the basket (when the basket's lines are given)
        WHEN c.offer = 'free_item' AND lines IS NOT NULL
             AND NOT EXISTS (SELECT FROM jsonb_array_elements(lines) e WHERE e ->> 'product' = c.item)
            THEN 'item_not_in_basket'
    END;
    IF v_reason IS NULL AND reference IS NOT NULL THEN
        -- stacking: other coupons on the same order must all be combinable, and this one too
        SELECT CASE WHEN bool_or(r.campaign_id = c.campaign_id) THEN 'already_applied'
                    WHEN count(*) > 0 AND (NOT c.combinable OR NOT bool_and(o.combinable)) THEN 'not_combinable' END
        INTO v_reason
        FROM loyalty.coupon_redemptions r JOIN loyalty.coupon_campaigns o ON o.campaign_id = r.campaign_id
        WHERE r.member_id OPERATOR(pg_catalog.=) coupon_offer.member
          AND r.reference OPERATOR(pg_catalog.=) coupon_offer.reference
          AND (r.status = 'captured' OR (r.status = 'held' AND r.expires_at > now()));
    END IF;

    IF v_reason IS NULL THEN
        CASE c.offer
        WHEN 'percent_off' THEN v_discount := round(v_eligible * c.value / 100, 2);
        WHEN 'amount_off' THEN v_discount := LEAST(c.value, v_eligible);
        WHEN 'free_item' THEN v_discount := c.value;
        WHEN 'bonus_points' THEN v_points := c.value;
        ELSE
            -- the base points of the eligible amount, multiplied: the points beyond them
            v_points := v_eligible * p.earn_rate * (c.value - 1);
            v_points := CASE p.rounding WHEN 'floor' THEN floor(v_points) WHEN 'ceil' THEN ceil(v_points)
                                        WHEN 'trunc' THEN trunc(v_points) ELSE round(v_points) END;
        END CASE;
        v_cost := CASE WHEN c.offer IN ('bonus_points', 'points_multiplier') THEN v_points ELSE v_discount END;

        -- the program's ceiling on what the coupons of one order give (points at their value)
        IF p.max_coupon_share IS NOT NULL THEN
            SELECT coalesce(sum(r.discount + r.points * p.point_value), 0) INTO v_order_cost
            FROM loyalty.coupon_redemptions r
            WHERE coupon_offer.reference IS NOT NULL AND r.member_id OPERATOR(pg_catalog.=) coupon_offer.member
              AND r.reference OPERATOR(pg_catalog.=) coupon_offer.reference
              AND (r.status = 'captured' OR (r.status = 'held' AND r.expires_at > now()));
            IF v_order_cost + v_discount + v_points * p.point_value
               > p.max_coupon_share * coalesce(amount, v_eligible) THEN
                v_reason := 'order_ceiling';
            END IF;
        END IF;

        -- the limits, over what is held (and not expired) or captured, by
        -- the member or by the members merged into it (whose uses stay with
        -- their orders)
        SELECT count(*) INTO v_uses FROM loyalty.coupon_redemptions r
        WHERE r.member_id OPERATOR(pg_catalog.=) ANY (coupon_offer.member
                  OPERATOR(pg_catalog.||) ARRAY(SELECT m.member_id FROM loyalty.members m
                                                WHERE m.merged_into OPERATOR(pg_catalog.=) coupon_offer.member))
          AND r.campaign_id OPERATOR(pg_catalog.=) c.campaign_id
          AND (r.status = 'captured' OR (r.status = 'held' AND r.expires_at > now()));
        v_reason := CASE
            WHEN v_reason IS NOT NULL THEN v_reason
            WHEN k.max_uses IS NOT NULL AND k.uses >= k.max_uses THEN 'used_up'
            WHEN c.uses_per_member IS NOT NULL AND v_uses >= c.uses_per_member THEN 'member_limit'
            WHEN c.max_uses IS NOT NULL AND c.uses >= c.max_uses THEN 'campaign_limit'
            WHEN c.budget IS NOT NULL AND c.spent + v_cost > c.budget THEN 'budget_exhausted'
        END;
    END IF;
    RETURN jsonb_build_object('valid', v_reason IS NULL, 'reason', v_reason, 'code', k.code,
                              'campaign_id', c.campaign_id, 'campaign', c.name, 'offer', c.offer,
                              'eligible_amount', v_eligible,
                              'discount', CASE WHEN v_reason IS NULL THEN v_discount END,
                              'points', CASE WHEN v_reason IS NULL THEN v_points END,
                              'free_item', CASE WHEN v_reason IS NULL AND c.offer = 'free_item' THEN c.item END,
                              'combinable', c.combinable);
END $$;
