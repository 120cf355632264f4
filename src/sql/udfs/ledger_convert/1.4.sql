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
    v_fkeys text[];
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
    -- foreign keys a DBA gave the ledger (a dump being restored brings its own)
    SELECT coalesce(array_agg(format('ALTER TABLE loyalty.ledger ADD CONSTRAINT %I %s', c.conname,
                                     pg_catalog.pg_get_constraintdef(c.oid)) ORDER BY c.conname), '{}')
    INTO v_fkeys
    FROM pg_catalog.pg_constraint c WHERE c.conrelid = v_old AND c.contype = 'f';
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
        FOREACH v_sql IN ARRAY v_fkeys LOOP
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
