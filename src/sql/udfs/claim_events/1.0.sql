CREATE FUNCTION loyalty.claim_events(max_events integer DEFAULT 100, consumer text DEFAULT NULL,
                                     visibility interval DEFAULT interval '5 minutes')
RETURNS SETOF loyalty.events
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- pending events, oldest first; a claim not acknowledged within
    -- `visibility` is handed out again (at-least-once delivery)
    WITH c AS (
        SELECT e.member_id, e.event_id FROM loyalty.events e
        WHERE e.acked_at IS NULL
          AND (e.claimed_at IS NULL OR e.claimed_at < now() - coalesce($3, interval '5 minutes'))
        ORDER BY e.created_at, e.event_id
        LIMIT greatest(coalesce($1, 100), 0)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE loyalty.events e SET claimed_at = now(), claimed_by = coalesce($2, session_user::text)
    FROM c WHERE e.member_id = c.member_id AND e.event_id = c.event_id
    RETURNING e.*
$$;
