CREATE FUNCTION loyalty.ledger_restore_indexes()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ddl record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        RETURN;                 -- see loyalty.ledger_restore_convert()
    END IF;
    FOR v_ddl IN SELECT d.seq, d.ddl FROM loyalty.ledger_pending_ddl d ORDER BY d.seq LOOP
        EXECUTE v_ddl.ddl;
        DELETE FROM loyalty.ledger_pending_ddl d WHERE d.seq = v_ddl.seq;
    END LOOP;
END $$;
