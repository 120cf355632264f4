CREATE VIEW loyalty.tier_distribution AS
SELECT a.program_id, coalesce(loyalty.tier_name(a.tier), 'none') AS tier, loyalty.tier_rank(a.tier)::bigint AS tier_rank,
       count(*)::bigint AS members, round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY a.program_id), 4) AS share
FROM loyalty.accounts a WHERE a.status <> ALL (ARRAY['closed', 'pool']) AND loyalty.program_visible(a.program_id)
GROUP BY a.program_id, a.tier;
