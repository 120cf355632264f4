CREATE VIEW loyalty.kpi_summary AS
SELECT p.program_id, p.name AS program, p.currency,
       -- (a household's pool is no member, but its points are owed like theirs)
       count(a.member_id) FILTER (WHERE a.status <> 'pool')::bigint AS members,
       count(a.member_id) FILTER (WHERE a.last_purchase_at > now() - interval '90 days')::bigint AS active_members_90d,
       CASE WHEN count(a.member_id) FILTER (WHERE a.purchase_count > 0) > 0
            THEN round(count(a.member_id) FILTER (WHERE a.purchase_count > 1) * 1.0
                       / count(a.member_id) FILTER (WHERE a.purchase_count > 0), 4) END AS repeat_purchase_rate,
       CASE WHEN sum(a.purchase_count) > 0 THEN round(sum(a.purchase_amount) / sum(a.purchase_count), 2) END AS avg_order_value,
       coalesce(sum(a.balance::bigint), 0) AS points_outstanding,
       coalesce(sum(a.held::bigint), 0) AS points_held,
       coalesce(max(pp.pending), 0) AS points_pending,
       coalesce(sum(a.lifetime_earned::bigint), 0) AS points_issued,
       coalesce(sum(a.lifetime_redeemed::bigint), 0) AS points_redeemed,
       coalesce(sum(a.lifetime_expired::bigint), 0) AS points_expired,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_redeemed::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS redemption_rate,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_expired::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS breakage,
       round(coalesce(sum(a.balance::numeric + a.held::numeric), 0) * p.point_value, 2) AS liability
FROM loyalty.programs p LEFT JOIN loyalty.accounts a ON a.program_id = p.program_id AND a.status <> 'closed'
-- points still vesting, per program (a join, not a subquery per program: Citus
-- cannot plan a correlated subquery beside the programs reference table)
LEFT JOIN (SELECT x.program_id, sum(l.remaining::bigint) AS pending
           FROM loyalty.lots l JOIN loyalty.accounts x ON x.member_id = l.member_id
           WHERE l.is_open AND l.vests_at > now() GROUP BY x.program_id) pp ON pp.program_id = p.program_id
WHERE loyalty.program_visible(p.program_id)
GROUP BY p.program_id;
