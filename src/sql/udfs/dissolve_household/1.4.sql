CREATE FUNCTION loyalty.dissolve_household(household bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h loyalty.households;
    v_n integer;
BEGIN
    h := loyalty.household_lock(household);
    -- a pool is split among the members or returned, by the program's policy,
    -- while they are still members; their own points stay with them
    IF h.pool_member IS NOT NULL THEN
        PERFORM loyalty.household_close(h.household_id, 'household ' OPERATOR(pg_catalog.||) h.household_id
                                        OPERATOR(pg_catalog.||) ' dissolved');
    END IF;
    UPDATE loyalty.household_members m SET left_at = now()
    WHERE m.household_id OPERATOR(pg_catalog.=) h.household_id AND m.left_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    UPDATE loyalty.households x SET dissolved_at = now() WHERE x.household_id OPERATOR(pg_catalog.=) h.household_id;
    RETURN v_n;
END $$;
