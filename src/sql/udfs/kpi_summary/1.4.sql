CREATE VIEW loyalty.kpi_summary AS
-- From the account rollups (loyalty.refresh_rollups: per program and tier
-- the sums of the accounts as counted, per day the members by their last
-- purchase and the points by when they vest) and the accounts changed since
-- (loyalty.rollup_account_changes(): their difference, and the 90 days and
-- the vesting points as of now): exact to now, fast while the rollups are
-- refreshed regularly; loyalty.rollups_as_of() says up to when they count.
WITH t AS MATERIALIZED (
    SELECT * FROM loyalty.rollup_account_changes() c WHERE c.target = ANY (ARRAY['sums', 'now'])
), s AS (
    -- the accounts not closed (a household's pool is no member, but its
    -- points are owed like theirs)
    SELECT x.program_id, sum(x.accounts) FILTER (WHERE NOT x.pool) AS members, sum(x.buyers) AS buyers,
           sum(x.repeat_buyers) AS repeat_buyers, sum(x.purchases) AS purchases, sum(x.revenue) AS revenue,
           sum(x.balance) AS balance, sum(x.held) AS held, sum(x.issued) AS issued, sum(x.redeemed) AS redeemed,
           sum(x.expired) AS expired
    FROM (SELECT r.program_id, r.pool, r.accounts, r.buyers, r.repeat_buyers, r.purchases, r.revenue, r.balance, r.held,
                 r.issued, r.redeemed, r.expired
          FROM loyalty.rollup_account_sums r WHERE loyalty.program_visible(r.program_id)
          UNION ALL
          SELECT t.program_id, t.pool, t.accounts, t.buyers, t.repeat_buyers, t.purchases, t.revenue, t.balance, t.held,
                 t.issued, t.redeemed, t.expired
          FROM t WHERE t.target = 'sums') x
    GROUP BY x.program_id
), n AS (
    -- members who bought in the last 90 days, points still vesting
    SELECT t.program_id, sum(t.active) AS active, sum(t.pending) AS pending
    FROM t WHERE t.target = 'now' GROUP BY t.program_id
)
SELECT p.program_id, p.name AS program, p.currency,
       coalesce(s.members, 0)::bigint AS members,
       coalesce(n.active, 0)::bigint AS active_members_90d,
       CASE WHEN s.buyers > 0 THEN round(coalesce(s.repeat_buyers, 0) * 1.0 / s.buyers, 4) END AS repeat_purchase_rate,
       CASE WHEN s.purchases > 0 THEN round(s.revenue / s.purchases, 2) END AS avg_order_value,
       coalesce(s.balance, 0) AS points_outstanding,
       coalesce(s.held, 0) AS points_held,
       coalesce(n.pending, 0) AS points_pending,
       coalesce(s.issued, 0) AS points_issued,
       coalesce(s.redeemed, 0) AS points_redeemed,
       coalesce(s.expired, 0) AS points_expired,
       CASE WHEN s.issued > 0 THEN round(s.redeemed * 1.0 / s.issued, 4) END AS redemption_rate,
       CASE WHEN s.issued > 0 THEN round(s.expired * 1.0 / s.issued, 4) END AS breakage,
       round(coalesce(s.balance + s.held, 0) * p.point_value, 2) AS liability
FROM loyalty.programs p
LEFT JOIN s ON s.program_id = p.program_id
LEFT JOIN n ON n.program_id = p.program_id
WHERE loyalty.program_visible(p.program_id);
