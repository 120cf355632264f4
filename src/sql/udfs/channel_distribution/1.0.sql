CREATE VIEW loyalty.channel_distribution AS
SELECT l.program_id, coalesce(l.channel, 'unknown') AS channel, count(*)::bigint AS purchases,
       count(DISTINCT l.member_id)::bigint AS members, sum(l.amount) AS revenue,
       sum(l.points::bigint)::bigint AS points_issued
FROM loyalty.ledger l WHERE l.kind = 'earn'
GROUP BY 1, 2;
