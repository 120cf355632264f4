CREATE VIEW loyalty.kpi_monthly AS
-- From the rollups (loyalty.refresh_rollups) and the ledger rows recorded
-- since (loyalty.rollup_changes()): exact to now, fast while the rollups are
-- refreshed regularly; loyalty.rollups_as_of() says up to when they count.
WITH t AS MATERIALIZED (
    SELECT * FROM loyalty.rollup_changes() c
    WHERE c.target = ANY (ARRAY['day', 'cohort', 'points'])
), k AS (
    SELECT x.program_id, date_trunc('month', x.day::timestamp)::date AS month, sum(x.new_members) AS new_members,
           sum(x.purchases) AS purchases, sum(x.revenue) AS revenue, sum(x.points_issued) AS points_issued,
           sum(x.points_redeemed) AS points_redeemed, sum(x.points_expired) AS points_expired
    FROM (SELECT r.program_id, r.day, r.new_members, r.purchases, r.revenue, r.points_issued, r.points_redeemed, r.points_expired
          FROM loyalty.rollup_days r WHERE loyalty.program_visible(r.program_id)
          UNION ALL
          SELECT t.program_id, t.day, t.members, t.purchases, t.revenue, t.points_issued, t.points_redeemed, t.points_expired
          FROM t WHERE t.target = 'day') x
    GROUP BY 1, 2
), b AS (
    -- buyers of the month, and those of them who had bought before it (an
    -- earlier cohort)
    SELECT x.program_id, x.month, sum(x.members) AS buyers,
           sum(x.members) FILTER (WHERE x.cohort_month < x.month) AS repeat_buyers
    FROM (SELECT r.program_id, r.cohort_month, r.month, r.members
          FROM loyalty.rollup_cohorts r WHERE loyalty.program_visible(r.program_id)
          UNION ALL
          SELECT t.program_id, t.day, t.month, t.members FROM t WHERE t.target = 'cohort') x
    GROUP BY 1, 2
), c AS (
    -- what became of each month's points since (by the month the credit
    -- they were issued by occurred): redeemed (net of holds released and
    -- redemptions refunded) or expired
    SELECT x.program_id, x.month, sum(x.points_redeemed) AS redeemed, sum(x.points_expired) AS expired
    FROM (SELECT r.program_id, r.month, r.points_redeemed, r.points_expired
          FROM loyalty.rollup_point_months r WHERE loyalty.program_visible(r.program_id)
          UNION ALL
          SELECT t.program_id, t.day, coalesce(t.points_redeemed, 0), coalesce(t.points_expired, 0)
          FROM t WHERE t.target = 'points') x
    GROUP BY 1, 2
)
SELECT k.program_id, k.month, k.new_members::bigint AS new_members, coalesce(b.buyers, 0)::bigint AS active_members,
       k.purchases::bigint AS purchases, k.revenue,
       CASE WHEN k.purchases > 0 THEN round(k.revenue / k.purchases, 2) END AS avg_order_value,
       CASE WHEN b.buyers > 0 THEN round(coalesce(b.repeat_buyers, 0) * 1.0 / b.buyers, 4) END AS repeat_purchase_rate,
       k.points_issued AS points_issued, k.points_redeemed AS points_redeemed,
       k.points_expired AS points_expired,
       CASE WHEN k.points_issued > 0 THEN round(coalesce(c.redeemed, 0) * 1.0 / k.points_issued, 4) END AS redemption_rate,
       CASE WHEN k.points_issued > 0 THEN round(coalesce(c.expired, 0) * 1.0 / k.points_issued, 4) END AS breakage
FROM k LEFT JOIN b ON b.program_id = k.program_id AND b.month = k.month
LEFT JOIN c ON c.program_id = k.program_id AND c.month = k.month;
