CREATE FUNCTION loyalty.untag_member(member bigint, tag text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF member IS NULL OR tag IS NULL THEN
        RAISE EXCEPTION 'member and tag must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) untag_member.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_member(member);
    DELETE FROM loyalty.member_tags t
    WHERE t.member_id OPERATOR(pg_catalog.=) untag_member.member AND t.tag OPERATOR(pg_catalog.=) lower(btrim(untag_member.tag));
    RETURN FOUND;
END $$;
