CREATE FUNCTION loyalty.create_ledger_partitions(ahead integer DEFAULT 3, since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_period interval;
    v_start timestamptz;
    v_stop timestamptz;
    v_next timestamptz;
    v_made integer := 0;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'loyalty.ledger'::regclass) <> 'p' THEN
        RAISE EXCEPTION 'loyalty.ledger is not partitioned'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Partition it first with loyalty.partition_ledger().';
    END IF;
    IF ahead IS NULL OR ahead < 0 OR ahead > 120 THEN
        RAISE EXCEPTION 'ahead must be between 0 and 120 periods, not %', ahead USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since > now() THEN
        RAISE EXCEPTION 'since (%) is in the future', since USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT p.period INTO v_period FROM loyalty.ledger_partitioning p;
    IF v_period IS NULL THEN
        RAISE EXCEPTION 'the partition period of loyalty.ledger is unknown'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'loyalty.ledger_partitioning has no row; insert the period the partitions use.';
    END IF;
    IF loyalty.ledger_add_partition(NULL, NULL) THEN
        v_made := v_made + 1;
    END IF;
    v_start := loyalty.ledger_period_start(coalesce(since, now()), v_period);
    v_stop := ((loyalty.ledger_period_start(now(), v_period) AT TIME ZONE 'UTC') + v_period * (ahead + 1)) AT TIME ZONE 'UTC';
    WHILE v_start < v_stop LOOP
        v_next := ((v_start AT TIME ZONE 'UTC') + v_period) AT TIME ZONE 'UTC';
        IF loyalty.ledger_add_partition(v_start, v_next) THEN
            v_made := v_made + 1;
        END IF;
        v_start := v_next;
    END LOOP;
    RETURN v_made;
END $$;
