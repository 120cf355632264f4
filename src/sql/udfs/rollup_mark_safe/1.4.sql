CREATE FUNCTION loyalty.rollup_mark_safe(vxids text[], snap pg_snapshot, marked_at timestamptz)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- every transaction running when the mark was taken has ended: those with
    -- a virtual transaction id (any session, before or after it took an xid),
    -- those with an xid (a transaction prepared before the mark), and none
    -- has been prepared since (it may have been running without an xid)
    -- (nor those of sessions that cannot write these rows: autovacuum, whose
    -- analyze takes an xid, and other databases' sessions)
    SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_locks k
                       WHERE k.locktype OPERATOR(pg_catalog.=) 'virtualxid'
                         AND k.virtualxid OPERATOR(pg_catalog.=) ANY (vxids))
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_snapshot_xip(snap) x
                       WHERE NOT pg_catalog.pg_visible_in_snapshot(x, pg_catalog.pg_current_snapshot())
                         AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                                         WHERE a.backend_xid OPERATOR(pg_catalog.=) x::xid
                                           AND NOT loyalty.rollup_may_write(a.datid, a.backend_type::text)))
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_prepared_xacts t
                       WHERE t.prepared OPERATOR(pg_catalog.>=) marked_at)
$$;
