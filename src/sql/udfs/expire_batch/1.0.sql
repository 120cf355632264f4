CREATE FUNCTION loyalty.expire_batch(as_of timestamptz, batch_size integer)
RETURNS TABLE (members bigint, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
    v_pts bigint := 0;
BEGIN
    FOR v_member IN
        SELECT DISTINCT l.member_id FROM loyalty.lots l
        WHERE l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
          AND l.expires_at IS NOT NULL AND l.expires_at OPERATOR(pg_catalog.<=) as_of
        LIMIT batch_size
    LOOP
        v_pts := v_pts OPERATOR(pg_catalog.+) loyalty.expire_member(v_member, as_of)::bigint;
        v_n := v_n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN QUERY SELECT v_n, v_pts::loyalty.points;
END $$;
