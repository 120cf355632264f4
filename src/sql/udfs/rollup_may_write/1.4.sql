CREATE FUNCTION loyalty.rollup_may_write(db oid, backend text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- whether a session (pg_stat_activity's datid and backend_type; NULL:
    -- unknown, so it may) could write this database's ledger, members or
    -- account changes: not autovacuum, not a session of another database
    SELECT coalesce(backend, '') OPERATOR(pg_catalog.<>) ALL (ARRAY['autovacuum worker', 'autovacuum launcher'])
       AND (db IS NULL
            OR db OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()))
$$;
