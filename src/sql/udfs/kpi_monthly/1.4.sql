CREATE VIEW loyalty.kpi_monthly AS
WITH k AS (
    SELECT program_id, date_trunc('month', day)::date AS month, sum(new_members) AS new_members,
           sum(purchases) AS purchases, sum(revenue) AS revenue, sum(points_issued) AS points_issued,
           sum(points_redeemed) AS points_redeemed, sum(points_expired) AS points_expired
    FROM loyalty.kpi_daily GROUP BY 1, 2
), b AS (
    -- buyers of the month, and those of them who had bought before it
    SELECT x.program_id, x.month, count(*) AS buyers,
           count(*) FILTER (WHERE x.first_month < x.month) AS repeat_buyers
    FROM (SELECT DISTINCT l.program_id, l.member_id,
                 date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month,
                 min(date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date)
                     OVER (PARTITION BY l.member_id) AS first_month
          FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
          WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)) x
    GROUP BY 1, 2
)
SELECT k.program_id, k.month, k.new_members::bigint AS new_members, coalesce(b.buyers, 0)::bigint AS active_members,
       k.purchases::bigint AS purchases, k.revenue,
       CASE WHEN k.purchases > 0 THEN round(k.revenue / k.purchases, 2) END AS avg_order_value,
       CASE WHEN b.buyers > 0 THEN round(b.repeat_buyers * 1.0 / b.buyers, 4) END AS repeat_purchase_rate,
       k.points_issued AS points_issued, k.points_redeemed AS points_redeemed,
       k.points_expired AS points_expired,
       CASE WHEN k.points_issued > 0 THEN round(k.points_redeemed * 1.0 / k.points_issued, 4) END AS redemption_rate,
       CASE WHEN k.points_issued > 0 THEN round(k.points_expired * 1.0 / k.points_issued, 4) END AS breakage
FROM k LEFT JOIN b ON b.program_id = k.program_id AND b.month = k.month;
