-- The BI views as they were before the rollups (1.3's definitions, on the raw
-- tables; kpi_summary, tier_distribution and member_mix as 1.4 had them
-- before their account rollups, with sums in numeric), for bench/scale.sh to time beside
-- the views on the rollups.
-- test/pgtap/rollups.sql reads them as its reference (\ir).
CREATE VIEW public.raw_kpi_monthly AS
WITH k AS (
    SELECT program_id, date_trunc('month', day)::date AS month, sum(new_members) AS new_members,
           sum(purchases) AS purchases, sum(revenue) AS revenue, sum(points_issued) AS points_issued,
           sum(points_redeemed) AS points_redeemed, sum(points_expired) AS points_expired
    FROM loyalty.kpi_daily GROUP BY 1, 2
), b AS (
    SELECT x.program_id, x.month, count(*) AS buyers,
           count(*) FILTER (WHERE x.first_month < x.month) AS repeat_buyers
    FROM (SELECT DISTINCT l.program_id, l.member_id,
                 date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month,
                 min(date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date)
                     OVER (PARTITION BY l.member_id) AS first_month
          FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
          WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)) x
    GROUP BY 1, 2
), c AS (
    SELECT cr.program_id, date_trunc('month', cr.occurred_at AT TIME ZONE p.time_zone)::date AS month,
           sum((a.points - a.returned)::bigint) FILTER (WHERE d.kind IN ('redeem', 'hold')) AS redeemed,
           sum((a.points - a.returned)::bigint) FILTER (WHERE d.kind = 'expire') AS expired
    FROM loyalty.allocations a
    JOIN loyalty.ledger d ON d.member_id = a.member_id AND d.entry_id = a.entry_id
    JOIN loyalty.lots t ON t.member_id = a.member_id AND t.lot_id = a.lot_id
    JOIN loyalty.ledger cr ON cr.member_id = t.member_id AND cr.entry_id = t.entry_id
    JOIN loyalty.programs p ON p.program_id = cr.program_id
    WHERE cr.kind IN ('earn', 'award', 'adjust') AND loyalty.program_visible(cr.program_id)
    GROUP BY 1, 2
)
SELECT k.program_id, k.month, k.new_members::bigint AS new_members, coalesce(b.buyers, 0)::bigint AS active_members,
       k.purchases::bigint AS purchases, k.revenue,
       CASE WHEN k.purchases > 0 THEN round(k.revenue / k.purchases, 2) END AS avg_order_value,
       CASE WHEN b.buyers > 0 THEN round(b.repeat_buyers * 1.0 / b.buyers, 4) END AS repeat_purchase_rate,
       k.points_issued AS points_issued, k.points_redeemed AS points_redeemed,
       k.points_expired AS points_expired,
       CASE WHEN k.points_issued > 0 THEN round(coalesce(c.redeemed, 0) * 1.0 / k.points_issued, 4) END AS redemption_rate,
       CASE WHEN k.points_issued > 0 THEN round(coalesce(c.expired, 0) * 1.0 / k.points_issued, 4) END AS breakage
FROM k LEFT JOIN b ON b.program_id = k.program_id AND b.month = k.month
LEFT JOIN c ON c.program_id = k.program_id AND c.month = k.month;

CREATE VIEW public.raw_channel_distribution AS
SELECT l.program_id, coalesce(l.channel, 'unknown') AS channel, count(*)::bigint AS purchases,
       count(DISTINCT l.member_id)::bigint AS members, sum(l.amount) AS revenue,
       sum(l.points::bigint)::bigint AS points_issued
FROM loyalty.ledger l WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)
GROUP BY 1, 2;

CREATE VIEW public.raw_cohort_retention AS
WITH buys AS (
    SELECT DISTINCT l.program_id, l.member_id, date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
    WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)
), c AS (
    SELECT b.*, min(b.month) OVER (PARTITION BY b.member_id) AS cohort FROM buys b
)
SELECT c.program_id, c.cohort AS cohort_month,
       ((extract(year FROM c.month) - extract(year FROM c.cohort)) * 12
         + extract(month FROM c.month) - extract(month FROM c.cohort))::bigint AS months_since_first,
       count(*)::bigint AS active_members,
       max(s.size)::bigint AS cohort_size,
       round(count(*) * 1.0 / max(s.size), 4) AS retention
FROM c JOIN (SELECT c2.program_id, c2.cohort, count(DISTINCT c2.member_id) AS size FROM c c2 GROUP BY 1, 2) s
  ON s.program_id = c.program_id AND s.cohort = c.cohort
GROUP BY 1, 2, 3;

CREATE VIEW public.raw_kpi_summary AS
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

CREATE VIEW public.raw_tier_distribution AS
SELECT a.program_id, coalesce(loyalty.tier_name(a.tier), 'none') AS tier, loyalty.tier_rank(a.tier)::bigint AS tier_rank,
       count(*)::bigint AS members, round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY a.program_id), 4) AS share
FROM loyalty.accounts a WHERE a.status <> ALL (ARRAY['closed', 'pool']) AND loyalty.program_visible(a.program_id)
GROUP BY a.program_id, a.tier;
-- member_mix before its rollup (the members and accounts, as 1.4 had it)
CREATE VIEW public.raw_member_mix AS
SELECT m.program_id, coalesce(m.source_channel, 'unknown') AS source_channel, coalesce(m.region, 'unknown') AS region,
       count(*)::bigint AS members, count(*) FILTER (WHERE a.purchase_count > 0)::bigint AS buyers
FROM loyalty.members m JOIN loyalty.accounts a ON a.member_id = m.member_id
WHERE m.status <> ALL (ARRAY['closed', 'pool']) AND loyalty.program_visible(m.program_id)
GROUP BY 1, 2, 3;
-- member_rfm before its quintiles came from the rollups (1.1's definition):
-- percentile_disc over every buyer's account
CREATE VIEW public.raw_member_rfm AS
WITH q AS MATERIALIZED (
    -- quintile boundaries per program: three sorts of one narrow column each
    -- (the account keeps every member's purchase statistics up to date, so
    -- no purchase is rescanned here)
    SELECT a.program_id,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.last_purchase_at) AS r,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_count) AS f,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_amount) AS m
    FROM loyalty.accounts a
    WHERE a.purchase_count > 0 AND a.status <> 'closed' AND loyalty.program_visible(a.program_id)
    GROUP BY a.program_id
), s AS (
    -- score = 1 + the number of quintile boundaries the value lies above,
    -- so equal values always get equal scores
    SELECT a.program_id, a.member_id, a.first_purchase_at, a.last_purchase_at, a.purchase_count,
           a.purchase_days, a.purchase_amount,
           1 + (a.last_purchase_at > q.r[1])::int + (a.last_purchase_at > q.r[2])::int
             + (a.last_purchase_at > q.r[3])::int + (a.last_purchase_at > q.r[4])::int AS r_score,
           1 + (a.purchase_count > q.f[1])::int + (a.purchase_count > q.f[2])::int
             + (a.purchase_count > q.f[3])::int + (a.purchase_count > q.f[4])::int AS f_score,
           1 + (a.purchase_amount > q.m[1])::int + (a.purchase_amount > q.m[2])::int
             + (a.purchase_amount > q.m[3])::int + (a.purchase_amount > q.m[4])::int AS m_score
    FROM loyalty.accounts a JOIN q ON q.program_id = a.program_id
    WHERE a.purchase_count > 0 AND a.status <> 'closed'
), cells AS MATERIALIZED (
    -- the mapping resolved once for the 25 (R, FM) cells, then joined
    SELECT r, fm, (SELECT g.segment FROM loyalty.rfm_segment_map g
                   WHERE r BETWEEN g.r_min AND g.r_max AND fm BETWEEN g.fm_min AND g.fm_max
                   ORDER BY g.priority LIMIT 1) AS segment
    FROM generate_series(1, 5) r, generate_series(1, 5) fm
)
SELECT s.program_id, s.member_id,
       s.first_purchase_at::date AS first_purchase, s.last_purchase_at::date AS last_purchase,
       (current_date - s.last_purchase_at::date)::bigint AS recency_days,
       s.purchase_count AS frequency, s.purchase_days AS purchase_days, s.purchase_amount AS monetary,
       s.r_score::bigint AS r_score, s.f_score::bigint AS f_score, s.m_score::bigint AS m_score,
       (s.r_score * 100 + s.f_score * 10 + s.m_score)::text AS rfm_cell,
       coalesce(c.segment, 'Other') AS segment
FROM s JOIN cells c ON c.r = s.r_score AND c.fm = round((s.f_score + s.m_score) / 2.0);
