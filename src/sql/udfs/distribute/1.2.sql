CREATE FUNCTION loyalty.distribute(shard_count integer DEFAULT NULL)
RETURNS TABLE (step text, object text, detail text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    -- global lookups: distributed by their lookup key, not by member
    c_lookup CONSTANT text[] := ARRAY['identities', 'referral_codes'];
    c_lookup_col CONSTANT text[] := ARRAY['external_id', 'code'];
    v_fks text[] := '{}';
    v_fk_tables text[] := '{}';
    v_fk_names text[] := '{}';
    r record;
    i integer;
    v_kind char;
    v_col text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'loyalty.distribute() needs the Citus extension, which is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'On the coordinator: shared_preload_libraries = ''citus'', CREATE EXTENSION citus, '
                         'add the workers with citus_add_node(), then SELECT * FROM loyalty.distribute().';
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'loyalty.distribute() must run on the Citus coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator; register it with citus_set_coordinator_host() if needed.';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user,
            (SELECT c.relowner FROM pg_catalog.pg_class c
             WHERE c.oid OPERATOR(pg_catalog.=) 'loyalty.accounts'::regclass), 'USAGE') THEN
        RAISE EXCEPTION 'loyalty.distribute() must be run by the owner of the loyalty tables'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect as the role that ran CREATE EXTENSION loyalty (usually a superuser).';
    END IF;
    IF shard_count IS NOT NULL AND (shard_count < 1 OR shard_count > 64000) THEN
        RAISE EXCEPTION 'shard_count must be between 1 and 64000, got %', shard_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.logicalrelid
               WHERE c.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace) THEN
        RAISE EXCEPTION 'the loyalty tables are already Citus tables'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'loyalty.distribute() runs once per database; see pg_dist_partition.';
    END IF;

    -- Citus converts one table at a time and refuses foreign keys from local
    -- tables to converted ones, and converting a table needs sequential DDL
    -- when reference tables are created in the same transaction.
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);

    -- Each table's role, checked before anything changes: a per-member table
    -- must have member_id in every unique index (the design's rule); anything
    -- else with member_id must be a known global lookup.
    CREATE TEMP TABLE loyalty_dist_plan (relid oid PRIMARY KEY, relname text, kind char, col text) ON COMMIT DROP;
    FOR r IN
        SELECT c.oid, c.relname,
               EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
                       AND a.attname OPERATOR(pg_catalog.=) 'member_id' AND NOT a.attisdropped) AS has_member,
               (SELECT pg_catalog.string_agg(x.indexrelid::regclass::text, ', ')
                FROM pg_catalog.pg_index x
                WHERE x.indrelid OPERATOR(pg_catalog.=) c.oid AND x.indisunique
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                                  WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
                                    AND a.attname OPERATOR(pg_catalog.=) 'member_id'
                                    AND a.attnum OPERATOR(pg_catalog.=) ANY (x.indkey::int2[]))) AS bad_keys
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::char[])
          AND NOT c.relispartition
        ORDER BY c.relname
    LOOP
        i := pg_catalog.array_position(c_lookup, r.relname::text);
        IF i IS NOT NULL THEN
            v_kind := 'l';
            v_col := c_lookup_col[i];
        ELSIF NOT r.has_member THEN
            v_kind := 'r';
            v_col := NULL;
        ELSIF r.bad_keys IS NULL THEN
            v_kind := 'd';
            v_col := 'member_id';
        ELSE
            RAISE EXCEPTION 'table loyalty.% has member_id but unique keys without it (%)', r.relname, r.bad_keys
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'Per-member tables need member_id in every primary key and unique index to be distributed by member.';
        END IF;
        INSERT INTO loyalty_dist_plan VALUES (r.oid, r.relname, v_kind, v_col);
    END LOOP;

    -- 1. drop the foreign keys between loyalty tables, remembering them
    FOR r IN
        SELECT k.conname, k.conrelid::regclass::text AS tab, pg_catalog.pg_get_constraintdef(k.oid) AS def
        FROM pg_catalog.pg_constraint k
        JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) k.conrelid
        JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) k.confrelid
        WHERE k.contype OPERATOR(pg_catalog.=) 'f'
          AND s.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND t.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
        ORDER BY 2, 1
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', r.tab, r.conname);
        -- CREATE EXTENSION was propagated, so the workers' copies of the
        -- still-local tables have the key too, and re-adding it below is
        -- propagated to them (run_command_on_workers commits on its own:
        -- if this call fails later, the workers' copies simply lack the key
        -- until the next attempt adds it)
        PERFORM pg_catalog.run_command_on_workers(
            pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.tab, r.conname));
        v_fk_tables := v_fk_tables OPERATOR(pg_catalog.||) r.tab;
        v_fk_names := v_fk_names OPERATOR(pg_catalog.||) r.conname::text;
        v_fks := v_fks OPERATOR(pg_catalog.||) r.def;
        step := 'drop foreign key'; object := r.tab; detail := r.conname; RETURN NEXT;
    END LOOP;

    -- 2. reference tables (programs first: everything else points at it)
    FOR r IN SELECT p.relid, p.relname FROM loyalty_dist_plan p WHERE p.kind OPERATOR(pg_catalog.=) 'r'
             ORDER BY p.relname OPERATOR(pg_catalog.<>) 'programs', p.relname
    LOOP
        PERFORM pg_catalog.create_reference_table(r.relid::regclass);
        -- the rows were copied to the shards; the coordinator's own copy is dead
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(r.relid::regclass);
        step := 'reference table'; object := r.relid::regclass::text; detail := NULL; RETURN NEXT;
    END LOOP;

    -- 3. per-member tables by member_id, co-located with members
    PERFORM pg_catalog.create_distributed_table('loyalty.members'::regclass, 'member_id',
        colocate_with => 'none', shard_count => shard_count);
    step := 'distributed table'; object := 'loyalty.members'; detail := 'by member_id'; RETURN NEXT;
    FOR r IN SELECT p.relid FROM loyalty_dist_plan p
             WHERE p.kind OPERATOR(pg_catalog.=) 'd' AND p.relname OPERATOR(pg_catalog.<>) 'members'
             ORDER BY p.relname
    LOOP
        PERFORM pg_catalog.create_distributed_table(r.relid::regclass, 'member_id', colocate_with => 'loyalty.members');
        step := 'distributed table'; object := r.relid::regclass::text; detail := 'by member_id, co-located with loyalty.members'; RETURN NEXT;
    END LOOP;

    -- 4. the global lookups, by their lookup key, co-located with each other
    FOR r IN SELECT p.relid, p.col, pg_catalog.array_position(c_lookup, p.relname) AS n
             FROM loyalty_dist_plan p WHERE p.kind OPERATOR(pg_catalog.=) 'l' ORDER BY 3
    LOOP
        IF r.n OPERATOR(pg_catalog.=) 1 THEN
            PERFORM pg_catalog.create_distributed_table(r.relid::regclass, r.col,
                colocate_with => 'none', shard_count => shard_count);
        ELSE
            PERFORM pg_catalog.create_distributed_table(r.relid::regclass, r.col,
                colocate_with => 'loyalty.' OPERATOR(pg_catalog.||) c_lookup[1]);
        END IF;
        step := 'distributed table'; object := r.relid::regclass::text; detail := 'by ' OPERATOR(pg_catalog.||) r.col; RETURN NEXT;
    END LOOP;

    -- 5. the foreign keys again, where Citus can enforce them: to a reference
    --    table, or between co-located tables on member_id
    FOR i IN 1 .. pg_catalog.array_length(v_fks, 1) LOOP
        IF v_fk_tables[i] OPERATOR(pg_catalog.=) 'loyalty.identities' AND v_fks[i] OPERATOR(pg_catalog.~) 'REFERENCES loyalty\.members\M' THEN
            step := 'foreign key not re-added'; object := v_fk_tables[i];
            detail := v_fk_names[i] OPERATOR(pg_catalog.||) ' (identities are distributed by external_id, members by member_id)';
            RETURN NEXT;
            CONTINUE;
        END IF;
        EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_fk_tables[i], v_fk_names[i], v_fks[i]);
        step := 'foreign key'; object := v_fk_tables[i]; detail := v_fk_names[i]; RETURN NEXT;
    END LOOP;

    -- 6. identity columns on the workers: the tables' copies there came from
    --    CREATE EXTENSION, so their sequences all start at 1 and two workers
    --    would hand out the same entry, hold and event ids; Citus gives each
    --    node its own range (group id << 48) as it does for tables it creates
    FOR r IN
        SELECT DISTINCT c.oid::regclass::text AS tab
        FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
        WHERE c.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::char[])
          AND a.attidentity OPERATOR(pg_catalog.<>) '' AND NOT a.attisdropped
        ORDER BY 1
    LOOP
        SELECT pg_catalog.string_agg(w.nodename OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) w.nodeport
                                     OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) w.result, '; ')
        INTO v_col
        FROM pg_catalog.run_command_on_workers(pg_catalog.format(
            'SELECT pg_catalog.worker_adjust_identity_column_seq_ranges(%L::regclass)', r.tab)) w
        WHERE NOT w.success;
        IF v_col IS NOT NULL THEN
            RAISE EXCEPTION 'could not give the workers their own id range for %: %', r.tab, v_col
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        step := 'identity range on workers'; object := r.tab; detail := NULL; RETURN NEXT;
    END LOOP;

    -- 7. the member-first API, routed by its member argument
    FOR r IN
        SELECT p.oid::regprocedure AS f
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND p.prokind OPERATOR(pg_catalog.=) ANY (ARRAY['f', 'p']::char[])
          AND p.prosecdef
          AND p.pronargs OPERATOR(pg_catalog.>=) 1
          AND p.proargtypes[0] OPERATOR(pg_catalog.=) 'bigint'::regtype
          AND p.proargnames[1] OPERATOR(pg_catalog.=) ANY (ARRAY['member', 'new_member'])
          AND (pg_catalog.has_function_privilege('loyalty_app', p.oid, 'EXECUTE')
               OR pg_catalog.has_function_privilege('loyalty_admin', p.oid, 'EXECUTE'))
        ORDER BY p.oid::regprocedure::text
    LOOP
        PERFORM pg_catalog.create_distributed_function(r.f, '$1', colocate_with => 'loyalty.members');
        step := 'distributed function'; object := r.f::text; detail := 'by $1, co-located with loyalty.members'; RETURN NEXT;
    END LOOP;
    -- identity lookups run on the identity's worker
    FOR r IN SELECT unnest(ARRAY['loyalty.member_id(bigint, text, text)',
                                 'loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text)'])::regprocedure AS f
    LOOP
        PERFORM pg_catalog.create_distributed_function(r.f, '$3', colocate_with => 'loyalty.identities');
        step := 'distributed function'; object := r.f::text; detail := 'by $3 (external_id), co-located with loyalty.identities'; RETURN NEXT;
    END LOOP;
END $$;
