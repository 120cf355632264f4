CREATE FUNCTION loyalty.create_earning_rule(
    program bigint, name text, effect text,
    multiplier anycompatible DEFAULT NULL, bonus_points loyalty.points DEFAULT NULL,
    stacking text DEFAULT NULL, priority integer DEFAULT 100, stop boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    weekdays integer[] DEFAULT NULL, hour_from integer DEFAULT NULL, hour_to integer DEFAULT NULL,
    channels text[] DEFAULT NULL, stores text[] DEFAULT NULL,
    categories text[] DEFAULT NULL, products text[] DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, segments text[] DEFAULT NULL,
    birthday text DEFAULT NULL, first_purchase boolean DEFAULT false, min_amount anycompatible DEFAULT NULL,
    member_attributes jsonb DEFAULT NULL, plans text[] DEFAULT NULL,
    tags text[] DEFAULT NULL, risk_bands text[] DEFAULT NULL, apply_tags text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    -- the multiplier and amount as numeric, whatever a driver sent (ints,
    -- floats, decimals)
    v_multiplier numeric := multiplier::numeric;
    v_min numeric := min_amount::numeric;
    -- tags are kept in lower case (tag_member)
    v_tags text[] := (SELECT array_agg(lower(btrim(t.tag))) FROM unnest(create_earning_rule.tags) t(tag));
    v_apply text[] := (SELECT array_agg(lower(btrim(t.tag))) FROM unnest(create_earning_rule.apply_tags) t(tag));
BEGIN
    PERFORM loyalty.require_program(create_earning_rule.program);
    IF program IS NULL OR name IS NULL OR effect IS NULL THEN
        RAISE EXCEPTION 'program, name and effect must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF effect NOT IN ('multiply', 'bonus') THEN
        RAISE EXCEPTION 'unknown rule effect "%"', effect USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use multiply (with multiplier) or bonus (with bonus_points).';
    END IF;
    IF effect = 'multiply' AND (v_multiplier IS NULL OR bonus_points IS NOT NULL) THEN
        RAISE EXCEPTION 'a multiply rule needs a multiplier and no bonus_points' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND (bonus_points IS NULL OR v_multiplier IS NOT NULL OR bonus_points::bigint <= 0) THEN
        RAISE EXCEPTION 'a bonus rule needs positive bonus_points and no multiplier' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_multiplier IS NOT NULL AND (v_multiplier = 'NaN' OR v_multiplier < 0 OR v_multiplier >= 1000) THEN
        RAISE EXCEPTION 'multiplier must be between 0 and 1000, got %', v_multiplier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_min IS NOT NULL AND (v_min = 'NaN' OR v_min < 0 OR v_min = 'Infinity') THEN
        RAISE EXCEPTION 'min_amount must be a finite amount of at least 0, got %', v_min USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND coalesce(stacking, 'add') = 'multiply' THEN
        RAISE EXCEPTION 'a bonus stacks by add or best_of, not multiply' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF risk_bands IS NOT NULL AND NOT risk_bands <@ ARRAY['low', 'medium', 'high'] THEN
        RAISE EXCEPTION 'risk_bands may hold low, medium and high, not %', risk_bands
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(v_tags || v_apply) t(tag)
                                    WHERE t.tag IS NULL OR NOT loyalty.valid_tag(t.tag)) THEN
        RAISE EXCEPTION 'a tag is 1 to 63 letters, digits, and _ . : - (not first), not %', coalesce(tags, apply_tags)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    BEGIN
        INSERT INTO loyalty.earning_rules (program_id, name, effect, multiplier, bonus_points, stacking, priority,
            stop, valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores, categories, products,
            min_tier, segments, birthday, first_purchase, min_amount, member_attributes, plans, tags, risk_bands, apply_tags)
        VALUES (program, name, effect, v_multiplier, bonus_points,
            coalesce(stacking, CASE WHEN effect OPERATOR(pg_catalog.=) 'bonus' THEN 'add' ELSE 'multiply' END), coalesce(priority, 100),
            coalesce(stop, false), valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores,
            categories, products, min_tier, segments, birthday, coalesce(first_purchase, false), v_min,
            member_attributes, plans, v_tags, risk_bands, v_apply)
        RETURNING rule_id INTO v_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a rule named "%"', program, name
                USING ERRCODE = 'unique_violation';
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid earning rule "%": %', name, SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Check stacking, weekdays (1..7), hours (0..24, from < to), the validity window, birthday (day or month), member_attributes (a JSON object).';
    END;
    RETURN v_id;
END $$;
