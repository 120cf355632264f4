CREATE FUNCTION loyalty.notify_expiring(within interval DEFAULT interval '30 days', batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint := 0;
    r record;
    h loyalty.households;
    v_event bigint;
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
        -- a household pool's points: the notice goes to the household's owner
        SELECT * INTO h FROM loyalty.households x WHERE x.pool_member = r.member_id AND x.dissolved_at IS NULL;
        IF FOUND THEN
            v_event := loyalty.emit_event(h.owner, 'points.expiring',
                                          jsonb_build_object('points', r.points, 'expires_at', r.expires_at,
                                                             'household', h.household_id),
                                          'expiring:household:' || r.day);
        ELSE
            v_event := loyalty.emit_event(r.member_id, 'points.expiring',
                                          jsonb_build_object('points', r.points, 'expires_at', r.expires_at),
                                          'expiring:' || r.day);
        END IF;
        IF v_event IS NOT NULL THEN
            v_n := v_n + 1;
        END IF;
    END LOOP;
    RETURN v_n;
END $$;
