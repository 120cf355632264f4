-- ---------------------------------------------------------------------------
-- Partitioning and retention of the ledger (issue 8, one node).
-- ---------------------------------------------------------------------------
-- loyalty.partition_ledger() turns the ledger into a table RANGE-partitioned
-- on created_at (recording time, set by the database: a row's partition is
-- known when it is written and never changes), keeping its rows, identity,
-- indexes, triggers, grants, row-level security, comments, the views and
-- functions built on it, and its extension membership.  The primary key
-- becomes (member_id, entry_id, created_at): a key must contain the partition
-- key; entry_id still comes from one sequence, so it stays unique.
--
-- loyalty.create_ledger_partitions() creates partitions ahead of time (daily
-- from pg_cron); a DEFAULT partition catches any row no partition covers, so
-- an insert never fails.  loyalty.archive_ledger() retires whole old
-- partitions: per member, one carry_forward entry (dated at the horizon)
-- holds what the archived entries summed to, so balances, held points and
-- every sum from the horizon on are unchanged.
--
-- What is not partitioned: lots, allocations and holds are working state
-- (open lots are few per member, and closed ones are read by reversals of
-- later entries); idempotency keys and delivered events only need deleting
-- once old (loyalty.purge_idempotency_keys, loyalty.purge_events).
--
-- Dumps: partitions are ordinary tables (not extension members), so pg_dump
-- writes their definition and rows; the partitioned parent is a member.  A
-- restore creates the extension (with a plain ledger) before the partitions,
-- so two event triggers finish the job: the first CREATE TABLE of a ledger
-- partition converts the (still empty) ledger, and the first ALTER INDEX
-- (attaching the partitions' indexes to the parent's) creates the parent's
-- indexes, which must not exist while the dump attaches its partitions.

-- Internal: statements a restore still owes the partitioned ledger.
CREATE TABLE loyalty.ledger_pending_ddl (
    seq     integer PRIMARY KEY,
    ddl     text NOT NULL
);
COMMENT ON TABLE loyalty.ledger_pending_ddl IS 'Internal: index definitions of the partitioned ledger still to create during a restore (empty otherwise)';

-- Internal: the start of the partition period holding t.  Periods are whole
-- months (from January 2000) or whole days (from Monday 3 January 2000), in
-- UTC, so partitions of '1 month', '3 months', '1 year', '1 day' or '7 days'
-- start where one expects.
CREATE FUNCTION loyalty.ledger_period_start(t timestamptz, period interval)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_months integer := (pg_catalog.date_part('year', period) * 12 + pg_catalog.date_part('month', period))::integer;
    v_days integer := pg_catalog.date_part('day', period)::integer;
    v_utc timestamp := t AT TIME ZONE 'UTC';
    v_k bigint;
BEGIN
    IF v_months > 0 THEN
        v_k := (pg_catalog.date_part('year', v_utc)::integer - 2000) * 12 + pg_catalog.date_part('month', v_utc)::integer - 1;
        v_k := pg_catalog.floor(v_k::numeric / v_months)::bigint * v_months;
        RETURN ('2000-01-01'::timestamp + pg_catalog.make_interval(months => v_k::integer)) AT TIME ZONE 'UTC';
    END IF;
    v_k := pg_catalog.floor(pg_catalog.date_part('epoch', v_utc - '2000-01-03'::timestamp)::numeric / 86400)::bigint;
    v_k := pg_catalog.floor(v_k::numeric / v_days)::bigint * v_days;
    RETURN ('2000-01-03'::timestamp + pg_catalog.make_interval(days => v_k::integer)) AT TIME ZONE 'UTC';
END $$;
COMMENT ON FUNCTION loyalty.ledger_period_start(timestamptz, interval) IS
    'Internal: start (UTC-aligned) of the ledger partition period that holds a time';

-- Internal: the partitions of the ledger and their bounds.
CREATE FUNCTION loyalty.ledger_partitions()
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz, is_default boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::regclass,
           (regexp_match(b.bound, 'FROM \(''([^'']*)''\)'))[1]::timestamptz,
           (regexp_match(b.bound, 'TO \(''([^'']*)''\)'))[1]::timestamptz,
           b.bound = 'DEFAULT'
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound) b
    WHERE i.inhparent = 'loyalty.ledger'::regclass
    ORDER BY 4, 2
$$;
COMMENT ON FUNCTION loyalty.ledger_partitions() IS
    'The partitions of loyalty.ledger with their created_at bounds (lower inclusive, upper exclusive); the DEFAULT partition last';

-- Internal: what every ledger partition carries besides the parent's cloned
-- row triggers: the TRUNCATE refusal (statement triggers are not cloned) and
-- the parent's row-level security, for whoever is ever given the partition.
CREATE FUNCTION loyalty.ledger_partition_setup(part regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pol record;
BEGIN
    EXECUTE format('CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.ledger_refuse_change()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', part);
    FOR v_pol IN SELECT p.policyname, p.permissive, p.roles, p.cmd, p.qual, p.with_check
                 FROM pg_catalog.pg_policies p
                 WHERE p.schemaname = 'loyalty' AND p.tablename = 'ledger' LOOP
        EXECUTE format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', v_pol.policyname, part,
                       v_pol.permissive, v_pol.cmd,
                       (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ')
                        FROM unnest(v_pol.roles) r),
                       CASE WHEN v_pol.qual IS NOT NULL THEN ' USING (' || v_pol.qual || ')' ELSE '' END,
                       CASE WHEN v_pol.with_check IS NOT NULL THEN ' WITH CHECK (' || v_pol.with_check || ')' ELSE '' END);
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.ledger_partition_setup(regclass) IS
    'Internal: give a new ledger partition the TRUNCATE refusal and the parent''s row-level security';

-- Internal: create and attach one partition [start, stop) (or the DEFAULT
-- one when start is NULL).  Created apart and attached, which locks the
-- parent only in SHARE UPDATE EXCLUSIVE mode (writers go on).  Rows the
-- DEFAULT partition holds for the new range move into it first.  Returns
-- false when a partition already covers part of the range.
CREATE FUNCTION loyalty.ledger_add_partition(start timestamptz, stop timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text := CASE WHEN start IS NULL THEN 'ledger_default'
                        ELSE 'ledger_p' || to_char(start AT TIME ZONE 'UTC', 'YYYYMMDD') END;
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
        -- the rows move as they are (ids, times); the detached DEFAULT
        -- partition has lost the parent's append-only triggers meanwhile
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_cols
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = 'loyalty.ledger'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
        EXECUTE format('ALTER TABLE loyalty.ledger DETACH PARTITION %s', v_default);
        EXECUTE format('INSERT INTO loyalty.%I (%s) SELECT %s FROM %s WHERE created_at >= %L AND created_at < %L',
                       v_name, v_cols, v_cols, v_default, start, stop);
        EXECUTE format('DELETE FROM %s WHERE created_at >= %L AND created_at < %L', v_default, start, stop);
    END IF;
    EXECUTE format('ALTER TABLE loyalty.ledger ATTACH PARTITION loyalty.%I FOR VALUES FROM (%L) TO (%L)',
                   v_name, start, stop);
    IF v_moved THEN
        EXECUTE format('ALTER TABLE loyalty.ledger ATTACH PARTITION %s DEFAULT', v_default);
    END IF;
    RETURN true;
END $$;
COMMENT ON FUNCTION loyalty.ledger_add_partition(timestamptz, timestamptz) IS
    'Internal: create and attach one ledger partition (NULL start: the DEFAULT one), moving rows the DEFAULT partition holds for its range';

-- Internal: replace the plain ledger by a partitioned one.  restore: during a
-- restore (called by the event trigger below): no data, no partitions, and
-- the parent's indexes are left to ledger_restore_indexes().
CREATE FUNCTION loyalty.ledger_convert(period interval, ahead integer, restore boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old oid := 'loyalty.ledger'::regclass;
    v_ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'loyalty');
    v_seq regclass := pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id')::regclass;
    v_seq_name text;
    v_in_config boolean;
    v_last bigint;
    v_called boolean;
    v_pk text;
    v_indexes text[];
    v_triggers text[];
    v_views record;
    v_view_defs text[] := '{}';
    v_funcs text[] := '{}';
    v_func_sigs text[] := '{}';
    v_func_comments text[] := '{}';
    v_f record;
    v_acl record;
    v_pol record;
    v_comment text;
    v_sql text;
    v_rls boolean;
    v_force boolean;
    v_start timestamptz;
    v_stop timestamptz;
    v_rows bigint := 0;
    v_i integer;
BEGIN
    LOCK TABLE loyalty.ledger IN ACCESS EXCLUSIVE MODE;
    SELECT c.relrowsecurity, c.relforcerowsecurity, pg_catalog.obj_description(c.oid, 'pg_class')
    INTO v_rls, v_force, v_comment
    FROM pg_catalog.pg_class c WHERE c.oid = v_old;
    SELECT s.relname INTO v_seq_name FROM pg_catalog.pg_class s WHERE s.oid = v_seq;
    SELECT v_old = ANY (e.extconfig) INTO v_in_config FROM pg_catalog.pg_extension e WHERE e.oid = v_ext;
    EXECUTE format('SELECT last_value, is_called FROM %s', v_seq) INTO v_last, v_called;

    -- everything that names the table by OID, read while it is still
    -- called loyalty.ledger: indexes, triggers, views, functions of its type
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n) INTO v_pk
    FROM pg_catalog.pg_index i
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = v_old AND i.indisprimary;
    IF v_pk !~ '(^|, )created_at(,|$)' THEN
        v_pk := v_pk || ', created_at';
    END IF;
    SELECT coalesce(array_agg(pg_catalog.pg_get_indexdef(i.indexrelid) ORDER BY i.indexrelid), '{}') INTO v_indexes
    FROM pg_catalog.pg_index i WHERE i.indrelid = v_old AND NOT i.indisprimary;
    SELECT coalesce(array_agg(pg_catalog.pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}') INTO v_triggers
    FROM pg_catalog.pg_trigger t WHERE t.tgrelid = v_old AND NOT t.tgisinternal;
    FOR v_views IN
        SELECT DISTINCT r.ev_class, c.reloptions
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
        JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = v_old AND r.ev_class <> v_old
        ORDER BY r.ev_class
    LOOP
        v_view_defs := v_view_defs || format('CREATE OR REPLACE VIEW %s%s AS %s', v_views.ev_class::regclass,
            CASE WHEN v_views.reloptions IS NOT NULL
                 THEN ' WITH (' || array_to_string(v_views.reloptions, ', ') || ')' ELSE '' END,
            pg_catalog.pg_get_viewdef(v_views.ev_class));
    END LOOP;
    FOR v_f IN
        SELECT DISTINCT p.oid, p.proacl
        FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
        WHERE (d.refclassid = 'pg_type'::regclass AND d.refobjid IN (SELECT t.oid FROM pg_catalog.pg_type t
                                                                    WHERE t.typrelid = v_old
                                                                       OR t.typelem IN (SELECT t2.oid FROM pg_catalog.pg_type t2 WHERE t2.typrelid = v_old)))
           OR (d.refclassid = 'pg_class'::regclass AND d.refobjid = v_old)
        ORDER BY p.oid
    LOOP
        v_funcs := v_funcs || pg_catalog.pg_get_functiondef(v_f.oid);
        v_func_sigs := v_func_sigs || v_f.oid::regprocedure::text;
        v_func_comments := v_func_comments || pg_catalog.obj_description(v_f.oid, 'pg_proc');
    END LOOP;

    -- the old table steps aside, out of the extension
    EXECUTE 'ALTER TABLE loyalty.ledger RENAME TO ledger_unpartitioned';
    FOR v_f IN SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = v_old LOOP
        EXECUTE format('ALTER INDEX loyalty.%I RENAME TO %I', v_f.relname, v_f.relname || '_unpartitioned');
    END LOOP;
    EXECUTE format('ALTER SEQUENCE %s RENAME TO %I', v_seq, v_seq_name || '_unpartitioned');
    EXECUTE 'ALTER EXTENSION loyalty DROP TABLE loyalty.ledger_unpartitioned';
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = v_seq
               AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = v_ext AND d.deptype = 'e') THEN
        EXECUTE format('ALTER EXTENSION loyalty DROP SEQUENCE %s', v_seq);
    END IF;

    -- the partitioned table, with the same columns, identity, comments
    EXECUTE 'CREATE TABLE loyalty.ledger (LIKE loyalty.ledger_unpartitioned INCLUDING DEFAULTS INCLUDING IDENTITY'
            ' INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS)'
            ' PARTITION BY RANGE (created_at)';
    SELECT s.relname INTO v_sql FROM pg_catalog.pg_class s
    WHERE s.oid = pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id')::regclass;
    IF v_sql <> v_seq_name THEN
        EXECUTE format('ALTER SEQUENCE loyalty.%I RENAME TO %I', v_sql, v_seq_name);
    END IF;
    PERFORM pg_catalog.setval(format('loyalty.%I', v_seq_name)::regclass, v_last, v_called);
    EXECUTE format('COMMENT ON TABLE loyalty.ledger IS %L', v_comment);
    FOR v_acl IN SELECT a.grantee, a.privilege_type, a.is_grantable
                 FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
                 WHERE c.oid = v_old AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON loyalty.ledger TO %s%s', v_acl.privilege_type,
                       CASE WHEN v_acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(v_acl.grantee)) END,
                       CASE WHEN v_acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    IF v_rls THEN
        EXECUTE 'ALTER TABLE loyalty.ledger ENABLE ROW LEVEL SECURITY';
    END IF;
    IF v_force THEN
        EXECUTE 'ALTER TABLE loyalty.ledger FORCE ROW LEVEL SECURITY';
    END IF;
    FOR v_pol IN SELECT p.policyname, p.permissive, p.roles, p.cmd, p.qual, p.with_check
                 FROM pg_catalog.pg_policies p
                 WHERE p.schemaname = 'loyalty' AND p.tablename = 'ledger_unpartitioned' LOOP
        EXECUTE format('CREATE POLICY %I ON loyalty.ledger AS %s FOR %s TO %s%s%s', v_pol.policyname,
                       v_pol.permissive, v_pol.cmd,
                       (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ')
                        FROM unnest(v_pol.roles) r),
                       CASE WHEN v_pol.qual IS NOT NULL THEN ' USING (' || v_pol.qual || ')' ELSE '' END,
                       CASE WHEN v_pol.with_check IS NOT NULL THEN ' WITH CHECK (' || v_pol.with_check || ')' ELSE '' END);
    END LOOP;
    EXECUTE 'ALTER EXTENSION loyalty ADD TABLE loyalty.ledger';
    EXECUTE format('ALTER EXTENSION loyalty ADD SEQUENCE loyalty.%I', v_seq_name);
    IF v_in_config THEN
        -- as pg_extension_config_dump() would (it works only in the
        -- extension's script): the rows are dumped from the partitions, the
        -- sequence's position from here
        UPDATE pg_catalog.pg_extension e
        SET extconfig = e.extconfig || ARRAY['loyalty.ledger'::regclass::oid, format('loyalty.%I', v_seq_name)::regclass::oid],
            extcondition = e.extcondition || ARRAY['', '']
        WHERE e.oid = v_ext;
    END IF;

    IF restore THEN
        -- the dump attaches partitions that bring their own indexes: the
        -- parent's are created (ONLY) when the dump attaches those
        v_i := 0;
        INSERT INTO loyalty.ledger_pending_ddl
        VALUES (0, format('ALTER TABLE ONLY loyalty.ledger ADD CONSTRAINT ledger_pkey PRIMARY KEY (%s)', v_pk));
        FOREACH v_sql IN ARRAY v_indexes LOOP
            v_i := v_i + 1;
            INSERT INTO loyalty.ledger_pending_ddl
            VALUES (v_i, replace(v_sql, ' ON loyalty.ledger USING ', ' ON ONLY loyalty.ledger USING '));
        END LOOP;
    ELSE
        -- partitions for the rows there are and `ahead` periods to come
        SELECT loyalty.ledger_period_start(coalesce(min(l.created_at), now()), period) INTO v_start
        FROM loyalty.ledger_unpartitioned l;
        PERFORM loyalty.ledger_add_partition(NULL, NULL);
        v_stop := ((loyalty.ledger_period_start(now(), period) AT TIME ZONE 'UTC') + period * (ahead + 1)) AT TIME ZONE 'UTC';
        WHILE v_start < v_stop LOOP
            PERFORM loyalty.ledger_add_partition(v_start, ((v_start AT TIME ZONE 'UTC') + period) AT TIME ZONE 'UTC');
            v_start := ((v_start AT TIME ZONE 'UTC') + period) AT TIME ZONE 'UTC';
        END LOOP;
        INSERT INTO loyalty.ledger OVERRIDING SYSTEM VALUE SELECT * FROM loyalty.ledger_unpartitioned;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        -- indexes after the rows: one sorted build per partition
        EXECUTE format('ALTER TABLE loyalty.ledger ADD CONSTRAINT ledger_pkey PRIMARY KEY (%s)', v_pk);
        FOREACH v_sql IN ARRAY v_indexes LOOP
            EXECUTE v_sql;
        END LOOP;
    END IF;
    FOREACH v_sql IN ARRAY v_triggers LOOP
        EXECUTE v_sql;
    END LOOP;

    -- views and functions follow the new table
    FOREACH v_sql IN ARRAY v_view_defs LOOP
        EXECUTE v_sql;
    END LOOP;
    FOR v_i IN 1 .. coalesce(array_length(v_funcs, 1), 0) LOOP
        SELECT p.oid, p.proacl, p.proowner, EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                          AND d.refobjid = v_ext AND d.deptype = 'e') AS member
        INTO v_f FROM pg_catalog.pg_proc p WHERE p.oid = v_func_sigs[v_i]::regprocedure;
        IF v_f.member THEN
            EXECUTE format('ALTER EXTENSION loyalty DROP FUNCTION %s', v_func_sigs[v_i]);
        END IF;
        EXECUTE format('DROP FUNCTION %s', v_func_sigs[v_i]);
        EXECUTE v_funcs[v_i];
        EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_func_sigs[v_i], v_func_comments[v_i]);
        IF v_f.proacl IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_func_sigs[v_i]);
            FOR v_acl IN SELECT a.grantee, a.is_grantable FROM aclexplode(v_f.proacl) a
                         WHERE a.grantee <> v_f.proowner LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', v_func_sigs[v_i],
                               CASE WHEN v_acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(v_acl.grantee)) END,
                               CASE WHEN v_acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END IF;
        IF v_f.member THEN
            EXECUTE format('ALTER EXTENSION loyalty ADD FUNCTION %s', v_func_sigs[v_i]);
        END IF;
    END LOOP;

    EXECUTE 'DROP TABLE loyalty.ledger_unpartitioned';
    IF NOT restore THEN
        ANALYZE loyalty.ledger;
    END IF;
    RETURN v_rows;
END $$;
COMMENT ON FUNCTION loyalty.ledger_convert(interval, integer, boolean) IS
    'Internal: replace the plain ledger by a partitioned one with the same rows, identity, indexes, triggers, grants, policies, dependent views and functions';

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
COMMENT ON FUNCTION loyalty.partition_ledger(interval, integer) IS
    'Convert loyalty.ledger (with its rows) into a table partitioned by created_at in periods of whole months or days, with partitions for the existing rows, ahead periods to come and a DEFAULT partition; locks the ledger for the whole conversion; returns the rows moved';

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
COMMENT ON FUNCTION loyalty.create_ledger_partitions(integer, timestamptz) IS
    'Create the ledger partitions missing from the current period (or from since, moving rows out of the DEFAULT partition) to ahead periods to come, and the DEFAULT partition; idempotent, for a daily pg_cron job; returns the partitions created';

CREATE FUNCTION loyalty.archive_ledger(before timestamptz, archive_schema text DEFAULT 'loyalty_archive')
RETURNS TABLE (archived text, entries bigint, carried_members bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parts regclass[];
    v_horizon timestamptz;
    v_default regclass;
    v_union text;
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

    -- per member, one entry that carries what the archived ones summed to
    SELECT string_agg(format('SELECT member_id, program_id, points, held_delta FROM %s', p), ' UNION ALL ')
    INTO v_union FROM unnest(v_parts) p;
    EXECUTE format($q$
        INSERT INTO loyalty.ledger (member_id, program_id, kind, points, held_delta, reason, actor,
                                    created_at, occurred_at, details)
        SELECT x.member_id, x.program_id, 'carry_forward',
               pg_catalog.sum(x.points::bigint)::bigint::loyalty.points,
               pg_catalog.sum(x.held_delta::bigint)::bigint::loyalty.points,
               'entries before the archive horizon', session_user, %1$L, %1$L,
               pg_catalog.jsonb_build_object('archived_entries', count(*), 'archived_before', %1$L::timestamptz)
        FROM (%2$s) x
        GROUP BY x.member_id, x.program_id$q$, v_horizon, v_union);

    IF archive_schema IS NOT NULL THEN
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', archive_schema);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO loyalty_admin', archive_schema);
        -- lots and allocations leave with their entries (plain copies: no
        -- generated column, no index; read them with the archived partitions)
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.lots (LIKE loyalty.lots)', archive_schema);
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.allocations (LIKE loyalty.allocations)', archive_schema);
        EXECUTE format('GRANT SELECT ON %I.lots, %I.allocations TO loyalty_admin', archive_schema, archive_schema);
    END IF;

    -- Lots and allocations grow with the ledger: the allocations of archived
    -- debits go, then the closed lots credited before the horizon that no
    -- remaining allocation names (a later debit may still be refunded into
    -- an old lot: that lot stays).  Every old lot is closed (checked above),
    -- so balances and sum(lots) do not move.
    SELECT string_agg(format('SELECT member_id, entry_id FROM %s', p), ' UNION ALL ')
    INTO v_union FROM unnest(v_parts) p;
    EXECUTE format($q$
        WITH gone AS (
            DELETE FROM loyalty.allocations a USING (%s) x
            WHERE a.member_id OPERATOR(pg_catalog.=) x.member_id AND a.entry_id OPERATOR(pg_catalog.=) x.entry_id
            RETURNING a.*)%s
        SELECT count(*) FROM gone$q$,
        v_union,
        CASE WHEN archive_schema IS NULL THEN ''
             ELSE format(', kept AS (INSERT INTO %I.allocations SELECT * FROM gone)', archive_schema) END)
    INTO v_allocs;
    EXECUTE format($q$
        WITH gone AS (
            DELETE FROM loyalty.lots l
            WHERE l.created_at OPERATOR(pg_catalog.<) %L AND NOT l.is_open
              AND NOT EXISTS (SELECT 1 FROM loyalty.allocations a
                              WHERE a.member_id OPERATOR(pg_catalog.=) l.member_id
                                AND a.lot_id OPERATOR(pg_catalog.=) l.lot_id)
            RETURNING l.*)%s
        SELECT count(*) FROM gone$q$,
        v_horizon,
        CASE WHEN archive_schema IS NULL THEN ''
             ELSE format(', kept AS (INSERT INTO %I.lots SELECT * FROM gone)', archive_schema) END)
    INTO v_lots;

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
COMMENT ON FUNCTION loyalty.archive_ledger(timestamptz, text) IS
    'Retire the ledger partitions that end at or before a time: one carry_forward entry per member keeps balances and held points, then the partitions are detached into archive_schema (NULL: dropped), and with them the allocations of archived debits and the closed old lots no later debit names (archive_schema.lots and .allocations); one row per partition, then one for lots and one for allocations (entries = rows moved); refused while an open lot, active hold, tier window or DEFAULT-partition row needs them';

CREATE FUNCTION loyalty.purge_idempotency_keys(older_than interval DEFAULT interval '90 days')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '1 day' THEN
        RAISE EXCEPTION 'idempotency keys must be kept at least one day, not %', older_than
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM loyalty.idempotency_keys k WHERE k.created_at < now() - older_than;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.purge_idempotency_keys(interval) IS
    'Delete idempotency keys older than older_than (at least a day): a replay after that is a new call; returns the keys deleted';

CREATE FUNCTION loyalty.purge_events(older_than interval DEFAULT interval '30 days')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'invalid age %', older_than USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM loyalty.events e WHERE e.acked_at IS NOT NULL AND e.acked_at < now() - older_than;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.purge_events(interval) IS
    'Delete outbox events acknowledged more than older_than ago (pending ones stay); returns the events deleted';

-- Restore of a partitioned ledger (see the top of this file).  SECURITY
-- DEFINER: they fire for every user's DDL and read the extension's tables.
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
    FOR v_cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
        IF v_cmd.object_type = 'table' AND v_cmd.schema_name = 'loyalty'
           AND v_cmd.object_identity ~ '^loyalty\.ledger_(p[0-9]{8}|default)$' THEN
            IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('loyalty.ledger')) = 'r'
               AND NOT (SELECT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = v_cmd.objid)
               AND NOT EXISTS (SELECT 1 FROM loyalty.ledger) THEN
                PERFORM loyalty.ledger_convert(NULL, NULL, true);
                RETURN;
            END IF;
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.ledger_restore_convert() IS
    'Internal event trigger: when a restore creates a ledger partition while loyalty.ledger is still the plain, empty table of CREATE EXTENSION, partition it';

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
    IF NOT EXISTS (SELECT 1 FROM loyalty.ledger_pending_ddl) THEN
        RETURN;
    END IF;
    -- pg_restore -j attaches partition indexes from several sessions at once:
    -- the first runs the pending statements, the others wait here and then
    -- find them done (each ALTER INDEX commits on its own)
    LOCK TABLE loyalty.ledger_pending_ddl IN SHARE ROW EXCLUSIVE MODE;
    FOR v_ddl IN SELECT d.seq, d.ddl FROM loyalty.ledger_pending_ddl d ORDER BY d.seq LOOP
        EXECUTE v_ddl.ddl;
        DELETE FROM loyalty.ledger_pending_ddl d WHERE d.seq = v_ddl.seq;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.ledger_restore_indexes() IS
    'Internal event trigger: before a restore attaches the ledger partitions'' indexes, create the partitioned ledger''s own';

CREATE EVENT TRIGGER loyalty_ledger_restore_convert ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION loyalty.ledger_restore_convert();
CREATE EVENT TRIGGER loyalty_ledger_restore_indexes ON ddl_command_start
    WHEN TAG IN ('ALTER INDEX')
    EXECUTE FUNCTION loyalty.ledger_restore_indexes();

-- Administrators only.
REVOKE ALL ON FUNCTION
    loyalty.ledger_period_start(timestamptz, interval),
    loyalty.ledger_partitions(),
    loyalty.ledger_partition_setup(regclass),
    loyalty.ledger_add_partition(timestamptz, timestamptz),
    loyalty.ledger_convert(interval, integer, boolean),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval),
    loyalty.ledger_restore_convert(),
    loyalty.ledger_restore_indexes()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.ledger_partitions(),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval)
TO loyalty_admin;
