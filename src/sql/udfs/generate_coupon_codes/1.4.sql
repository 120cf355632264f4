CREATE FUNCTION loyalty.generate_coupon_codes(campaign bigint, count integer, prefix text DEFAULT '',
                                              length integer DEFAULT 8)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c loyalty.coupon_campaigns;
    c_alphabet CONSTANT text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    v_prefix text := upper(coalesce(prefix, ''));
    v_have bigint;
    v_made integer := 0;
    v_bytes bytea;
    v_body text;
    v_code text;
    v_tries integer := 0;
BEGIN
    IF campaign IS NULL OR count IS NULL OR length IS NULL THEN
        RAISE EXCEPTION 'campaign, count and length must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO c FROM loyalty.coupon_campaigns x WHERE x.campaign_id OPERATOR(pg_catalog.=) generate_coupon_codes.campaign
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'coupon campaign % does not exist', campaign USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(c.program_id);
    IF count NOT BETWEEN 1 AND 1000000 OR length NOT BETWEEN 4 AND 30 THEN
        RAISE EXCEPTION 'count must lie in 1..1,000,000 and length in 4..30' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_prefix !~ '^[0-9A-HJKMNP-TV-Z]*$' OR pg_catalog.length(v_prefix) > 20 THEN
        RAISE EXCEPTION 'the prefix "%" must be at most 20 characters of Crockford''s base 32 (no I, L, O, U)', prefix
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT pg_catalog.count(*) INTO v_have FROM loyalty.coupon_codes x
    WHERE x.campaign_id OPERATOR(pg_catalog.=) c.campaign_id;
    -- codes must not be guessable: at most one in 100,000 of the possible codes is used
    IF (32::numeric ^ length) < (v_have + count) * 100000::numeric THEN
        RAISE EXCEPTION 'too few possible codes: % of length % leave one in % guessable', v_have + count, length,
            floor((32::numeric ^ length) / (v_have + count)) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Make the codes longer.';
    END IF;
    WHILE v_made < count LOOP
        v_tries := v_tries + 1;
        IF v_tries > count * 10 + 100 THEN
            RAISE EXCEPTION 'could not find % new codes', count USING ERRCODE = 'internal_error';
        END IF;
        -- strong random bytes (gen_random_uuid), without the UUID's version byte
        v_bytes := '\x'::bytea;
        WHILE pg_catalog.length(v_bytes) < length LOOP
            v_bytes := v_bytes || substr(uuid_send(gen_random_uuid()), 1, 6) || substr(uuid_send(gen_random_uuid()), 8, 9);
        END LOOP;
        v_body := '';
        FOR i IN 0 .. length - 1 LOOP
            v_body := v_body || substr(c_alphabet, get_byte(v_bytes, i) % 32 + 1, 1);
        END LOOP;
        v_code := v_prefix || v_body;
        v_code := v_code || loyalty.coupon_check_char(v_code);
        INSERT INTO loyalty.coupon_codes (program_id, code, campaign_id, max_uses)
        VALUES (c.program_id, v_code, c.campaign_id, coalesce(c.uses_per_code, 1))
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            v_made := v_made + 1;
            RETURN NEXT v_code;
        END IF;
    END LOOP;
END $$;
