CREATE VIEW loyalty.tier_distribution AS
-- From the account rollups and the accounts changed since (as kpi_summary):
-- the members (not closed, no household pool) per tier; exact to now
WITH x AS (
    SELECT y.program_id, NULLIF(y.tier, '')::loyalty.tier AS tier, sum(y.accounts) AS members
    FROM (SELECT r.program_id, r.tier, r.accounts
          FROM loyalty.rollup_account_sums r WHERE NOT r.pool AND loyalty.program_visible(r.program_id)
          UNION ALL
          SELECT c.program_id, c.tier, c.accounts
          FROM loyalty.rollup_account_changes() c WHERE c.target = 'sums' AND NOT c.pool) y
    GROUP BY y.program_id, y.tier
    HAVING sum(y.accounts) <> 0
)
SELECT x.program_id, coalesce(loyalty.tier_name(x.tier), 'none') AS tier, loyalty.tier_rank(x.tier)::bigint AS tier_rank,
       x.members::bigint AS members, round(x.members * 1.0 / sum(x.members) OVER (PARTITION BY x.program_id), 4) AS share
FROM x;
