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
