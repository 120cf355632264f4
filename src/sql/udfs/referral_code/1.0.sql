CREATE FUNCTION loyalty.referral_code(member bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_code text;
    -- no 0/O, 1/I/L: codes are read aloud and typed by hand
    c_alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
BEGIN
    SELECT a.program_id INTO v_program FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.code INTO v_code FROM loyalty.referral_codes c WHERE c.member_id = member ORDER BY c.created_at LIMIT 1;
    IF FOUND THEN
        RETURN v_code;
    END IF;
    LOOP
        SELECT string_agg(substr(c_alphabet, 1 + floor(random() * length(c_alphabet))::integer, 1), '')
        INTO v_code FROM generate_series(1, 8);
        BEGIN
            INSERT INTO loyalty.referral_codes (member_id, code, program_id) VALUES (member, v_code, v_program);
            RETURN v_code;
        EXCEPTION WHEN unique_violation THEN
            NULL;           -- another member's code: draw again
        END;
    END LOOP;
END $$;
