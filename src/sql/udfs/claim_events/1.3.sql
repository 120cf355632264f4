CREATE FUNCTION loyalty.claim_events(max_events integer DEFAULT 100, consumer text DEFAULT NULL,
                                     visibility interval DEFAULT interval '5 minutes')
RETURNS SETOF loyalty.events
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_want bigint := greatest(coalesce(max_events, 100), 0);
    v_by text := coalesce(consumer, session_user::text);
    -- a claim not acknowledged within `visibility` is handed out again
    -- (at-least-once delivery)
    v_before timestamptz := now() - coalesce(visibility, interval '5 minutes');
    v_citus boolean := false;
    v_got bigint := 0;
    v_n bigint;
    v_asked bigint;
    v_found bigint;
    v_members bigint[];
    v_events bigint[];
    v_last_at timestamptz;
    v_last_id bigint;
    v_member bigint;
    v_ids bigint[];
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
                                WHERE d.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.events''::pg_catalog.regclass)'
            INTO v_citus;
    END IF;
    IF NOT v_citus THEN
        -- pending events, oldest first, skipping those another consumer holds
        RETURN QUERY
        WITH c AS (
            SELECT e.member_id, e.event_id FROM loyalty.events e
            WHERE e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
            ORDER BY e.created_at, e.event_id
            LIMIT v_want
            FOR UPDATE SKIP LOCKED
        )
        UPDATE loyalty.events e SET claimed_at = now(), claimed_by = v_by
        FROM c WHERE e.member_id = c.member_id AND e.event_id = c.event_id
        RETURNING e.*;
        RETURN;
    END IF;
    -- On Citus (loyalty.events distributed by member) a locking query cannot
    -- span shards: the oldest pending events are listed across the shards
    -- (no lock), then claimed member by member, each a statement on one shard
    -- that locks its rows with SKIP LOCKED and re-checks that they are still
    -- pending; events another consumer holds or has just claimed are skipped,
    -- and the listing goes on after the last one listed until enough are
    -- claimed or none are left.
    WHILE v_got < v_want LOOP
        v_asked := v_want - v_got;
        SELECT pg_catalog.array_agg(c.member_id ORDER BY c.created_at, c.event_id),
               pg_catalog.array_agg(c.event_id ORDER BY c.created_at, c.event_id),
               pg_catalog.max(c.created_at), pg_catalog.count(*)
        INTO v_members, v_events, v_last_at, v_found
        FROM (SELECT e.member_id, e.event_id, e.created_at FROM loyalty.events e
              WHERE e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
                AND (v_last_at IS NULL OR (e.created_at, e.event_id) > (v_last_at, v_last_id))
              ORDER BY e.created_at, e.event_id
              LIMIT v_asked) c;
        EXIT WHEN v_found = 0;
        v_last_id := v_events[v_found];     -- the last listed: the newest (created_at is max(...))
        FOR v_member, v_ids IN
            SELECT u.m, pg_catalog.array_agg(u.e) FROM unnest(v_members, v_events) u(m, e) GROUP BY u.m
        LOOP
            RETURN QUERY
            WITH c AS (
                SELECT e.member_id, e.event_id FROM loyalty.events e
                WHERE e.member_id = v_member AND e.event_id = ANY (v_ids)
                  AND e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE loyalty.events e SET claimed_at = now(), claimed_by = v_by
            FROM c WHERE e.member_id = v_member AND e.member_id = c.member_id AND e.event_id = c.event_id
            RETURNING e.*;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_got := v_got + v_n;
        END LOOP;
        EXIT WHEN v_found < v_asked;
    END LOOP;
END $$;
