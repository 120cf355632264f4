CREATE VIEW loyalty.coupon_performance AS
WITH u AS (
    -- (OFFSET 0 keeps the grouping key a column, which Citus needs to merge the shards' groups)
    SELECT x.campaign_id, count(*) FILTER (WHERE x.status = 'captured') AS uses,
           count(DISTINCT x.member_id) FILTER (WHERE x.status = 'captured') AS members,
           count(*) FILTER (WHERE x.status = 'reversed') AS reversed,
           count(*) FILTER (WHERE x.status IN ('released', 'expired')) AS abandoned,
           coalesce(sum(x.discount) FILTER (WHERE x.status = 'captured'), 0) AS discount,
           coalesce(sum(x.points) FILTER (WHERE x.status = 'captured'), 0) AS points,
           coalesce(sum(x.basket_amount) FILTER (WHERE x.status = 'captured'), 0) AS revenue
    FROM (SELECT r.campaign_id, r.member_id, r.status, r.discount, r.points, r.basket_amount
          FROM loyalty.coupon_redemptions r OFFSET 0) x
    GROUP BY x.campaign_id
)
SELECT c.program_id, c.campaign_id, c.name AS campaign, c.offer, c.active,
       (SELECT count(*) FROM loyalty.coupon_codes k WHERE k.campaign_id = c.campaign_id)::bigint AS codes,
       coalesce(u.uses, 0)::bigint AS uses, coalesce(u.members, 0)::bigint AS members,
       coalesce(u.reversed, 0)::bigint AS reversed, coalesce(u.abandoned, 0)::bigint AS abandoned,
       coalesce(u.discount, 0)::numeric AS discount, coalesce(u.points, 0)::numeric AS points,
       round(coalesce(u.discount, 0) + coalesce(u.points, 0) * p.point_value, 2) AS cost,
       coalesce(u.revenue, 0)::numeric AS revenue,
       CASE WHEN u.uses > 0 THEN round((u.discount + u.points * p.point_value) / u.uses, 2) END AS cost_per_use,
       c.budget, c.spent AS budget_used
FROM loyalty.coupon_campaigns c
JOIN loyalty.programs p ON p.program_id = c.program_id
LEFT JOIN u ON u.campaign_id = c.campaign_id
WHERE loyalty.program_visible(c.program_id);
