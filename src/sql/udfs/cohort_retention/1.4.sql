CREATE VIEW loyalty.cohort_retention AS
-- From the rollups and the ledger rows recorded since (as kpi_monthly): the
-- members of each cohort (first purchase month) buying in each month
WITH c AS MATERIALIZED (
    SELECT x.program_id, x.cohort_month, x.month, sum(x.members) AS members
    FROM (SELECT r.program_id, r.cohort_month, r.month, r.members
          FROM loyalty.rollup_cohorts r WHERE loyalty.program_visible(r.program_id)
          UNION ALL
          SELECT t.program_id, t.day, t.month, t.members
          FROM loyalty.rollup_changes() t WHERE t.target = 'cohort') x
    GROUP BY 1, 2, 3
    HAVING sum(x.members) <> 0
)
SELECT c.program_id, c.cohort_month,
       ((extract(year FROM c.month) - extract(year FROM c.cohort_month)) * 12
         + extract(month FROM c.month) - extract(month FROM c.cohort_month))::bigint AS months_since_first,
       c.members::bigint AS active_members,
       s.members::bigint AS cohort_size,
       round(c.members * 1.0 / s.members, 4) AS retention
FROM c JOIN c s ON s.program_id = c.program_id AND s.cohort_month = c.cohort_month AND s.month = s.cohort_month;
