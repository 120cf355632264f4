CREATE VIEW loyalty.channel_distribution AS
-- From the rollups and the ledger rows recorded since (as kpi_monthly)
SELECT x.program_id, x.channel, sum(x.purchases)::bigint AS purchases, sum(x.members)::bigint AS members,
       sum(x.revenue) AS revenue, sum(x.points_issued)::bigint AS points_issued
FROM (SELECT r.program_id, r.channel, r.purchases, r.members, r.revenue, r.points_issued
      FROM loyalty.rollup_channels r WHERE loyalty.program_visible(r.program_id)
      UNION ALL
      SELECT c.program_id, c.label, c.purchases, c.members, c.revenue, c.points_issued
      FROM loyalty.rollup_changes() c WHERE c.target = 'channel') x
GROUP BY 1, 2;
