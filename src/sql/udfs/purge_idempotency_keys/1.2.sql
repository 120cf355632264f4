CREATE FUNCTION loyalty.purge_idempotency_keys(older_than interval DEFAULT interval '90 days')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '1 day' THEN
        RAISE EXCEPTION 'idempotency keys must be kept at least one day, not %', older_than
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM loyalty.idempotency_keys k WHERE k.created_at < now() - older_than;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;
