CREATE FUNCTION loyalty.merge_engagement(survivor bigint, absorbed bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    r record;
    q loyalty.challenge_progress;
    v_items jsonb;
    v_goal numeric;
    v_metric text;
BEGIN
    -- Row by row, each statement on one member's rows: on Citus the two
    -- members may live on different workers.  The caller holds both locks.

    -- coupons: a use held at a checkout is released, as the absorbed
    -- member's points holds are (the checkout redeems again on the
    -- survivor); captured ones stay with the orders they were on, counted in
    -- the survivor's limits, given back through either member
    FOR r IN SELECT x.redemption_id FROM loyalty.coupon_redemptions x
             WHERE x.member_id = merge_engagement.absorbed AND x.status = 'held' ORDER BY x.redemption_id LOOP
        PERFORM loyalty.release_coupon(merge_engagement.absorbed, r.redemption_id);
    END LOOP;

    -- tags: the survivor has both members' tags (the earlier tagging kept)
    FOR r IN SELECT * FROM loyalty.member_tags t WHERE t.member_id = merge_engagement.absorbed ORDER BY t.tag LOOP
        INSERT INTO loyalty.member_tags AS t (member_id, tag, program_id, tagged_at, tagged_by)
        VALUES (merge_engagement.survivor, r.tag, r.program_id, r.tagged_at, r.tagged_by)
        ON CONFLICT (member_id, tag) DO UPDATE SET tagged_at = least(t.tagged_at, EXCLUDED.tagged_at);
    END LOOP;
    DELETE FROM loyalty.member_tags t WHERE t.member_id = merge_engagement.absorbed;

    -- badges: each one once, as first earned by either
    FOR r IN SELECT * FROM loyalty.member_badges b WHERE b.member_id = merge_engagement.absorbed ORDER BY b.badge LOOP
        INSERT INTO loyalty.member_badges AS b (member_id, badge, program_id, challenge_id, period_start, earned_at)
        VALUES (merge_engagement.survivor, r.badge, r.program_id, r.challenge_id, r.period_start, r.earned_at)
        ON CONFLICT (member_id, badge) DO UPDATE
        SET challenge_id = EXCLUDED.challenge_id, period_start = EXCLUDED.period_start, earned_at = EXCLUDED.earned_at
        WHERE EXCLUDED.earned_at < b.earned_at;
    END LOOP;
    DELETE FROM loyalty.member_badges b WHERE b.member_id = merge_engagement.absorbed;

    -- challenge progress: a period only the absorbed member had moves; one
    -- both had adds up (days, weeks and categories counted once, with the
    -- facts behind each summed), keeps the earlier completion and its award.
    -- A sum that reaches the goal completes on the next fact, as any
    -- progress does: a merge pays nothing.
    FOR r IN SELECT * FROM loyalty.challenge_progress p WHERE p.member_id = merge_engagement.absorbed
             ORDER BY p.challenge_id, p.period_start LOOP
        SELECT * INTO q FROM loyalty.challenge_progress p
        WHERE p.member_id = merge_engagement.survivor AND p.challenge_id = r.challenge_id
          AND p.period_start = r.period_start;
        IF NOT FOUND THEN
            q := r;
            q.member_id := merge_engagement.survivor;
            q.award_member := CASE WHEN r.award_entry IS NOT NULL THEN coalesce(r.award_member, merge_engagement.absorbed) END;
        ELSE
            IF q.items IS NULL OR r.items IS NULL THEN
                q.items := coalesce(q.items, r.items);
                q.value := q.value + r.value;
            ELSE
                SELECT jsonb_object_agg(k, coalesce((q.items ->> k)::numeric, 0) + coalesce((r.items ->> k)::numeric, 0)),
                       count(*)
                INTO q.items, q.value
                FROM (SELECT jsonb_object_keys(q.items) UNION SELECT jsonb_object_keys(r.items)) x(k);
            END IF;
            q.last_item := greatest(q.last_item, r.last_item);
            q.period_end := CASE WHEN q.period_end IS NULL OR r.period_end IS NULL THEN NULL
                                 ELSE greatest(q.period_end, r.period_end) END;
            IF q.completed_at IS NULL OR r.completed_at < q.completed_at THEN
                q.completed_at := r.completed_at;
                q.award_entry := r.award_entry;
                -- an award carried over stays in the ledger it was paid to: the
                -- absorbed member's, or, carried to it by an earlier merge, the
                -- one it names
                q.award_member := CASE WHEN r.award_entry IS NOT NULL
                                       THEN coalesce(r.award_member, merge_engagement.absorbed) END;
            END IF;
            q.completions := q.completions + r.completions;
            q.clawed_back_at := greatest(q.clawed_back_at, r.clawed_back_at);
        END IF;
        q.updated_at := now();
        PERFORM loyalty.challenge_progress_put(q);
    END LOOP;
    DELETE FROM loyalty.challenge_state s WHERE s.member_id = merge_engagement.absorbed;
    DELETE FROM loyalty.challenge_periods p WHERE p.member_id = merge_engagement.absorbed;
    -- what the absorbed member's purchases moved, for their refunds (which
    -- the survivor now takes)
    FOR r IN SELECT * FROM loyalty.challenge_facts f WHERE f.member_id = merge_engagement.absorbed ORDER BY f.entry_id LOOP
        INSERT INTO loyalty.challenge_facts (member_id, entry_id, program_id, challenge_ids, period_starts, deltas,
                                             items, standing)
        VALUES (merge_engagement.survivor, r.entry_id, r.program_id, r.challenge_ids, r.period_starts, r.deltas,
                r.items, r.standing);
    END LOOP;
    DELETE FROM loyalty.challenge_facts f WHERE f.member_id = merge_engagement.absorbed;

    -- survey answers: the survivor keeps its own, and takes those of surveys
    -- it did not answer (one answer per member and survey)
    FOR r IN SELECT * FROM loyalty.survey_responses s WHERE s.member_id = merge_engagement.absorbed
             ORDER BY s.survey_id LOOP
        INSERT INTO loyalty.survey_responses (member_id, survey_id, program_id, score, comment, channel, answers,
                                              tier, segment, entry_id, responded_at)
        VALUES (merge_engagement.survivor, r.survey_id, r.program_id, r.score, r.comment, r.channel, r.answers,
                r.tier, r.segment, r.entry_id, r.responded_at)
        ON CONFLICT (member_id, survey_id) DO NOTHING;
        IF FOUND THEN
            DELETE FROM loyalty.survey_responses s
            WHERE s.member_id = merge_engagement.absorbed AND s.survey_id = r.survey_id;
        END IF;
    END LOOP;
END $$;
