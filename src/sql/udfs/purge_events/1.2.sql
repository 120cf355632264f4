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
