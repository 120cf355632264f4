CREATE FUNCTION loyalty.tag_member(member bigint, tag text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a loyalty.accounts;
    v_tag text := lower(btrim(tag_member.tag));
BEGIN
    IF member IS NULL OR tag IS NULL THEN
        RAISE EXCEPTION 'member and tag must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT loyalty.valid_tag(v_tag) THEN
        RAISE EXCEPTION 'a tag is 1 to 63 letters, digits, and _ . : - (not first), not "%"', tag
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the member's lock, as every write of the member takes it
    SELECT * INTO a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) tag_member.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(a.program_id);
    IF a.status IN ('closed', 'pool') THEN
        RAISE EXCEPTION 'member % is %', member, a.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO loyalty.member_tags (member_id, tag, program_id) VALUES (member, v_tag, a.program_id)
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END $$;
