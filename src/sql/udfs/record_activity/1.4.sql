CREATE FUNCTION loyalty.record_activity(member bigint, activity text, reference text DEFAULT NULL,
                                        idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_rule loyalty.activity_rules;
    v_now timestamptz := now();
    v_local timestamp;
    v_tz text;
    v_entry bigint;
    v_outcome text := 'awarded';
    v_key text;
BEGIN
    PERFORM loyalty.require_member(record_activity.member);
    IF member IS NULL OR activity IS NULL THEN
        RAISE EXCEPTION 'member and activity must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the member's lock: caps are counted and written under it
    SELECT a.program_id INTO v_program FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        v_key := 'activity:' || idempotency_key;
        SELECT act.points INTO v_rule.points FROM loyalty.activities act
        JOIN loyalty.ledger l ON l.member_id OPERATOR(pg_catalog.=) act.member_id
                             AND l.entry_id OPERATOR(pg_catalog.=) act.entry_id
        WHERE act.member_id OPERATOR(pg_catalog.=) member AND l.idempotency_key OPERATOR(pg_catalog.=) v_key;
        IF FOUND THEN
            RETURN v_rule.points;   -- a replay: the first award stands
        END IF;
    END IF;
    SELECT * INTO v_rule FROM loyalty.activity_rules r
    WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity AND r.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % awards nothing for activity "%"', v_program, activity
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Define it with loyalty.set_activity_rule().';
    END IF;
    SELECT p.time_zone INTO v_tz FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) v_program;
    v_local := v_now AT TIME ZONE v_tz;
    -- caps count awarded activities in calendar periods of the program's time zone
    IF (v_rule.cap_lifetime IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded') >= v_rule.cap_lifetime)
       OR (v_rule.cap_per_month IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('month', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_month)
       OR (v_rule.cap_per_week IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('week', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_week)
       OR (v_rule.cap_per_day IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('day', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_day) THEN
        v_outcome := 'capped';
    ELSIF v_rule.budget IS NOT NULL THEN
        -- the program budget is one row: take from it atomically
        UPDATE loyalty.activity_rules r
        SET budget_used = (r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint)::loyalty.points
        WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity
          AND r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint OPERATOR(pg_catalog.<=) r.budget::bigint;
        IF NOT FOUND THEN
            v_outcome := 'budget_exhausted';
        END IF;
    END IF;
    IF v_outcome = 'awarded' THEN
        v_entry := loyalty.award(member, v_rule.points, 'activity: ' || activity, NULL, reference, v_key);
    END IF;
    INSERT INTO loyalty.activities (member_id, program_id, activity, points, entry_id, outcome, reference, occurred_at)
    VALUES (member, v_program, activity, CASE WHEN v_outcome = 'awarded' THEN v_rule.points ELSE '0' END,
            v_entry, v_outcome, reference, v_now);
    -- an activity counts toward challenges whatever its points (caps, budget)
    IF (SELECT p.has_challenges FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) v_program) THEN
        PERFORM loyalty.challenge_move(member, NULL, 'activity', NULL, v_now, NULL, NULL, activity);
    END IF;
    RETURN CASE WHEN v_outcome = 'awarded' THEN v_rule.points::bigint ELSE 0 END;
END $$;
