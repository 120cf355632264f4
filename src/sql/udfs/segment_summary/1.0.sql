CREATE VIEW loyalty.segment_summary AS
SELECT r.program_id, r.segment, count(*)::bigint AS members,
       round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY r.program_id), 4) AS share,
       round(avg(r.recency_days), 1) AS avg_recency_days, round(avg(r.frequency), 2) AS avg_frequency,
       round(avg(r.monetary), 2) AS avg_monetary, sum(r.monetary) AS total_monetary
FROM loyalty.member_rfm r
GROUP BY r.program_id, r.segment;
