CREATE VIEW loyalty.member_mix AS
-- From the rollup of the members per source channel and region
-- (loyalty.refresh_rollups) and the members changed since
-- (loyalty.rollup_account_changes(): their difference): exact to now
WITH x AS (
    SELECT y.program_id, y.source_channel, y.region, sum(y.members) AS members, sum(y.buyers) AS buyers
    FROM (SELECT r.program_id, r.source_channel, r.region, r.members, r.buyers
          FROM loyalty.rollup_member_mix r WHERE loyalty.program_visible(r.program_id)
          UNION ALL
          SELECT c.program_id, c.source_channel, c.region, c.accounts, c.buyers
          FROM loyalty.rollup_account_changes() c WHERE c.target = 'mix') y
    GROUP BY y.program_id, y.source_channel, y.region
    HAVING sum(y.members) <> 0
)
SELECT x.program_id, x.source_channel, x.region, x.members::bigint AS members, x.buyers::bigint AS buyers
FROM x;
