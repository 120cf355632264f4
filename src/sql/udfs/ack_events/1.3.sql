CREATE FUNCTION loyalty.ack_events(event_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    -- PL/pgSQL, not SQL: Citus cannot plan an SQL function's parameterised
    -- statement on a distributed table
    UPDATE loyalty.events e SET acked_at = now()
    WHERE e.event_id = ANY (ack_events.event_ids) AND e.acked_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;
