CREATE FUNCTION loyalty.challenge_complete(member bigint, challenge bigint, period_start timestamptz, at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    c loyalty.challenges;
    p loyalty.challenge_progress;
    v_entry bigint;
    v_badge boolean := false;
BEGIN
    SELECT * INTO c FROM loyalty.challenges x WHERE x.challenge_id = challenge_complete.challenge;
    SELECT * INTO p FROM loyalty.challenge_progress x
    WHERE x.member_id = challenge_complete.member AND x.challenge_id = challenge_complete.challenge
      AND x.period_start = challenge_complete.period_start AND x.completed_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    p.completed_at := challenge_complete.at;
    p.completions := p.completions + 1;
    p.updated_at := now();
    -- the award, once per completion: a completion undone and made again is
    -- a new completion with its own key
    IF c.reward_points IS NOT NULL THEN
        v_entry := loyalty.award(member, c.reward_points::numeric, 'challenge: ' || c.name, NULL,
                                 'challenge:' || c.code,
                                 'challenge:' || c.challenge_id || ':' || extract(epoch FROM p.period_start)::text
                                     || ':' || p.completions,
                                 challenge_complete.at);
        p.award_entry := v_entry;
        p.award_member := NULL;
    END IF;
    PERFORM loyalty.challenge_progress_put(p);
    -- a badge is earned once
    IF c.badge IS NOT NULL THEN
        INSERT INTO loyalty.member_badges (member_id, badge, program_id, challenge_id, period_start, earned_at)
        VALUES (member, c.badge, c.program_id, c.challenge_id, p.period_start, challenge_complete.at)
        ON CONFLICT DO NOTHING;
        v_badge := FOUND;
    END IF;
    PERFORM loyalty.emit_event(member, 'challenge.completed',
        jsonb_build_object('challenge_id', c.challenge_id, 'code', c.code, 'name', c.name, 'metric', c.metric,
                           'goal', c.goal, 'value', p.value, 'period_start', p.period_start,
                           'period_end', p.period_end, 'points', c.reward_points::bigint, 'entry_id', v_entry,
                           'badge', c.badge),
        'challenge:' || c.challenge_id || ':' || extract(epoch FROM p.period_start)::text || ':' || p.completions);
    IF v_badge THEN
        PERFORM loyalty.emit_event(member, 'badge.earned',
            jsonb_build_object('badge', c.badge, 'challenge_id', c.challenge_id, 'code', c.code, 'name', c.name),
            'badge:' || c.badge);
    END IF;
END $$;
