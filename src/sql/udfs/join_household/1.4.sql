CREATE FUNCTION loyalty.join_household(member bigint, household bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_role text;
BEGIN
    IF member IS NULL OR household IS NULL THEN
        RAISE EXCEPTION 'member and household must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.household_lock(household);
    SELECT i.role INTO v_role FROM loyalty.household_invitations i
    WHERE i.member_id OPERATOR(pg_catalog.=) join_household.member
      AND i.household_id OPERATOR(pg_catalog.=) join_household.household AND i.expires_at > now();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % has no open invitation to household %', member, household USING ERRCODE = 'LY060',
            HINT = 'The household''s owner invites with loyalty.invite_to_household(); an invitation is open 14 days.';
    END IF;
    PERFORM loyalty.add_household_member(household, member, v_role);
    DELETE FROM loyalty.household_invitations i
    WHERE i.member_id OPERATOR(pg_catalog.=) join_household.member
      AND i.household_id OPERATOR(pg_catalog.=) join_household.household;
    RETURN v_role;
END $$;
