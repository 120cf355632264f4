CREATE VIEW loyalty.kpi_daily AS
WITH l AS (
    SELECT l.program_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, l.kind, l.points::bigint AS points,
           l.amount, l.member_id
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
    WHERE loyalty.program_visible(l.program_id)
), n AS (
    SELECT m.program_id, (m.joined_at AT TIME ZONE p.time_zone)::date AS day, count(*) AS new_members
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.status <> 'pool' AND loyalty.program_visible(m.program_id) GROUP BY 1, 2
), d AS (
    SELECT l.program_id, l.day,
           count(DISTINCT l.member_id) FILTER (WHERE l.kind = 'earn') AS active_members,
           count(*) FILTER (WHERE l.kind = 'earn') AS purchases,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'earn'), 0) AS revenue,
           coalesce(sum(l.points) FILTER (WHERE l.kind IN ('earn', 'award') OR (l.kind = 'adjust' AND l.points > 0)), 0) AS issued,
           coalesce(-sum(l.points) FILTER (WHERE l.kind IN ('redeem', 'hold')), 0)
             - coalesce(sum(l.points) FILTER (WHERE l.kind = 'release'), 0) AS redeemed,
           coalesce(-sum(l.points) FILTER (WHERE l.kind = 'expire'), 0) AS expired
    FROM l GROUP BY 1, 2
)
SELECT coalesce(d.program_id, n.program_id) AS program_id, coalesce(d.day, n.day) AS day,
       coalesce(n.new_members, 0)::bigint AS new_members, coalesce(d.active_members, 0)::bigint AS active_members,
       coalesce(d.purchases, 0)::bigint AS purchases, coalesce(d.revenue, 0) AS revenue,
       CASE WHEN d.purchases > 0 THEN round(d.revenue / d.purchases, 2) END AS avg_order_value,
       coalesce(d.issued, 0) AS points_issued, coalesce(d.redeemed, 0) AS points_redeemed,
       coalesce(d.expired, 0) AS points_expired
FROM d FULL JOIN n ON n.program_id = d.program_id AND n.day = d.day;
