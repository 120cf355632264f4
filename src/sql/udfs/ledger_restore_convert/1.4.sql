CREATE FUNCTION loyalty.ledger_restore_convert()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cmd record;
BEGIN
    -- A Citus node creates shards of the ledger (never restored as
    -- partitions there), and a query of loyalty.ledger from a shard's DDL is
    -- refused: look at nothing but the command unless it names a partition.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        RETURN;
    END IF;
    -- a ledger partition's name: ledger_default, or pg_partman's
    -- ledger_pYYYY[_MM[_DD]], ledger_pYYYYwWW, ledger_pYYYYqQ (as the
    -- extension names them since 1.4), or ledger_pYYYYMMDD (before)
    FOR v_cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
        IF v_cmd.object_type = 'table' AND v_cmd.schema_name = 'loyalty'
           AND v_cmd.object_identity ~ '^loyalty\.ledger_(p[0-9]{4}([0-9]{4}|_[0-9]{2}(_[0-9]{2})?|w[0-9]{2}|q[1-4])?|default)$' THEN
            IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('loyalty.ledger')) = 'r'
               AND NOT (SELECT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = v_cmd.objid)
               AND NOT EXISTS (SELECT 1 FROM loyalty.ledger) THEN
                PERFORM loyalty.ledger_convert(NULL, NULL, true);
                RETURN;
            END IF;
        END IF;
    END LOOP;
END $$;
