CREATE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        SELECT p.tier_metric AS metric, p.tier_window AS kind,
               loyalty.tier_window_start(loyalty.require_member($1), coalesce($2, now())) AS start, coalesce($2, now()) AS stop
        FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
        WHERE m.member_id = $1
    ), e AS (
        SELECT l.occurred_at, coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM w, loyalty.ledger l
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
        WHERE l.member_id = $1 AND l.kind = 'earn' AND l.occurred_at <= w.stop
          AND (l.occurred_at > w.start OR (w.kind <> 'rolling' AND l.occurred_at = w.start))
    )
    SELECT CASE w.metric
        WHEN 'spend' THEN coalesce((SELECT sum(spend) FROM e), 0)
        WHEN 'points' THEN coalesce((SELECT sum(points) FROM e), 0)
        WHEN 'visits' THEN (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM e WHERE spend > 0)
    END
    FROM w
$$;
