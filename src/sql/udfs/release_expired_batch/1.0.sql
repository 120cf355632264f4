CREATE FUNCTION loyalty.release_expired_batch(batch_size integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
BEGIN
    FOR v_member IN
        SELECT DISTINCT h.member_id FROM loyalty.holds h
        WHERE h.status OPERATOR(pg_catalog.=) 'active' AND h.expires_at OPERATOR(pg_catalog.<=) now()
        LIMIT batch_size
    LOOP
        v_n := v_n OPERATOR(pg_catalog.+) loyalty.release_expired(v_member);
    END LOOP;
    RETURN v_n;
END $$;
