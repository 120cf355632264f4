CREATE FUNCTION loyalty.partition_ledger(period interval DEFAULT interval '1 month', ahead integer DEFAULT 3)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_months integer := (pg_catalog.date_part('year', period) * 12 + pg_catalog.date_part('month', period))::integer;
    v_days integer := pg_catalog.date_part('day', period)::integer;
    v_rows bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'loyalty.ledger'::regclass) = 'p' THEN
        RAISE EXCEPTION 'loyalty.ledger is already partitioned'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create partitions ahead with loyalty.create_ledger_partitions().';
    END IF;
    IF period IS NULL OR NOT ((v_months > 0 AND v_days = 0) OR (v_months = 0 AND v_days > 0))
       OR period <> pg_catalog.make_interval(months => v_months) + pg_catalog.make_interval(days => v_days) THEN
        RAISE EXCEPTION 'invalid partition period %', period
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use whole months (''1 month'', ''3 months'', ''1 year'') or whole days (''1 day'', ''7 days'').';
    END IF;
    IF ahead IS NULL OR ahead < 0 OR ahead > 120 THEN
        RAISE EXCEPTION 'ahead must be between 0 and 120 periods, not %', ahead USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_rows := loyalty.ledger_convert(period, ahead, false);
    DELETE FROM loyalty.ledger_partitioning;
    INSERT INTO loyalty.ledger_partitioning (period) VALUES (period);
    RETURN v_rows;
END $$;
