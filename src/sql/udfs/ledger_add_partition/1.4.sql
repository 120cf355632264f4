CREATE FUNCTION loyalty.ledger_add_partition(start timestamptz, stop timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text := CASE WHEN start IS NULL THEN 'ledger_default'
                        ELSE loyalty.ledger_partition_name(start, stop) END;
    v_default regclass;
    v_cols text;
    v_moved boolean := false;
BEGIN
    IF start IS NULL THEN
        IF EXISTS (SELECT 1 FROM loyalty.ledger_partitions() p WHERE p.is_default) THEN
            RETURN false;
        END IF;
    ELSIF EXISTS (SELECT 1 FROM loyalty.ledger_partitions() p
                  WHERE NOT p.is_default AND p.lower_bound < stop AND p.upper_bound > start) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE loyalty.%I (LIKE loyalty.ledger INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING STORAGE INCLUDING COMPRESSION)', v_name);
    PERFORM loyalty.ledger_partition_setup(format('loyalty.%I', v_name)::regclass);
    IF start IS NULL THEN
        EXECUTE format('ALTER TABLE loyalty.ledger ATTACH PARTITION loyalty.%I DEFAULT', v_name);
        RETURN true;
    END IF;

    SELECT p.partition INTO v_default FROM loyalty.ledger_partitions() p WHERE p.is_default;
    IF v_default IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE created_at >= %L AND created_at < %L)',
                       v_default, start, stop) INTO v_moved;
    END IF;
    IF v_moved THEN
        -- the rows move as they are (ids, times) while the DEFAULT partition
        -- stays attached (detached, its entries would have left the books):
        -- its copy of the append-only trigger steps aside for the delete, and
        -- the lock that takes keeps writers out of it until commit
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_cols
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = 'loyalty.ledger'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER ledger_append_only', v_default);
        EXECUTE format('INSERT INTO loyalty.%I (%s) SELECT %s FROM %s WHERE created_at >= %L AND created_at < %L',
                       v_name, v_cols, v_cols, v_default, start, stop);
        EXECUTE format('DELETE FROM %s WHERE created_at >= %L AND created_at < %L', v_default, start, stop);
        EXECUTE format('ALTER TABLE %s ENABLE TRIGGER ledger_append_only', v_default);
    END IF;
    EXECUTE format('ALTER TABLE loyalty.ledger ATTACH PARTITION loyalty.%I FOR VALUES FROM (%L) TO (%L)',
                   v_name, start, stop);
    RETURN true;
END $$;
