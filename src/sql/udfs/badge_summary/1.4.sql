CREATE VIEW loyalty.badge_summary AS
SELECT b.program_id, b.badge, count(*)::bigint AS members, min(b.earned_at) AS first_earned_at,
       max(b.earned_at) AS last_earned_at
FROM loyalty.member_badges b
WHERE loyalty.program_visible(b.program_id)
GROUP BY b.program_id, b.badge;
