CREATE FUNCTION loyalty.leave_household(member bigint, household bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_household bigint := household;
    v_role text;
BEGIN
    IF member IS NULL THEN
        RAISE EXCEPTION 'member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_household IS NULL THEN
        SELECT m.household_id INTO v_household FROM loyalty.household_members m
        WHERE m.member_id OPERATOR(pg_catalog.=) leave_household.member AND m.left_at IS NULL;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'member % is in no household', member USING ERRCODE = 'LY060';
        END IF;
    END IF;
    PERFORM loyalty.household_lock(v_household);
    PERFORM FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) leave_household.member FOR NO KEY UPDATE;
    SELECT m.role INTO v_role FROM loyalty.household_members m
    WHERE m.member_id OPERATOR(pg_catalog.=) leave_household.member
      AND m.household_id OPERATOR(pg_catalog.=) v_household AND m.left_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % is not in household %', member, v_household USING ERRCODE = 'LY060';
    END IF;
    IF v_role = 'owner' THEN
        RAISE EXCEPTION 'the owner cannot leave household %', v_household USING ERRCODE = 'LY060',
            HINT = 'Name a successor with loyalty.change_household_owner(), or dissolve it with loyalty.dissolve_household().';
    END IF;
    -- points stay with who earned them: nothing of the books moves
    UPDATE loyalty.household_members m SET left_at = now()
    WHERE m.member_id OPERATOR(pg_catalog.=) leave_household.member
      AND m.household_id OPERATOR(pg_catalog.=) v_household AND m.left_at IS NULL;
END $$;
