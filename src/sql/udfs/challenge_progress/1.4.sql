CREATE VIEW loyalty.challenge_progress AS
SELECT s.member_id, unnest(s.challenge_ids) AS challenge_id, unnest(s.period_starts) AS period_start,
       unnest(s.period_ends) AS period_end, s.program_id, unnest(s.period_values) AS value,
       unnest(s.period_items) AS items, unnest(s.last_items) AS last_item, unnest(s.completed_ats) AS completed_at,
       unnest(s.completion_counts) AS completions, unnest(s.award_entries) AS award_entry,
       unnest(s.award_members) AS award_member, unnest(s.clawed_back_ats) AS clawed_back_at,
       unnest(s.updated_ats) AS updated_at
FROM loyalty.challenge_state s
WHERE loyalty.program_visible(s.program_id)
UNION ALL
SELECT p.member_id, p.challenge_id, p.period_start, p.period_end, p.program_id, p.value, p.items, p.last_item,
       p.completed_at, p.completions, p.award_entry, p.award_member, p.clawed_back_at, p.updated_at
FROM loyalty.challenge_periods p
WHERE loyalty.program_visible(p.program_id);
