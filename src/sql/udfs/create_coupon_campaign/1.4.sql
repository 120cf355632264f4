CREATE FUNCTION loyalty.create_coupon_campaign(
    program bigint, name text, offer text, value anycompatible,
    code text DEFAULT NULL, item text DEFAULT NULL, min_basket anycompatible DEFAULT 0::numeric,
    categories text[] DEFAULT NULL, products text[] DEFAULT NULL, channels text[] DEFAULT NULL,
    valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    min_tier_rank integer DEFAULT NULL, segments text[] DEFAULT NULL,
    uses_per_code integer DEFAULT NULL, uses_per_member integer DEFAULT NULL, max_uses bigint DEFAULT NULL,
    budget anycompatible DEFAULT NULL, combinable boolean DEFAULT false, hold_ttl interval DEFAULT '30 minutes',
    tags text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_code text := upper(regexp_replace(create_coupon_campaign.code, '[\s-]', '', 'g'));
    v_tags text[];
    -- the amounts as numeric, whatever a driver sent (ints, floats, decimals)
    v_value numeric := value::numeric;
    v_min numeric := min_basket::numeric;
    v_budget numeric := budget::numeric;
BEGIN
    -- (computed first: Citus takes no subquery in an INSERT's VALUES)
    SELECT array_agg(lower(btrim(t))) INTO v_tags FROM unnest(create_coupon_campaign.tags) t;
    PERFORM loyalty.require_program(create_coupon_campaign.program);
    IF program IS NULL OR name IS NULL OR offer IS NULL OR value IS NULL OR min_basket IS NULL
       OR combinable IS NULL OR hold_ttl IS NULL THEN
        RAISE EXCEPTION 'program, name, offer, value, min_basket, combinable and hold_ttl must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF EXISTS (SELECT FROM unnest(coalesce(categories, '{}') || coalesce(products, '{}') || coalesce(channels, '{}')
                                  || coalesce(segments, '{}')) x WHERE x IS NULL OR btrim(x) = '') THEN
        RAISE EXCEPTION 'categories, products, channels and segments must not hold NULL or empty names'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF offer = 'bonus_points' AND v_value <> trunc(v_value) THEN
        RAISE EXCEPTION 'bonus points are whole points, not %', value USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_code = '' OR v_code !~ '^[0-9A-Z]+$' THEN
        RAISE EXCEPTION 'a public code is letters and digits, not "%"', code USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Spaces and hyphens are ignored; the code is kept in capitals.';
    END IF;
    BEGIN
        INSERT INTO loyalty.coupon_campaigns AS c (program_id, name, offer, value, item, min_basket, categories, products,
            channels, valid_from, valid_until, min_tier_rank, segments, uses_per_code, uses_per_member, max_uses,
            budget, combinable, hold_ttl, tags)
        VALUES (program, name, offer, v_value, item, v_min, categories, products, channels, valid_from,
                valid_until, min_tier_rank, segments, uses_per_code, uses_per_member, max_uses, v_budget, combinable,
                hold_ttl, v_tags)
        RETURNING c.campaign_id INTO v_id;
        IF v_code IS NOT NULL THEN
            INSERT INTO loyalty.coupon_codes (program_id, code, campaign_id, max_uses)
            VALUES (program, v_code, v_id, uses_per_code);
        END IF;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid coupon campaign: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'offer is percent_off (value 0-100], amount_off, free_item (with item), bonus_points or points_multiplier (value > 1); limits are positive.';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % has a campaign named "%" or a code "%" already', program, name, v_code
                USING ERRCODE = 'unique_violation';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
    RETURN v_id;
END $$;
