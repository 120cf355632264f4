CREATE FUNCTION loyalty.member_progress(member bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    a record;
    v_challenges jsonb;
    v_badges jsonb;
BEGIN
    PERFORM loyalty.require_member(member_progress.member);
    IF member IS NULL THEN
        RAISE EXCEPTION 'member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT x.program_id, x.status, x.segment, loyalty.tier_rank(x.tier) AS tier_rank, p.time_zone, m.joined_at
    INTO a
    FROM loyalty.accounts x JOIN loyalty.programs p ON p.program_id = x.program_id
    JOIN loyalty.members m ON m.member_id = x.member_id
    WHERE x.member_id = member_progress.member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    -- every challenge open to the member now: its current period (an
    -- instance in progress, or the one a fact now would open) and progress
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'challenge_id', c.challenge_id, 'code', c.code, 'name', c.name, 'metric', c.metric,
               'value', coalesce(q.value, 0), 'goal', c.goal,
               'percent', least(round(100 * coalesce(q.value, 0) / c.goal, 1), 100),
               'period_start', coalesce(q.period_start, lower(r.p)),
               'period_end', coalesce(q.deadline, upper(r.p)),
               'time_left', coalesce(q.deadline, upper(r.p)) - now(),
               'completed_at', q.completed_at, 'reward_points', c.reward_points::bigint, 'badge', c.badge,
               'repeating', c.repeating)
               ORDER BY c.code), '[]')
    INTO v_challenges
    FROM loyalty.challenges c
    CROSS JOIN LATERAL loyalty.challenge_period(c.period, c.period_days, c.valid_from, c.valid_until, now(),
                                                a.time_zone, a.joined_at) r(p)
    LEFT JOIN LATERAL (
        SELECT p.value, p.period_start, p.completed_at,
               -- a streak must go on by the end of the week after its last one
               CASE WHEN c.period = 'streak' THEN (p.last_item::timestamp + interval '2 weeks') AT TIME ZONE a.time_zone
                    ELSE p.period_end END AS deadline
        FROM loyalty.challenge_progress p
        WHERE p.member_id = member_progress.member AND p.challenge_id = c.challenge_id
          AND CASE c.period
                  WHEN 'days' THEN p.period_start <= now() AND now() < p.period_end
                  WHEN 'streak' THEN (p.completed_at IS NULL OR p.completed_at >= date_trunc('week', now() AT TIME ZONE a.time_zone) AT TIME ZONE a.time_zone)
                       AND p.last_item::date >= (date_trunc('week', now() AT TIME ZONE a.time_zone) - interval '1 week')::date
                  ELSE p.period_start = lower(r.p) END
        ORDER BY p.period_start DESC LIMIT 1) q ON true
    WHERE c.program_id = a.program_id AND c.active
      AND (c.valid_from IS NULL OR now() >= c.valid_from)
      AND (c.valid_until IS NULL OR now() < c.valid_until)
      AND now() >= lower(r.p) AND (upper(r.p) IS NULL OR now() < upper(r.p))
      AND (c.segments IS NULL OR a.segment = ANY (c.segments))
      AND (c.min_tier_rank IS NULL OR a.tier_rank >= c.min_tier_rank)
      AND (c.tags IS NULL OR EXISTS (SELECT FROM loyalty.member_tags t
                                     WHERE t.member_id = member_progress.member AND t.tag = ANY (c.tags)))
      AND (c.control_share = 0 OR NOT loyalty.in_control(member_progress.member, c.control_seed, c.control_share::float8))
      -- one that does not repeat, completed in an earlier period, is done
      AND (c.repeating OR q.completed_at IS NOT NULL
           OR NOT EXISTS (SELECT FROM loyalty.challenge_progress p
                          WHERE p.member_id = member_progress.member AND p.challenge_id = c.challenge_id
                            AND p.completed_at IS NOT NULL));
    SELECT coalesce(jsonb_agg(jsonb_build_object('badge', b.badge, 'earned_at', b.earned_at,
                                                 'challenge_id', b.challenge_id, 'challenge', c.name)
                              ORDER BY b.earned_at, b.badge), '[]')
    INTO v_badges
    FROM loyalty.member_badges b LEFT JOIN loyalty.challenges c ON c.challenge_id = b.challenge_id
    WHERE b.member_id = member_progress.member;
    RETURN jsonb_build_object('challenges', v_challenges, 'badges', v_badges);
END $$;
