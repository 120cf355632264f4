CREATE VIEW loyalty.household_summary AS
WITH hm AS (
    SELECT m.household_id, count(*) AS members, count(*) FILTER (WHERE m.role = 'child') AS children,
           sum(a.balance::bigint) AS points, sum(a.lifetime_earned::bigint) AS earned
    FROM loyalty.household_members m JOIN loyalty.accounts a ON a.member_id = m.member_id
    WHERE m.left_at IS NULL
    GROUP BY m.household_id
), red AS (
    -- (OFFSET 0 keeps the grouping key a column, which Citus needs to merge the shards' groups)
    SELECT x.household_id, sum(x.points) AS redeemed
    FROM (SELECT (l.details ->> 'household')::bigint AS household_id, -l.points::bigint AS points
          FROM loyalty.ledger l WHERE l.kind = 'redeem' AND l.details ? 'household' OFFSET 0) x
    GROUP BY x.household_id
)
SELECT h.program_id, h.household_id, h.name, h.owner,
       coalesce(hm.members, 0)::bigint AS members, coalesce(hm.children, 0)::bigint AS children,
       coalesce(hm.points, 0)::numeric AS points,
       round(coalesce(hm.points, 0) * p.point_value, 2) AS liability,
       coalesce(hm.earned, 0)::numeric AS points_earned,
       coalesce(red.redeemed, 0)::numeric AS household_redemptions,
       pa.balance::numeric AS pool_points,
       round(pa.balance::numeric * p.point_value, 2) AS pool_liability,
       pa.lifetime_earned::numeric AS pool_earned,
       h.created_at
FROM loyalty.households h
JOIN loyalty.programs p ON p.program_id = h.program_id
LEFT JOIN loyalty.accounts pa ON pa.member_id = h.pool_member
LEFT JOIN hm ON hm.household_id = h.household_id
LEFT JOIN red ON red.household_id = h.household_id
WHERE h.dissolved_at IS NULL AND loyalty.program_visible(h.program_id);
