CREATE VIEW loyalty.member_mix AS
SELECT m.program_id, coalesce(m.source_channel, 'unknown') AS source_channel, coalesce(m.region, 'unknown') AS region,
       count(*)::bigint AS members, count(*) FILTER (WHERE a.purchase_count > 0)::bigint AS buyers
FROM loyalty.members m JOIN loyalty.accounts a ON a.member_id = m.member_id
WHERE m.status <> ALL (ARRAY['closed', 'pool']) AND loyalty.program_visible(m.program_id)
GROUP BY 1, 2, 3;
