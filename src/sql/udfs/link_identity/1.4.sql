CREATE FUNCTION loyalty.link_identity(member bigint, channel text, external_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_owner bigint;
BEGIN
    PERFORM loyalty.require_member(link_identity.member);
    IF member IS NULL OR channel IS NULL OR external_id IS NULL THEN
        RAISE EXCEPTION 'member, channel and external_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.check_identity(channel, external_id);
    SELECT m.program_id INTO v_program FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) link_identity.member AND m.status OPERATOR(pg_catalog.<>) 'closed';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist or is closed', member USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.identities (program_id, channel, external_id, member_id)
    VALUES (v_program, channel, external_id, member)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    SELECT i.member_id INTO STRICT v_owner FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) v_program
      AND i.channel OPERATOR(pg_catalog.=) link_identity.channel
      AND i.external_id OPERATOR(pg_catalog.=) link_identity.external_id;
    IF v_owner OPERATOR(pg_catalog.=) member THEN
        RETURN false;
    END IF;
    RAISE EXCEPTION 'identity %:% already belongs to member %', channel, external_id, v_owner
        USING ERRCODE = 'unique_violation',
              HINT = 'If both members are the same person, merge them with loyalty.merge_members().';
END $$;
