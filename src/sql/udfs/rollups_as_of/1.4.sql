CREATE FUNCTION loyalty.rollups_as_of(program bigint)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
-- SECURITY DEFINER: readers of the views may not read the rollups' state;
-- search_path pinned
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.require_program(program);
    PERFORM FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) rollups_as_of.program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    -- one watermark for every program: the ledger is read in its own order
    RETURN (SELECT s.as_of FROM loyalty.rollup_state s);
END $$;
