CREATE FUNCTION loyalty.start_household(owner bigint, name text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a loyalty.accounts;
    v_id bigint;
BEGIN
    IF owner IS NULL THEN
        RAISE EXCEPTION 'owner must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) start_household.owner FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', owner USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(a.program_id);
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'member % is %', owner, a.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF EXISTS (SELECT FROM loyalty.household_members m WHERE m.member_id OPERATOR(pg_catalog.=) start_household.owner
               AND m.left_at IS NULL) THEN
        RAISE EXCEPTION 'member % is in a household already', owner USING ERRCODE = 'LY060',
            HINT = 'A member is in at most one household; leave it first.';
    END IF;
    INSERT INTO loyalty.households (program_id, name, owner)
    VALUES (a.program_id, start_household.name, start_household.owner)
    RETURNING household_id INTO v_id;
    INSERT INTO loyalty.household_members (member_id, household_id, program_id, role)
    VALUES (owner, v_id, a.program_id, 'owner');
    -- programs that pool a share of earnings give each household its pool
    IF (SELECT p.household_pool_share FROM loyalty.programs p
        WHERE p.program_id OPERATOR(pg_catalog.=) a.program_id) IS NOT NULL THEN
        PERFORM loyalty.household_open_pool(v_id);
    END IF;
    RETURN v_id;
END $$;
