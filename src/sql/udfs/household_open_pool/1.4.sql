CREATE FUNCTION loyalty.household_open_pool(household bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h loyalty.households;
    v_pool bigint;
BEGIN
    SELECT * INTO h FROM loyalty.households x WHERE x.household_id OPERATOR(pg_catalog.=) household_open_pool.household
    FOR NO KEY UPDATE;
    IF h.pool_member IS NOT NULL OR h.dissolved_at IS NOT NULL THEN
        RETURN h.pool_member;
    END IF;
    -- an account that no person owns: status pool, refused by every call for members
    INSERT INTO loyalty.members (program_id, status, joined_at, source_channel)
    VALUES (h.program_id, 'pool', now(), 'household')
    RETURNING member_id INTO v_pool;
    PERFORM loyalty.open_account(v_pool, h.program_id);
    UPDATE loyalty.accounts a SET status = 'pool' WHERE a.member_id OPERATOR(pg_catalog.=) v_pool;
    UPDATE loyalty.households x SET pool_member = v_pool WHERE x.household_id OPERATOR(pg_catalog.=) h.household_id;
    RETURN v_pool;
END $$;
