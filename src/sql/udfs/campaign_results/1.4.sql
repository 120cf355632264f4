CREATE VIEW loyalty.campaign_results AS
WITH c AS (
    SELECT 'rule'::text AS kind, r.rule_id AS campaign_id, r.program_id, r.name,
           coalesce(r.valid_from, r.created_at) AS window_start, r.valid_until AS window_end, r.control_share, r.control_seed
    FROM loyalty.earning_rules r
    UNION ALL
    SELECT 'coupon', k.campaign_id, k.program_id, k.name, coalesce(k.valid_from, k.created_at), k.valid_until,
           k.control_share, k.control_seed
    FROM loyalty.coupon_campaigns k
    UNION ALL
    SELECT 'challenge', h.challenge_id, h.program_id, h.name, coalesce(h.valid_from, h.created_at), h.valid_until,
           h.control_share, h.control_seed
    FROM loyalty.challenges h
    UNION ALL
    SELECT 'journey', j.step_id, j.program_id, j.kind || ' step ' || j.step, j.created_at, NULL, j.control_share, j.control_seed
    FROM loyalty.journey_steps j
), w AS MATERIALIZED (
    SELECT c.*, coalesce(c.window_end, 'infinity') AS until, p.point_value
    FROM c JOIN loyalty.programs p ON p.program_id = c.program_id
    WHERE loyalty.program_visible(c.program_id)
), per_member AS (
    -- each member of the program in the campaign's window, in its group,
    -- with its purchases and revenue (net of refunds) in the window
    SELECT w.kind, w.campaign_id, a.member_id,
           w.control_share > 0 AND loyalty.in_control(a.member_id, w.control_seed, w.control_share::float8) AS control,
           count(l.entry_id) FILTER (WHERE l.amount - coalesce(lo.reversed_amount, 0) > 0) AS purchases,
           coalesce(sum(l.amount - coalesce(lo.reversed_amount, 0)), 0) AS revenue
    FROM w
    JOIN loyalty.accounts a ON a.program_id = w.program_id AND a.status <> 'pool'
    JOIN loyalty.members m ON m.member_id = a.member_id AND m.joined_at < w.until
    LEFT JOIN loyalty.ledger l ON l.member_id = a.member_id AND l.kind = 'earn'
         AND l.occurred_at >= w.window_start AND l.occurred_at < w.until
    LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
    GROUP BY w.kind, w.campaign_id, a.member_id, w.control_share, w.control_seed
), g AS (
    SELECT pm.kind, pm.campaign_id,
           count(*) FILTER (WHERE NOT pm.control) AS n_t, count(*) FILTER (WHERE pm.control) AS n_c,
           coalesce(sum(pm.purchases) FILTER (WHERE NOT pm.control), 0) AS purchases_t,
           coalesce(sum(pm.purchases) FILTER (WHERE pm.control), 0) AS purchases_c,
           coalesce(sum(pm.revenue) FILTER (WHERE NOT pm.control), 0) AS revenue_t,
           coalesce(sum(pm.revenue) FILTER (WHERE pm.control), 0) AS revenue_c,
           var_samp(pm.revenue) FILTER (WHERE NOT pm.control) AS var_t,
           var_samp(pm.revenue) FILTER (WHERE pm.control) AS var_c
    FROM per_member pm
    GROUP BY pm.kind, pm.campaign_id
), awards AS MATERIALIZED (
    -- the awards of completions that stand (a clawed-back one has none), in
    -- the ledger of the member they were paid to: one carried by a merge is
    -- the absorbed member's (award_member)
    SELECT p.challenge_id, coalesce(p.award_member, p.member_id) AS paid_to, p.award_entry
    FROM loyalty.challenge_progress p WHERE p.award_entry IS NOT NULL
), award_points AS (
    SELECT a.challenge_id, sum(l.points::bigint) AS points
    FROM awards a JOIN loyalty.ledger l ON l.member_id = a.paid_to AND l.entry_id = a.award_entry
    GROUP BY a.challenge_id
), reach AS (
    -- who the campaign reached and what it gave
    SELECT 'coupon'::text AS kind, r.campaign_id, count(DISTINCT r.member_id) AS reached, count(*) AS redemptions,
           sum(r.discount) AS discounts, sum(r.points) AS points
    FROM loyalty.coupon_redemptions r WHERE r.status = 'captured' GROUP BY r.campaign_id
    UNION ALL
    SELECT 'challenge', x.challenge_id, x.reached, x.completions, 0, coalesce(ap.points, 0)
    -- (the periods counted on their own, then matched with the challenges:
    -- on Citus the view is a union of two distributed tables, which joins
    -- no reference table)
    FROM (SELECT p.challenge_id, count(DISTINCT p.member_id) AS reached,
                 count(*) FILTER (WHERE p.completed_at IS NOT NULL) AS completions
          FROM loyalty.challenge_progress p GROUP BY p.challenge_id) x
    JOIN loyalty.challenges h ON h.challenge_id = x.challenge_id
    LEFT JOIN award_points ap ON ap.challenge_id = x.challenge_id
    UNION ALL
    SELECT 'journey', j.step_id, count(DISTINCT e.member_id), count(*), 0, 0
    FROM loyalty.journey_steps j
    JOIN loyalty.events e ON e.program_id = j.program_id AND e.kind = 'journey.' || j.kind
         AND (e.payload ->> 'step')::integer = j.step
    GROUP BY j.step_id
    UNION ALL
    -- (a rule's points: what its purchases earned beyond the program's rate,
    -- shared equally among the rules that applied to each)
    SELECT 'rule', r.rule_id, count(DISTINCT l.member_id), count(*), 0,
           round(sum(((l.details ->> 'points')::numeric
                      - floor((l.details ->> 'earn_base')::numeric * (l.details ->> 'earn_rate')::numeric))
                     / greatest(jsonb_array_length(l.details -> 'rules'), 1)))
    FROM loyalty.earning_rules r
    JOIN loyalty.ledger l ON l.program_id = r.program_id AND l.kind = 'earn'
         AND l.details -> 'rules' @> jsonb_build_array(jsonb_build_object('rule', r.name))
    GROUP BY r.rule_id
)
SELECT w.program_id, w.kind, w.campaign_id, w.name, w.window_start, w.window_end, w.control_share,
       g.n_t AS members, g.n_c AS control_members, coalesce(x.reached, 0) AS reached,
       coalesce(x.redemptions, 0) AS redemptions, x.points AS points_issued, coalesce(x.discounts, 0) AS discounts,
       round(coalesce(x.discounts, 0) + coalesce(x.points, 0) * w.point_value, 2) AS cost,
       g.purchases_t AS purchases, g.purchases_c AS control_purchases,
       g.revenue_t AS revenue, g.revenue_c AS control_revenue,
       round(g.revenue_t / nullif(g.n_t, 0), 4) AS revenue_per_member,
       round(g.revenue_c / nullif(g.n_c, 0), 4) AS control_revenue_per_member,
       round(g.revenue_t / nullif(g.n_t, 0) - g.revenue_c / nullif(g.n_c, 0), 4) AS uplift_per_member,
       -- a 95% interval for the difference of the two means (Welch)
       round(g.revenue_t / nullif(g.n_t, 0) - g.revenue_c / nullif(g.n_c, 0)
             - 1.96 * sqrt(g.var_t / nullif(g.n_t, 0) + g.var_c / nullif(g.n_c, 0)), 4) AS uplift_low,
       round(g.revenue_t / nullif(g.n_t, 0) - g.revenue_c / nullif(g.n_c, 0)
             + 1.96 * sqrt(g.var_t / nullif(g.n_t, 0) + g.var_c / nullif(g.n_c, 0)), 4) AS uplift_high,
       round((g.purchases_t::numeric / nullif(g.n_t, 0) - g.purchases_c::numeric / nullif(g.n_c, 0)) * g.n_t, 2)
           AS incremental_purchases,
       round((coalesce(x.discounts, 0) + coalesce(x.points, 0) * w.point_value)
             / nullif(greatest((g.purchases_t::numeric / nullif(g.n_t, 0) - g.purchases_c::numeric / nullif(g.n_c, 0)) * g.n_t, 0), 0), 2)
           AS cost_per_incremental_purchase
FROM w
JOIN g ON g.kind = w.kind AND g.campaign_id = w.campaign_id
LEFT JOIN reach x ON x.kind = w.kind AND x.campaign_id = w.campaign_id;
