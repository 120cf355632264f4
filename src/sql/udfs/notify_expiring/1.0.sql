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
        FROM loyalty.lots l
        WHERE l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
          AND l.expires_at IS NOT NULL AND l.expires_at > now() AND l.expires_at <= now() + within
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
