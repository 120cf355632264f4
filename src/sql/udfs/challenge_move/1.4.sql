CREATE FUNCTION loyalty.challenge_move(member bigint, entry bigint, fact text, amount numeric,
                                       occurred_at timestamptz, channel text, lines jsonb, detail text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    a record;
    v_moves jsonb;
    v_done record;
    v_c bigint[];
    v_goal numeric[];
    v_delta numeric[];
    v_items jsonb[];
    v_start timestamptz[];
    v_end timestamptz[];
    n integer := 0;
BEGIN
    -- the caller holds the member's lock (the write that made the fact)
    SELECT x.program_id, x.status, x.segment, loyalty.tier_rank(x.tier) AS tier_rank, p.time_zone, m.joined_at
    INTO a
    FROM loyalty.accounts x JOIN loyalty.programs p ON p.program_id = x.program_id
    JOIN loyalty.members m ON m.member_id = x.member_id
    WHERE x.member_id = challenge_move.member;
    IF NOT FOUND OR a.status <> 'active' THEN
        RETURN 0;
    END IF;

    -- Every active challenge the fact moves, with what it adds and the
    -- period it falls in (most facts move few or none: then nothing more
    -- runs) ...
    WITH lines AS (
        SELECT l.value ->> 'category' AS category, (l.value ->> 'amount')::numeric AS amount
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(challenge_move.lines) = 'array'
                                       THEN challenge_move.lines ELSE '[]' END) l
        UNION ALL
        SELECT NULL, challenge_move.amount WHERE challenge_move.lines IS NULL
    ), total AS MATERIALIZED (
        SELECT coalesce(sum(l.amount) FILTER (WHERE l.amount > 0), 0) AS spend FROM lines l
    ), local AS (
        SELECT (challenge_move.occurred_at AT TIME ZONE a.time_zone) AS t
    ), x AS (
        SELECT c.challenge_id, c.goal,
               CASE c.metric
                   WHEN 'purchases' THEN 1
                   WHEN 'spend' THEN e.spend
                   WHEN 'activities' THEN 1
                   WHEN 'referrals' THEN 1
                   ELSE NULL END AS delta,
               CASE c.metric
                   WHEN 'visits' THEN jsonb_build_object(to_char(lt.t, 'YYYY-MM-DD'), 1)
                   WHEN 'streak_weeks' THEN jsonb_build_object(to_char(date_trunc('week', lt.t), 'YYYY-MM-DD'), 1)
                   WHEN 'categories' THEN
                       (SELECT jsonb_object_agg(d.category, 1)
                        FROM (SELECT DISTINCT l.category FROM lines l
                              WHERE l.category IS NOT NULL AND l.amount > 0
                                AND (c.categories IS NULL OR l.category = ANY (c.categories))) d)
                   ELSE NULL END AS items,
               w.period_start, w.period_end
        FROM loyalty.challenges c
        CROSS JOIN local lt
        CROSS JOIN LATERAL (
            -- the eligible amount: the whole purchase, or its lines of the categories
            SELECT CASE WHEN c.categories IS NULL THEN (SELECT t.spend FROM total t)
                        ELSE (SELECT coalesce(sum(l.amount), 0) FROM lines l
                              WHERE l.amount > 0 AND l.category = ANY (c.categories)) END AS spend
        ) e
        CROSS JOIN LATERAL (
            -- a fact continues the instance of 'days' it falls in, and the
            -- unfinished streak whose last week is this week or the one before
            SELECT coalesce(q.period_start, lower(r.p)) AS period_start,
                   CASE WHEN q.period_start IS NOT NULL THEN q.period_end ELSE upper(r.p) END AS period_end
            FROM loyalty.challenge_period(c.period, c.period_days, c.valid_from, c.valid_until,
                                          challenge_move.occurred_at, a.time_zone, a.joined_at) r(p)
            LEFT JOIN LATERAL (
                SELECT p.period_start, p.period_end FROM loyalty.challenge_progress p
                WHERE p.member_id = challenge_move.member AND p.challenge_id = c.challenge_id
                  AND c.period IN ('days', 'streak')
                  AND CASE WHEN c.period = 'days'
                           THEN p.period_start <= challenge_move.occurred_at AND challenge_move.occurred_at < p.period_end
                           ELSE p.completed_at IS NULL
                                AND p.last_item::date >= (date_trunc('week', lt.t) - interval '1 week')::date END
                ORDER BY p.period_start DESC LIMIT 1) q ON true
        ) w
        WHERE c.program_id = a.program_id AND c.active
          -- (conditions on the challenge alone first: they filter the scan)
          AND c.metric = ANY (CASE challenge_move.fact
                                  WHEN 'purchase' THEN ARRAY['purchases', 'spend', 'visits', 'categories', 'streak_weeks']
                                  WHEN 'activity' THEN ARRAY['activities']
                                  WHEN 'referral' THEN ARRAY['referrals'] END)
          AND (c.channels IS NULL OR challenge_move.channel = ANY (c.channels))
          AND (c.valid_from IS NULL OR challenge_move.occurred_at >= c.valid_from)
          AND (c.valid_until IS NULL OR challenge_move.occurred_at < c.valid_until)
          AND CASE challenge_move.fact
                  WHEN 'purchase' THEN e.spend > 0 AND (c.min_amount IS NULL OR e.spend >= c.min_amount)
                       AND (c.metric <> 'categories' OR challenge_move.lines IS NOT NULL)
                  WHEN 'activity' THEN c.activities IS NULL OR challenge_move.detail = ANY (c.activities)
                  ELSE true END
          AND (c.segments IS NULL OR a.segment = ANY (c.segments))
          AND (c.min_tier_rank IS NULL OR a.tier_rank >= c.min_tier_rank)
          AND (c.tags IS NULL OR EXISTS (SELECT FROM loyalty.member_tags t
                                         WHERE t.member_id = challenge_move.member AND t.tag = ANY (c.tags)))
          -- the challenge's control group is held out
          AND (c.control_share = 0 OR NOT loyalty.in_control(challenge_move.member, c.control_seed, c.control_share::float8))
          -- a challenge that does not repeat is completed once
          AND (c.repeating OR NOT EXISTS (SELECT FROM loyalty.challenge_progress p
                                          WHERE p.member_id = challenge_move.member AND p.challenge_id = c.challenge_id
                                            AND p.completed_at IS NOT NULL))
    )
    SELECT array_agg(x.challenge_id ORDER BY x.challenge_id), array_agg(x.goal ORDER BY x.challenge_id),
           array_agg(x.delta ORDER BY x.challenge_id), array_agg(x.items ORDER BY x.challenge_id),
           array_agg(x.period_start ORDER BY x.challenge_id), array_agg(x.period_end ORDER BY x.challenge_id)
    INTO v_c, v_goal, v_delta, v_items, v_start, v_end
    FROM x
    WHERE challenge_move.occurred_at >= x.period_start
      AND (x.period_end IS NULL OR challenge_move.occurred_at < x.period_end);
    IF v_c IS NULL THEN
        RETURN 0;
    END IF;

    -- ... added to the member's progress in one statement
    WITH x AS (
        SELECT * FROM unnest(v_c, v_goal, v_delta, v_items, v_start, v_end)
                      AS x(challenge_id, goal, delta, items, period_start, period_end)
    ), moved AS (
        INSERT INTO loyalty.challenge_progress AS p
            (member_id, challenge_id, period_start, period_end, program_id, value, items, last_item, updated_at)
        SELECT challenge_move.member, x.challenge_id, x.period_start, x.period_end, a.program_id,
               coalesce(x.delta, (SELECT count(*) FROM jsonb_object_keys(x.items))), x.items,
               (SELECT max(k) FROM jsonb_object_keys(x.items) k), now()
        FROM x
        ON CONFLICT (member_id, challenge_id, period_start) DO UPDATE
        -- items: each day, week or category with the number of facts behind it
        SET items = CASE WHEN EXCLUDED.items IS NULL THEN p.items
                         ELSE p.items || (SELECT jsonb_object_agg(k, coalesce((p.items ->> k)::numeric, 0) + 1)
                                          FROM jsonb_object_keys(EXCLUDED.items) k) END,
            value = CASE WHEN EXCLUDED.items IS NULL THEN p.value + EXCLUDED.value
                         ELSE p.value + (SELECT count(*) FROM jsonb_object_keys(EXCLUDED.items) k WHERE NOT p.items ? k) END,
            last_item = greatest(p.last_item, EXCLUDED.last_item),
            updated_at = EXCLUDED.updated_at
        RETURNING p.challenge_id, p.period_start, p.value, p.completed_at
    ), m AS (
        SELECT moved.*, x.delta, x.items, x.goal FROM moved JOIN x ON x.challenge_id = moved.challenge_id
    ), recorded AS (
        -- what a purchase moved, so that its refund can take it back
        INSERT INTO loyalty.challenge_facts (member_id, entry_id, program_id, moves)
        SELECT challenge_move.member, challenge_move.entry, a.program_id,
               jsonb_agg(jsonb_build_object('challenge_id', m.challenge_id, 'period_start', m.period_start,
                                            'delta', m.delta, 'items', m.items))
        FROM m
        WHERE challenge_move.entry IS NOT NULL AND challenge_move.fact = 'purchase'
        HAVING count(*) > 0
        RETURNING 1
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('challenge_id', m.challenge_id, 'period_start', m.period_start))
                    FILTER (WHERE m.value >= m.goal AND m.completed_at IS NULL), '[]'),
           (SELECT count(*) FROM recorded)
    INTO v_moves, n
    FROM m;

    n := 0;
    FOR v_done IN SELECT (d ->> 'challenge_id')::bigint AS challenge_id, (d ->> 'period_start')::timestamptz AS period_start
                  FROM jsonb_array_elements(v_moves) d ORDER BY 1 LOOP
        PERFORM loyalty.challenge_complete(challenge_move.member, v_done.challenge_id, v_done.period_start,
                                           challenge_move.occurred_at);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
