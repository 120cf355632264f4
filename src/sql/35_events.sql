-- ---------------------------------------------------------------------------
-- Lifecycle events: a transactional outbox plus NOTIFY.
-- ---------------------------------------------------------------------------
-- An event row is written by the same transaction as the fact it reports, so
-- a rolled-back sale emits nothing, and a NOTIFY on channel 'loyalty_events'
-- (delivered only at commit) wakes consumers, which then claim rows with
-- loyalty.claim_events() and acknowledge them with loyalty.ack_events().
--
-- Order: a member's events are written under the member's account lock, so
-- per member they are in commit order; across members there is no global
-- order (event_id is not a commit sequence).  Claims take pending events
-- oldest first and skip rows another consumer holds.

CREATE TABLE loyalty.event_kinds (
    kind        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO loyalty.event_kinds VALUES
    ('member.enrolled', 'A member was enrolled (welcome)'),
    ('points.earned', 'A purchase earned points'),
    ('reward.redeemed', 'A reward was redeemed from the catalog'),
    ('points.expiring', 'Points of the member expire soon (from loyalty.notify_expiring)'),
    ('tier.changed', 'The member moved to another tier');
COMMENT ON TABLE loyalty.event_kinds IS 'The event kinds the outbox carries';

CREATE TABLE loyalty.events (
    member_id       bigint NOT NULL,
    event_id        bigint GENERATED ALWAYS AS IDENTITY,
    program_id      bigint NOT NULL,
    kind            text NOT NULL REFERENCES loyalty.event_kinds,
    payload         jsonb NOT NULL DEFAULT '{}',
    dedup_key       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    claimed_by      text,
    acked_at        timestamptz,
    PRIMARY KEY (member_id, event_id)
);
-- the consumers' queue: pending events only
CREATE INDEX events_pending_idx ON loyalty.events (created_at, event_id) WHERE acked_at IS NULL;
-- an event with a dedup key is emitted once per member (e.g. one "expiring"
-- notice per expiry date)
CREATE UNIQUE INDEX events_dedup_idx ON loyalty.events (member_id, kind, dedup_key) WHERE dedup_key IS NOT NULL;
COMMENT ON TABLE loyalty.events IS 'Outbox of lifecycle events, written in the transaction of the fact; consumers claim and acknowledge them';
COMMENT ON COLUMN loyalty.events.dedup_key IS 'When set, the event is emitted at most once per member, kind and key';

-- Which kinds a program emits (all by default).
ALTER TABLE loyalty.programs ADD COLUMN event_kinds text[] NOT NULL
    DEFAULT ARRAY['member.enrolled', 'points.earned', 'reward.redeemed', 'points.expiring', 'tier.changed'];
COMMENT ON COLUMN loyalty.programs.event_kinds IS 'Event kinds this program writes to the outbox (an empty array: none)';

-- Internal: used by the extension's own functions (not granted to anyone).
CREATE FUNCTION loyalty.emit_event(member bigint, kind text, payload jsonb DEFAULT '{}', dedup_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_program bigint;
    v_id bigint;
BEGIN
    PERFORM loyalty.require_member(emit_event.member);
    SELECT m.program_id INTO v_program FROM loyalty.members m
    JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) m.program_id
    WHERE m.member_id OPERATOR(pg_catalog.=) emit_event.member
      AND emit_event.kind OPERATOR(pg_catalog.=) ANY (p.event_kinds);
    IF NOT FOUND THEN
        RETURN NULL;            -- unknown member, or the program does not emit this kind
    END IF;
    INSERT INTO loyalty.events (member_id, program_id, kind, payload, dedup_key)
    VALUES (emit_event.member, v_program, emit_event.kind, coalesce(emit_event.payload, '{}'), emit_event.dedup_key)
    ON CONFLICT (member_id, kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING event_id INTO v_id;
    IF v_id IS NOT NULL THEN
        PERFORM pg_catalog.pg_notify('loyalty_events',
            pg_catalog.jsonb_build_object('event_id', v_id, 'member_id', emit_event.member, 'kind', emit_event.kind)::text);
    END IF;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.emit_event(bigint, text, jsonb, text) IS
    'Internal: write one outbox event for a member (if the program emits that kind) and NOTIFY loyalty_events; returns the event id, or NULL when not emitted or a duplicate';

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
COMMENT ON FUNCTION loyalty.claim_events(integer, text, interval) IS
    'Claim up to max_events pending events, oldest first, skipping those other consumers hold; unacknowledged claims come back after the visibility interval';

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
COMMENT ON FUNCTION loyalty.ack_events(bigint[]) IS
    'Acknowledge processed events (by id); returns how many were newly acknowledged; acknowledging twice is harmless';

CREATE FUNCTION loyalty.notify_expiring(within interval DEFAULT interval '30 days', batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint := 0;
    r record;
BEGIN
    IF within IS NULL OR within <= interval '0' THEN
        RAISE EXCEPTION 'within must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one notice per member and expiry day, however often this runs
    FOR r IN
        SELECT l.member_id, (l.expires_at AT TIME ZONE 'UTC')::date AS day,
               sum(l.remaining::bigint) AS points, min(l.expires_at) AS expires_at
        FROM loyalty.accounts a JOIN loyalty.lots l ON l.member_id = a.member_id
        -- members whose expiry bound falls in the window, then their open lots
        WHERE a.next_expiry_at <= now() + within
          AND l.is_open AND l.expires_at > now() AND l.expires_at <= now() + within
          AND l.vests_at <= now()
        GROUP BY 1, 2
        ORDER BY 1, 2
        LIMIT coalesce(batch_size, 10000)
    LOOP
        IF loyalty.emit_event(r.member_id, 'points.expiring',
                              jsonb_build_object('points', r.points, 'expires_at', r.expires_at),
                              'expiring:' || r.day) IS NOT NULL THEN
            v_n := v_n + 1;
        END IF;
    END LOOP;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.notify_expiring(interval, integer) IS
    'Emit one points.expiring event per member and expiry day for spendable points expiring within the interval; safe to run repeatedly (schedule daily)';

SELECT pg_catalog.pg_extension_config_dump('loyalty.events', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.events_event_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.emit_event(bigint, text, jsonb, text),
    loyalty.claim_events(integer, text, interval), loyalty.ack_events(bigint[]),
    loyalty.notify_expiring(interval, integer) FROM PUBLIC;
-- consumers are applications
GRANT EXECUTE ON FUNCTION loyalty.claim_events(integer, text, interval), loyalty.ack_events(bigint[])
    TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.notify_expiring(interval, integer) TO loyalty_admin;
