CREATE FUNCTION loyalty.ledger_partition_added()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ledger regclass;
    v_part regclass;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        RETURN;                 -- see loyalty.ledger_restore_convert()
    END IF;
    v_ledger := pg_catalog.to_regclass('loyalty.ledger');
    -- only a command that can have added a partition: an ALTER TABLE of the
    -- ledger (ATTACH PARTITION) or the creation of a table as one of its
    -- partitions (CREATE TABLE ... PARTITION OF)
    IF v_ledger IS NULL OR NOT EXISTS (
           SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() c
           WHERE c.object_type = 'table'
             AND (c.objid = v_ledger
                  OR (c.command_tag = 'CREATE TABLE'
                      AND v_ledger = ANY (ARRAY(SELECT pg_catalog.pg_partition_ancestors(c.objid)))))) THEN
        RETURN;
    END IF;
    -- a restore in progress: the dump gives each partition its own trigger
    -- and policies later (post-data)
    IF EXISTS (SELECT 1 FROM loyalty.ledger_pending_ddl) THEN
        RETURN;
    END IF;
    FOR v_part IN
        SELECT t.relid FROM pg_catalog.pg_partition_tree(v_ledger) t
        WHERE t.isleaf AND t.level > 0
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                          WHERE g.tgrelid = t.relid AND g.tgname = 'ledger_no_truncate')
    LOOP
        PERFORM loyalty.ledger_partition_setup(v_part);
    END LOOP;
END $$;
