CREATE VIEW loyalty.transfers AS
SELECT l.program_id, l.entry_id AS transfer_id, l.member_id AS from_member,
       (l.details ->> 'to_member')::bigint AS to_member, (-l.points::bigint)::bigint AS points,
       l.reason, l.actor, l.created_at,
       r.entry_id IS NOT NULL AS reversed, r.created_at AS reversed_at, r.reason AS reversal_reason
FROM loyalty.ledger l
LEFT JOIN loyalty.ledger r
  ON r.member_id = l.member_id AND r.source_entry = l.entry_id AND r.kind = 'reverse'
WHERE l.kind = 'transfer' AND l.points::bigint < 0 AND loyalty.program_visible(l.program_id);
