CREATE VIEW loyalty.journey_summary AS
SELECT e.program_id, substr(e.kind, 9) AS journey, (e.payload ->> 'step')::integer AS step,
       date_trunc('month', e.created_at)::date AS month, count(*)::bigint AS events,
       count(DISTINCT e.member_id)::bigint AS members, count(*) FILTER (WHERE e.acked_at IS NOT NULL)::bigint AS delivered
FROM loyalty.events e
WHERE e.kind LIKE 'journey.%' AND loyalty.program_visible(e.program_id)
GROUP BY 1, 2, 3, 4;
