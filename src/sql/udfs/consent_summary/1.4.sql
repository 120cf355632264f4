CREATE VIEW loyalty.consent_summary AS
SELECT c.program_id, c.channel, c.opted_in, c.opted_out, t.members
FROM (SELECT m.program_id, e.key AS channel,
             count(*) FILTER (WHERE e.value = 'true')::bigint AS opted_in,
             count(*) FILTER (WHERE e.value = 'false')::bigint AS opted_out
      FROM loyalty.members m, jsonb_each(m.consent) e
      WHERE m.status <> 'closed' AND loyalty.program_visible(m.program_id)
      GROUP BY m.program_id, e.key) c
JOIN (SELECT m.program_id, count(*)::bigint AS members
      FROM loyalty.members m WHERE m.status <> ALL (ARRAY['closed', 'pool']) AND loyalty.program_visible(m.program_id)
      GROUP BY m.program_id) t ON t.program_id = c.program_id;
