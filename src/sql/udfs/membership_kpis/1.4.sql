CREATE VIEW loyalty.membership_kpis AS
WITH months AS (
    SELECT s.program_id, date_trunc('month', g)::date AS month
    FROM (SELECT s.program_id, min(s.started_at) AS first FROM loyalty.subscriptions s
          WHERE loyalty.program_visible(s.program_id) GROUP BY s.program_id) s,
         generate_series(date_trunc('month', s.first), date_trunc('month', now()), interval '1 month') g
), pay AS (
    SELECT y.program_id, date_trunc('month', y.created_at)::date AS month,
           count(*) FILTER (WHERE y.kind = 'subscribe') AS new_memberships,
           count(*) FILTER (WHERE y.kind = 'renew') AS renewals,
           sum(y.amount) AS revenue
    FROM loyalty.membership_payments y WHERE loyalty.program_visible(y.program_id)
    GROUP BY 1, 2
), ends AS (
    SELECT s.program_id, date_trunc('month', s.ended_at)::date AS month,
           count(*) FILTER (WHERE s.status = 'lapsed') AS lapsed,
           count(*) FILTER (WHERE s.status = 'ended') AS cancelled,
           count(*) FILTER (WHERE s.status = 'changed') AS plan_changes
    FROM loyalty.subscriptions s WHERE s.ended_at IS NOT NULL AND loyalty.program_visible(s.program_id)
    GROUP BY 1, 2
), paying AS (
    SELECT m.program_id, m.month, count(s.member_id) AS paying_members
    FROM months m LEFT JOIN loyalty.subscriptions s
      ON s.program_id = m.program_id AND s.started_at < (m.month + interval '1 month')
     AND coalesce(s.ended_at, s.current_period_end) >= (m.month + interval '1 month')
    GROUP BY 1, 2
)
SELECT m.program_id, m.month, p.paying_members::bigint AS paying_members,
       coalesce(pay.new_memberships, 0)::bigint AS new_memberships, coalesce(pay.renewals, 0)::bigint AS renewals,
       coalesce(e.lapsed, 0)::bigint AS lapsed, coalesce(e.cancelled, 0)::bigint AS cancelled,
       coalesce(e.plan_changes, 0)::bigint AS plan_changes,
       round(coalesce(pay.renewals, 0)::numeric / nullif(coalesce(pay.renewals, 0) + coalesce(e.lapsed, 0) + coalesce(e.cancelled, 0), 0), 4)
           AS renewal_rate,
       coalesce(pay.revenue, 0) AS revenue
FROM months m
JOIN paying p ON p.program_id = m.program_id AND p.month = m.month
LEFT JOIN pay ON pay.program_id = m.program_id AND pay.month = m.month
LEFT JOIN ends e ON e.program_id = m.program_id AND e.month = m.month;
