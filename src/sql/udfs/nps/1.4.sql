CREATE VIEW loyalty.nps AS
SELECT r.program_id, s.code AS survey, date_trunc('month', r.responded_at)::date AS month, r.tier, r.segment, r.channel,
       count(*)::bigint AS responses,
       count(*) FILTER (WHERE r.score >= 9)::bigint AS promoters,
       count(*) FILTER (WHERE r.score BETWEEN 7 AND 8)::bigint AS passives,
       count(*) FILTER (WHERE r.score <= 6)::bigint AS detractors,
       round(100.0 * (count(*) FILTER (WHERE r.score >= 9) - count(*) FILTER (WHERE r.score <= 6)) / count(*), 1) AS nps,
       round(avg(r.score), 2) AS average_score
FROM loyalty.survey_responses r JOIN loyalty.surveys s ON s.survey_id = r.survey_id
WHERE loyalty.program_visible(r.program_id)
GROUP BY r.program_id, s.code, 3, r.tier, r.segment, r.channel;
