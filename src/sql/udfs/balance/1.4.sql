CREATE FUNCTION loyalty.balance(member bigint)
RETURNS TABLE (
    member_id bigint, available bigint, pending bigint, held bigint,
    expired_unposted bigint, debt bigint, balance bigint,
    lifetime_earned bigint, lifetime_redeemed bigint, lifetime_expired bigint,
    next_expiry timestamptz, next_expiry_points bigint, as_of timestamptz)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    -- Expiry and hold timeouts are exact at read time: a lot past its expiry
    -- is not available even before the batch runs, and an expired hold's
    -- points are available again before anything releases it.
    -- Every table is filtered by v_member itself, the correlated subquery
    -- too (not through h.member_id): Citus then plans the whole statement as
    -- one task on the member's shard; with the correlation alone it ran the
    -- holds part on every shard (about 0.3 s a call on 3 nodes).
    RETURN QUERY
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = v_member AND lots.is_open
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = v_member AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = v_member AND h.status = 'active' AND h.expires_at <= now()
    )
    -- bigint columns: every driver reads them as its integer type
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::bigint,
           coalesce(l.pending, 0)::bigint,
           (a.held::bigint - coalesce(h.points, 0))::bigint,
           coalesce(l.expired, 0)::bigint,
           a.debt::bigint, a.balance::bigint, a.lifetime_earned::bigint, a.lifetime_redeemed::bigint,
           a.lifetime_expired::bigint,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = v_member AND x.expires_at = l.next_expiry
                       AND x.is_open AND x.vests_at <= now()), 0)::bigint,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = v_member;
END $$;
