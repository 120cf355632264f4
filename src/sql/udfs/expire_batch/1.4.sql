CREATE FUNCTION loyalty.expire_batch(as_of timestamptz, batch_size integer)
RETURNS TABLE (members bigint, points bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
    v_pts bigint := 0;
BEGIN
    -- Members whose expiry bound has come: each is expired (or, when the bound
    -- was only a lower one, has it raised), so the next batch moves on.
    FOR v_member IN
        SELECT a.member_id FROM loyalty.accounts a
        WHERE a.next_expiry_at OPERATOR(pg_catalog.<=) as_of
        ORDER BY a.next_expiry_at
        LIMIT batch_size
    LOOP
        v_pts := v_pts OPERATOR(pg_catalog.+) loyalty.expire_member(v_member, as_of)::bigint;
        v_n := v_n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN QUERY SELECT v_n, v_pts;
END $$;
