CREATE FUNCTION loyalty.export_member(member bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_doc jsonb;
    v_rows jsonb;
    t record;
BEGIN
    IF member IS NULL THEN
        RAISE EXCEPTION 'member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT m.program_id INTO v_program FROM loyalty.members m WHERE m.member_id OPERATOR(pg_catalog.=) export_member.member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(v_program);
    v_doc := jsonb_build_object('member_id', member, 'exported_at', now(),
        'program', (SELECT jsonb_build_object('program_id', p.program_id, 'name', p.name)
                    FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) v_program));
    -- every table of the extension that holds rows of the member, by name:
    -- a table added later is exported without a change here
    FOR t IN
        SELECT c.oid::regclass AS tab, c.relname
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
        WHERE c.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[]) AND NOT c.relispartition
          AND a.attname OPERATOR(pg_catalog.=) 'member_id' AND NOT a.attisdropped
        ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(x)), ''[]'') FROM %s x WHERE x.member_id OPERATOR(pg_catalog.=) $1',
                       t.tab)
            INTO v_rows USING member;
        v_doc := v_doc || jsonb_build_object(t.relname, v_rows);
    END LOOP;
    RETURN v_doc;
END $$;
