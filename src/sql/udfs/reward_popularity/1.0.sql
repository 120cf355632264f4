CREATE VIEW loyalty.reward_popularity AS
SELECT r.program_id, r.reward_id, r.code, r.name, count(x.redemption_id)::bigint AS redemptions,
       count(x.redemption_id) FILTER (WHERE x.status = 'cancelled')::bigint AS cancelled,
       coalesce(sum(x.points::bigint) FILTER (WHERE x.status = 'issued'), 0)::bigint AS points_spent,
       count(DISTINCT x.member_id)::bigint AS members, r.stock
FROM loyalty.rewards r LEFT JOIN loyalty.redemptions x ON x.reward_id = r.reward_id
GROUP BY r.reward_id;
