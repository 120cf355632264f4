CREATE FUNCTION loyalty.ack_events(event_ids bigint[])
RETURNS bigint
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH a AS (
        UPDATE loyalty.events e SET acked_at = now()
        WHERE e.event_id = ANY ($1) AND e.acked_at IS NULL
        RETURNING 1
    )
    SELECT count(*) FROM a
$$;
