CREATE FUNCTION loyalty.run_journeys_batch(program bigint, as_of timestamptz, after_member bigint, batch_size integer)
RETURNS TABLE (last_member bigint, members bigint, emitted bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_sel bigint[];
    v_tz text;
    v_n bigint := 0;
    v_k bigint;
    v_citus boolean := false;
    v_i integer := 0;
BEGIN
    PERFORM loyalty.require_program(run_journeys_batch.program);
    SELECT p.time_zone INTO v_tz FROM loyalty.programs p WHERE p.program_id = run_journeys_batch.program;
    SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}') INTO v_ids
    FROM (SELECT a.member_id FROM loyalty.accounts a
          WHERE a.program_id = run_journeys_batch.program AND a.member_id > after_member AND a.status = 'active'
          ORDER BY a.member_id LIMIT batch_size) x;
    -- (the write path's own test: whether loyalty.accounts is a Citus table)
    v_citus := loyalty.books_distributed();
    -- the whole batch at once; on Citus one member at a time (each
    -- statement then runs on that member's worker)
    LOOP
    IF v_citus THEN
        v_i := v_i + 1;
        EXIT WHEN v_i > cardinality(v_ids);
        v_sel := ARRAY[v_ids[v_i]];
    ELSE
        EXIT WHEN v_i > 0;
        v_i := 1;
        v_sel := v_ids;
    END IF;
    -- (EXECUTE: on Citus the member is a constant, so the statement is
    -- planned for that member's worker)
    EXECUTE format($sql$
    WITH d AS (
        SELECT a.member_id, a.balance, a.tier, a.segment, a.segment_since, a.risk_band, a.last_purchase_at,
               a.tier_grace_until, m.joined_at, m.birthday, m.preferred_channel, m.consent,
               ($2 AT TIME ZONE $3)::date AS today, (m.joined_at AT TIME ZONE $3)::date AS joined,
               extract(year FROM ($2 AT TIME ZONE $3))::int AS y,
               j.kind, j.step, j.days, j.segments, r.changed_on, r.from_band, r.to_band
        FROM loyalty.accounts a
        JOIN loyalty.members m ON m.member_id = a.member_id
        -- a step's control group gets nothing (campaign_results compares it)
        JOIN loyalty.journey_steps j ON j.program_id = $1 AND j.active
             AND (j.control_share = 0 OR NOT loyalty.in_control(a.member_id, j.control_seed, j.control_share::float8))
        -- the member's last rise of its churn-risk band
        LEFT JOIN (SELECT DISTINCT ON (c.member_id) c.member_id, c.changed_on, c.from_band, c.to_band
                   FROM loyalty.risk_band_changes c
                   WHERE %s AND array_position(ARRAY['low', 'medium', 'high'], c.to_band)
                                > array_position(ARRAY['low', 'medium', 'high'], c.from_band)
                   ORDER BY c.member_id, c.changed_on DESC) r ON r.member_id = a.member_id
        WHERE %s
    ), e AS (
        -- the next birthday and anniversary on or after today (29 February:
        -- the 28th in other years)
        SELECT d.*,
               CASE WHEN (d.birthday + make_interval(years => d.y - extract(year FROM d.birthday)::int))::date >= d.today
                    THEN (d.birthday + make_interval(years => d.y - extract(year FROM d.birthday)::int))::date
                    ELSE (d.birthday + make_interval(years => d.y + 1 - extract(year FROM d.birthday)::int))::date
                    END AS next_birthday,
               CASE WHEN (d.joined + make_interval(years => d.y - extract(year FROM d.joined)::int))::date >= d.today
                    THEN d.y - extract(year FROM d.joined)::int
                    ELSE d.y + 1 - extract(year FROM d.joined)::int END AS years
        FROM d
    ), f AS (
        SELECT e.*, (e.joined + make_interval(years => e.years))::date AS next_anniversary FROM e
    ), due AS (
        -- Every step due, with the occasion that makes it due (the event's
        -- dedup key: once per member and occasion; dates in the key are ISO,
        -- whatever the session's DateStyle).  An occasion stays due for a
        -- week, so a job that missed days catches up.
        SELECT f.*,
               CASE f.kind
                WHEN 'welcome' THEN
                    CASE WHEN f.joined_at + make_interval(days => f.days) <= $2
                          AND f.joined_at + make_interval(days => f.days + 7) > $2 THEN 'welcome:' || f.step END
                WHEN 'inactive' THEN
                    CASE WHEN coalesce(f.last_purchase_at, f.joined_at) + make_interval(days => f.days) <= $2
                         THEN 'inactive:' || f.step || ':' || to_char(coalesce(f.last_purchase_at, f.joined_at) AT TIME ZONE $3, 'YYYY-MM-DD') END
                WHEN 'at_risk' THEN
                    -- the stored churn-risk band rose (refresh_segments), days after at the earliest
                    CASE WHEN f.changed_on + f.days <= f.today AND f.changed_on + f.days + 7 > f.today
                         THEN 'at_risk:' || f.step || ':' || to_char(f.changed_on, 'YYYY-MM-DD') END
                WHEN 'win_back' THEN
                    CASE WHEN f.segment = ANY (coalesce(f.segments, ARRAY['At Risk', 'Cannot Lose Them', 'Hibernating']))
                          AND f.segment_since + f.days <= f.today
                         THEN 'win_back:' || f.step || ':' || to_char(f.segment_since, 'YYYY-MM-DD') END
                WHEN 'birthday' THEN
                    CASE WHEN f.next_birthday - f.days <= f.today AND f.today <= f.next_birthday
                         THEN 'birthday:' || f.step || ':' || to_char(f.next_birthday, 'YYYY-MM-DD') END
                WHEN 'anniversary' THEN
                    CASE WHEN f.next_anniversary - f.days <= f.today AND f.today <= f.next_anniversary AND f.years > 0
                         THEN 'anniversary:' || f.step || ':' || f.years END
                WHEN 'tier_expiring' THEN
                    CASE WHEN f.tier_grace_until > $2 AND f.tier_grace_until - make_interval(days => f.days) <= $2
                         THEN 'tier_expiring:' || f.step || ':' || to_char(f.tier_grace_until AT TIME ZONE $3, 'YYYY-MM-DD') END
                END AS occasion,
               CASE f.kind
                    WHEN 'birthday' THEN jsonb_build_object('birthday', f.next_birthday)
                    WHEN 'anniversary' THEN jsonb_build_object('anniversary', f.next_anniversary, 'years', f.years)
                    WHEN 'tier_expiring' THEN jsonb_build_object('tier_grace_until', f.tier_grace_until)
                    WHEN 'inactive' THEN jsonb_build_object('inactive_days', f.today - (coalesce(f.last_purchase_at, f.joined_at) AT TIME ZONE $3)::date)
                    WHEN 'win_back' THEN jsonb_build_object('segment_since', f.segment_since)
                    WHEN 'at_risk' THEN jsonb_build_object('from_band', f.from_band, 'to_band', f.to_band, 'changed_on', f.changed_on)
                    ELSE '{}'::jsonb END AS detail
        FROM f
    ), ins AS (
        INSERT INTO loyalty.events (member_id, program_id, kind, payload, dedup_key)
        SELECT due.member_id, $1, 'journey.' || due.kind,
               jsonb_build_object('journey', due.kind, 'step', due.step, 'days', due.days,
                                  'member_id', due.member_id, 'program_id', $1,
                                  'preferred_channel', due.preferred_channel, 'consent', due.consent,
                                  'balance', due.balance::bigint, 'tier', (due.tier).name, 'segment', due.segment,
                                  'risk_band', due.risk_band, 'last_purchase_at', due.last_purchase_at,
                                  'joined_at', due.joined_at) || due.detail,
               due.occasion
        FROM due
        WHERE due.occasion IS NOT NULL
        ON CONFLICT (member_id, kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM ins
    $sql$, CASE WHEN v_citus THEN format('c.member_id = %s', v_sel[1]) ELSE 'c.member_id = ANY ($4)' END,
           CASE WHEN v_citus THEN format('a.member_id = %s AND m.member_id = %s', v_sel[1], v_sel[1])
                ELSE 'a.member_id = ANY ($4) AND m.member_id = ANY ($4)' END)
    INTO v_k USING run_journeys_batch.program, as_of, v_tz, v_sel;
    v_n := v_n + v_k;
    END LOOP;
    IF v_n > 0 THEN
        PERFORM pg_notify('loyalty_events', jsonb_build_object('kind', 'journey', 'events', v_n)::text);
    END IF;
    RETURN QUERY SELECT v_ids[cardinality(v_ids)], cardinality(v_ids)::bigint, v_n;
END $$;
