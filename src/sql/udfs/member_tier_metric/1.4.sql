CREATE FUNCTION loyalty.member_tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
    v_stop timestamptz := coalesce($2, now());
    v_metric text;
    v_kind text;
    v_start timestamptz;
BEGIN
    -- one member's own metric (tier_metric adds up a household's)
    SELECT p.tier_metric, p.tier_window INTO v_metric, v_kind
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = v_member;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- a statement of its own, not a call inside the query below: on Citus
    -- that query runs on the member's shard, where a function that queries
    -- distributed tables itself cannot run
    v_start := loyalty.tier_window_start(v_member, v_stop);
    RETURN (
    WITH e AS (
        SELECT l.occurred_at, coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM loyalty.ledger l
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
        WHERE l.member_id = v_member AND l.kind = 'earn' AND l.occurred_at <= v_stop
          AND (l.occurred_at > v_start OR (v_kind <> 'rolling' AND l.occurred_at = v_start))
    )
    SELECT CASE
        WHEN v_metric = 'spend' THEN coalesce((SELECT sum(spend) FROM e), 0)
        WHEN v_metric = 'points' THEN coalesce((SELECT sum(points) FROM e), 0)
        WHEN v_metric = 'visits' THEN (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM e WHERE spend > 0)
    END);
END $$;
