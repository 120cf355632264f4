CREATE VIEW loyalty.member_segments AS
SELECT a.program_id, a.member_id, a.segment, a.segment_since, a.risk_band,
       ARRAY(SELECT t.tag FROM loyalty.member_tags t WHERE t.member_id = a.member_id ORDER BY t.tag) AS tags
FROM loyalty.accounts a
WHERE a.status NOT IN ('closed', 'pool') AND loyalty.program_visible(a.program_id);
