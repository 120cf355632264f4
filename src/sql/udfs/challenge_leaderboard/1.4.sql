CREATE VIEW loyalty.challenge_leaderboard AS
SELECT p.program_id, p.challenge_id, c.code, c.name, p.period_start, p.period_end, p.member_id, p.value, c.goal,
       p.completed_at,
       rank() OVER (PARTITION BY p.challenge_id, p.period_start
                    ORDER BY p.value DESC, p.completed_at NULLS LAST)::bigint AS rank
FROM loyalty.challenge_progress p
JOIN loyalty.challenges c ON c.challenge_id = p.challenge_id
JOIN loyalty.accounts a ON a.member_id = p.member_id
WHERE a.status = 'active' AND loyalty.program_visible(p.program_id);
