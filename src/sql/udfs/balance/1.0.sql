CREATE FUNCTION loyalty.balance(member bigint)
RETURNS TABLE (
    member_id bigint, available loyalty.points, pending loyalty.points, held loyalty.points,
    expired_unposted loyalty.points, debt loyalty.points, balance loyalty.points,
    lifetime_earned loyalty.points, lifetime_redeemed loyalty.points, lifetime_expired loyalty.points,
    next_expiry timestamptz, next_expiry_points loyalty.points, as_of timestamptz)
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- Expiry and hold timeouts are exact at read time: a lot past its expiry
    -- is not available even before the batch runs, and an expired hold's
    -- points are available again before anything releases it.
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = $1 AND remaining OPERATOR(loyalty.>) '0'::loyalty.points
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = h.member_id AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = $1 AND h.status = 'active' AND h.expires_at <= now()
    )
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::loyalty.points,
           coalesce(l.pending, 0)::loyalty.points,
           (a.held::bigint - coalesce(h.points, 0))::loyalty.points,
           coalesce(l.expired, 0)::loyalty.points,
           a.debt, a.balance, a.lifetime_earned, a.lifetime_redeemed, a.lifetime_expired,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = $1 AND x.expires_at = l.next_expiry
                       AND x.remaining OPERATOR(loyalty.>) '0'::loyalty.points AND x.vests_at <= now()), 0)::loyalty.points,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = $1
$$;
