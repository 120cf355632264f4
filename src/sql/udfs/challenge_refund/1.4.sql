CREATE FUNCTION loyalty.challenge_refund(member bigint, entry bigint, standing numeric)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    f loyalty.challenge_facts;
    mv record;
    p loyalty.challenge_progress;
    v_clawback boolean;
    v_share numeric;
    n integer := 0;
BEGIN
    -- the caller holds the member's lock (the refund)
    SELECT * INTO f FROM loyalty.challenge_facts x
    WHERE x.member_id = challenge_refund.member AND x.entry_id = challenge_refund.entry;
    IF NOT FOUND OR challenge_refund.standing >= f.standing THEN
        RETURN 0;
    END IF;
    SELECT pr.challenge_clawback INTO v_clawback FROM loyalty.programs pr WHERE pr.program_id = f.program_id;
    -- spend goes back in proportion to the amount refunded; a purchase, its
    -- day, week and categories only with the last of its amount
    v_share := f.standing - challenge_refund.standing;
    FOR mv IN SELECT x.challenge_id, x.period_start, x.delta, x.items, c.metric, c.goal, c.code
              FROM unnest(f.challenge_ids, f.period_starts, f.deltas, f.items) AS x(challenge_id, period_start, delta, items)
              JOIN loyalty.challenges c ON c.challenge_id = x.challenge_id
              ORDER BY 1 LOOP
        CONTINUE WHEN mv.metric <> 'spend' AND challenge_refund.standing > 0;
        SELECT * INTO p FROM loyalty.challenge_progress x
        WHERE x.member_id = challenge_refund.member AND x.challenge_id = mv.challenge_id
          AND x.period_start = mv.period_start;
        CONTINUE WHEN NOT FOUND;
        -- an item (day, week, category) goes when its last fact does
        SELECT CASE WHEN mv.items IS NULL THEN p.items
                    ELSE (SELECT coalesce(jsonb_object_agg(e.key, e.value::numeric - coalesce((mv.items ->> e.key)::numeric, 0))
                                           FILTER (WHERE e.value::numeric > coalesce((mv.items ->> e.key)::numeric, 0)), '{}')
                          FROM jsonb_each_text(p.items) e) END,
               CASE WHEN mv.metric = 'spend' THEN greatest(p.value - mv.delta * v_share, 0)
                    WHEN mv.items IS NULL THEN greatest(p.value - mv.delta, 0)
                    ELSE (SELECT count(*) FROM jsonb_each_text(p.items) e
                          WHERE e.value::numeric > coalesce((mv.items ->> e.key)::numeric, 0)) END
        INTO p.items, p.value;
        p.updated_at := now();
        -- the progress no longer reaches the goal: a completion that paid
        -- nothing is undone; one that paid points is undone and its points
        -- taken back by the refund policy when the program claws back,
        -- else it stands
        IF p.completed_at IS NULL OR p.value >= mv.goal OR (p.award_entry IS NOT NULL AND NOT v_clawback) THEN
            PERFORM loyalty.challenge_progress_put(p);
            CONTINUE;
        END IF;
        IF p.award_entry IS NOT NULL THEN
            -- (an award carried by a merge is reversed as the absorbed
            -- member's entry: the reversal takes the points from the survivor)
            PERFORM loyalty.reverse(coalesce(p.award_member, member), p.award_entry, NULL::numeric, NULL::numeric,
                                    'challenge:' || mv.code, 'challenge no longer completed (refund)',
                                    'challenge-clawback:' || p.award_entry);
        END IF;
        p.completed_at := NULL;
        p.award_entry := NULL;
        p.award_member := NULL;
        p.clawed_back_at := now();
        PERFORM loyalty.challenge_progress_put(p);
        DELETE FROM loyalty.member_badges b
        WHERE b.member_id = challenge_refund.member AND b.challenge_id = mv.challenge_id
          AND b.period_start = mv.period_start;
        n := n + 1;
    END LOOP;
    UPDATE loyalty.challenge_facts x SET standing = challenge_refund.standing
    WHERE x.member_id = challenge_refund.member AND x.entry_id = challenge_refund.entry;
    RETURN n;
END $$;
