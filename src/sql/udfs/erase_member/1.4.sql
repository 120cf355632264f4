CREATE FUNCTION loyalty.erase_member(member bigint, reason text DEFAULT 'erasure requested')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m loyalty.members;
    v_points bigint := 0;
    v_household bigint;
    v_role text;
BEGIN
    IF member IS NULL OR reason IS NULL THEN
        RAISE EXCEPTION 'member and reason must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO m FROM loyalty.members x WHERE x.member_id OPERATOR(pg_catalog.=) erase_member.member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(m.program_id);
    IF m.erased_at IS NOT NULL THEN
        RETURN 0;                                   -- erased already: nothing left to do
    END IF;
    -- the books first, under the account's lock (a merged-away member's
    -- points are its survivor's: only its personal data goes)
    IF m.merged_into IS NULL THEN
        v_points := loyalty.forfeit_books(member, reason);
    ELSE
        PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) erase_member.member FOR NO KEY UPDATE;
    END IF;
    -- an erasure that committed while this one waited: done
    IF (SELECT x.erased_at FROM loyalty.members x WHERE x.member_id OPERATOR(pg_catalog.=) erase_member.member) IS NOT NULL THEN
        RETURN 0;
    END IF;
    -- out of its household (a household it owns is dissolved: the others keep their points)
    SELECT hm.household_id, hm.role INTO v_household, v_role FROM loyalty.household_members hm
    WHERE hm.member_id OPERATOR(pg_catalog.=) erase_member.member AND hm.left_at IS NULL;
    IF v_role = 'owner' THEN
        PERFORM loyalty.dissolve_household(v_household);
    ELSIF v_role IS NOT NULL THEN
        UPDATE loyalty.household_members hm SET left_at = now()
        WHERE hm.member_id OPERATOR(pg_catalog.=) erase_member.member AND hm.left_at IS NULL;
    END IF;
    DELETE FROM loyalty.identities i WHERE i.member_id OPERATOR(pg_catalog.=) erase_member.member;
    DELETE FROM loyalty.member_tags t WHERE t.member_id OPERATOR(pg_catalog.=) erase_member.member;
    UPDATE loyalty.survey_responses r SET comment = NULL, answers = NULL
    WHERE r.member_id OPERATOR(pg_catalog.=) erase_member.member;
    UPDATE loyalty.members x
    SET birthday = NULL, region = NULL, preferred_channel = NULL, consent = '{}', attributes = '{}',
        birthday_changed_at = NULL, erased_at = now()
    WHERE x.member_id OPERATOR(pg_catalog.=) erase_member.member;
    UPDATE loyalty.member_changes c SET old_value = NULL, new_value = NULL
    WHERE c.member_id OPERATOR(pg_catalog.=) erase_member.member
      AND (c.old_value IS NOT NULL OR c.new_value IS NOT NULL);
    INSERT INTO loyalty.member_changes (member_id, program_id, field, reason)
    VALUES (member, m.program_id, 'erased', reason);
    UPDATE loyalty.events e SET payload = e.payload OPERATOR(pg_catalog.-) ARRAY['external_id', 'birthday', 'region']
    WHERE e.member_id OPERATOR(pg_catalog.=) erase_member.member
      AND e.payload OPERATOR(pg_catalog.?|) ARRAY['external_id', 'birthday', 'region'];
    RETURN v_points;
END $$;
