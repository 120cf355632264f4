CREATE VIEW loyalty.cohort_retention AS
WITH buys AS (
    SELECT DISTINCT l.program_id, l.member_id, date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id WHERE l.kind = 'earn'
), c AS (
    SELECT b.*, min(b.month) OVER (PARTITION BY b.member_id) AS cohort FROM buys b
)
SELECT c.program_id, c.cohort AS cohort_month,
       ((extract(year FROM c.month) - extract(year FROM c.cohort)) * 12
         + extract(month FROM c.month) - extract(month FROM c.cohort))::bigint AS months_since_first,
       count(*)::bigint AS active_members,
       max(s.size)::bigint AS cohort_size,
       round(count(*) * 1.0 / max(s.size), 4) AS retention
FROM c JOIN (SELECT c2.program_id, c2.cohort, count(DISTINCT c2.member_id) AS size FROM c c2 GROUP BY 1, 2) s
  ON s.program_id = c.program_id AND s.cohort = c.cohort
GROUP BY 1, 2, 3;
