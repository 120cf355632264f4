CREATE FUNCTION loyalty.household_lock(household bigint)
RETURNS loyalty.households
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h loyalty.households;
BEGIN
    IF household IS NULL THEN
        RAISE EXCEPTION 'household must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the household first, then its members' accounts: the order of every
    -- call that changes a household or spends from it
    SELECT * INTO h FROM loyalty.households x WHERE x.household_id OPERATOR(pg_catalog.=) household_lock.household
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'household % does not exist', household USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(h.program_id);
    IF h.dissolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'household % was dissolved', household USING ERRCODE = 'LY060';
    END IF;
    RETURN h;
END $$;
