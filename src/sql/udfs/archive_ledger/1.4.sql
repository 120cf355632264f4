CREATE FUNCTION loyalty.archive_ledger(before timestamptz, archive_schema text DEFAULT 'loyalty_archive')
RETURNS TABLE (archived text, entries bigint, carried_members bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parts regclass[];
    v_horizon timestamptz;
    v_default regclass;
    v_n bigint;
    v_at timestamptz;
    v_months integer;
    v_p regclass;
    v_name text;
    v_lots bigint;
    v_allocs bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'loyalty.ledger'::regclass) <> 'p' THEN
        RAISE EXCEPTION 'loyalty.ledger is not partitioned'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Partition it first with loyalty.partition_ledger().';
    END IF;
    IF before IS NULL OR before > now() THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: not a past time', before USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF archive_schema IS NOT NULL AND (archive_schema = '' OR archive_schema = ANY (ARRAY['loyalty', 'pg_catalog', 'public'])) THEN
        RAISE EXCEPTION 'invalid archive schema "%"', archive_schema
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Name a schema of its own, or NULL to drop the archived partitions.';
    END IF;
    SELECT array_agg(p.partition ORDER BY p.lower_bound), max(p.upper_bound) INTO v_parts, v_horizon
    FROM loyalty.ledger_partitions() p WHERE NOT p.is_default AND p.upper_bound <= before;
    IF v_parts IS NULL THEN
        RETURN;
    END IF;
    SELECT p.partition INTO v_default FROM loyalty.ledger_partitions() p WHERE p.is_default;

    -- no more writes into what is archived (a transaction that started
    -- before the horizon may still write there: it is waited for)
    FOREACH v_p IN ARRAY v_parts LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_p);
    END LOOP;

    -- what must stay: the entries of open lots (a refund reverses them), of
    -- active holds (a capture completes them), the tier qualification
    -- window, and rows the DEFAULT partition holds from before the horizon
    SELECT count(*), min(l.created_at) INTO v_n, v_at FROM loyalty.lots l
    WHERE l.is_open AND l.created_at < v_horizon;
    IF v_n > 0 THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: % lots credited before it are still open', v_horizon, v_n
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The oldest open lot was credited at %s; its entry must stay for refunds.', v_at),
                  HINT = 'Archive before an earlier time, or wait until those points are spent or expire.';
    END IF;
    SELECT count(*), min(h.created_at) INTO v_n, v_at FROM loyalty.holds h
    WHERE h.status = 'active' AND h.created_at < v_horizon;
    IF v_n > 0 THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: % holds placed before it are still active', v_horizon, v_n
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Resolve the holds first (loyalty.release_expired_batch()), or archive before an earlier time.';
    END IF;
    SELECT max(p.tier_window_months) INTO v_months FROM loyalty.programs p;
    IF v_horizon > now() - pg_catalog.make_interval(months => coalesce(v_months, 0)) THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: tiers qualify on the last % months of it', v_horizon, v_months
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Archive only entries older than the longest tier window (loyalty.programs.tier_window_months).';
    END IF;
    IF v_default IS NOT NULL THEN
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_default);
        EXECUTE format('SELECT count(*) FROM %s WHERE created_at < %L', v_default, v_horizon) INTO v_n;
        IF v_n > 0 THEN
            RAISE EXCEPTION 'cannot archive the ledger before %: the DEFAULT partition holds % entries from before it', v_horizon, v_n
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Give them partitions first: loyalty.create_ledger_partitions(since => <their oldest created_at>).';
        END IF;
    END IF;

    IF archive_schema IS NOT NULL THEN
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', archive_schema);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO loyalty_admin', archive_schema);
        -- lots and allocations leave with their entries (plain copies: no
        -- generated column, no index; read them with the archived partitions)
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.lots (LIKE loyalty.lots)', archive_schema);
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.allocations (LIKE loyalty.allocations)', archive_schema);
        EXECUTE format('GRANT SELECT ON %I.lots, %I.allocations TO loyalty_admin', archive_schema, archive_schema);
    END IF;

    -- per member one carry_forward entry with what the archived entries
    -- summed to; the archived debits' allocations and the closed old lots no
    -- allocation names leave with them (the C write path: balances and
    -- sum(lots) do not move, every old lot being closed, checked above)
    SELECT b.lots, b.allocations INTO v_lots, v_allocs
    FROM loyalty.archive_books(v_parts, v_horizon, archive_schema) b;

    FOREACH v_p IN ARRAY v_parts LOOP
        SELECT c.relname INTO v_name FROM pg_catalog.pg_class c WHERE c.oid = v_p;
        EXECUTE format('SELECT count(*) FROM %s', v_p) INTO v_n;
        archived := CASE WHEN archive_schema IS NULL THEN v_p::text || ' (dropped)'
                         ELSE format('%I.%I', archive_schema, v_name) END;
        entries := v_n;
        EXECUTE format('SELECT count(DISTINCT member_id) FROM %s', v_p) INTO carried_members;
        EXECUTE format('ALTER TABLE loyalty.ledger DETACH PARTITION %s', v_p);
        IF archive_schema IS NULL THEN
            EXECUTE format('DROP TABLE %s', v_p);
        ELSE
            EXECUTE format('ALTER TABLE %s SET SCHEMA %I', v_p, archive_schema);
            -- archived entries stay immutable
            EXECUTE format('CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON %I.%I'
                           ' FOR EACH ROW EXECUTE FUNCTION loyalty.ledger_refuse_change()', archive_schema, v_name);
            EXECUTE format('GRANT SELECT ON %I.%I TO loyalty_admin', archive_schema, v_name);
        END IF;
        RETURN NEXT;
    END LOOP;
    archived := CASE WHEN archive_schema IS NULL THEN 'loyalty.lots (deleted)' ELSE format('%I.lots', archive_schema) END;
    entries := v_lots;
    carried_members := NULL;
    RETURN NEXT;
    archived := CASE WHEN archive_schema IS NULL THEN 'loyalty.allocations (deleted)' ELSE format('%I.allocations', archive_schema) END;
    entries := v_allocs;
    RETURN NEXT;
    UPDATE loyalty.ledger_partitioning p SET archived_before = v_horizon;
END $$;
