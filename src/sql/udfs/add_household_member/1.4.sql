CREATE FUNCTION loyalty.add_household_member(household bigint, member bigint, role text DEFAULT 'adult')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h loyalty.households;
    a loyalty.accounts;
    v_max integer;
BEGIN
    IF member IS NULL OR role IS NULL THEN
        RAISE EXCEPTION 'member and role must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF role NOT IN ('adult', 'child') THEN
        RAISE EXCEPTION 'unknown household role "%"', role USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Members join as adult or child; loyalty.change_household_owner() names the owner.';
    END IF;
    h := loyalty.household_lock(household);
    SELECT * INTO a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) add_household_member.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF a.program_id OPERATOR(pg_catalog.<>) h.program_id THEN
        RAISE EXCEPTION 'member % belongs to another program than household %', member, household
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'member % is %', member, a.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF EXISTS (SELECT FROM loyalty.household_members m WHERE m.member_id OPERATOR(pg_catalog.=) add_household_member.member
               AND m.left_at IS NULL) THEN
        RAISE EXCEPTION 'member % is in a household already', member USING ERRCODE = 'LY060',
            HINT = 'A member is in at most one household; leave it first.';
    END IF;
    SELECT coalesce((SELECT r.max_members FROM loyalty.household_rules r WHERE r.program_id OPERATOR(pg_catalog.=) h.program_id), 6)
    INTO v_max;
    IF (SELECT count(*) FROM loyalty.household_members m WHERE m.household_id OPERATOR(pg_catalog.=) add_household_member.household
        AND m.left_at IS NULL) >= v_max THEN
        RAISE EXCEPTION 'household % is full (% members)', household, v_max USING ERRCODE = 'LY060';
    END IF;
    INSERT INTO loyalty.household_members (member_id, household_id, program_id, role)
    VALUES (member, household, h.program_id, role);
END $$;
