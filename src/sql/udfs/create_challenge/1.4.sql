CREATE FUNCTION loyalty.create_challenge(
    program bigint, code text, name text, metric text, goal anycompatible, period text,
    period_days integer DEFAULT NULL, repeating boolean DEFAULT false,
    reward_points numeric DEFAULT NULL, badge text DEFAULT NULL,
    categories text[] DEFAULT NULL, channels text[] DEFAULT NULL, activities text[] DEFAULT NULL,
    min_amount anycompatible DEFAULT NULL, segments text[] DEFAULT NULL, tags text[] DEFAULT NULL,
    min_tier_rank integer DEFAULT NULL, valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
    -- (what drivers send: ints, floats and decimals for the amounts, whole
    -- numbers for the points)
    v_goal numeric := goal::numeric;
    v_min numeric := min_amount::numeric;
    v_points loyalty.points := loyalty.points(reward_points);
    v_badge text := lower(btrim(create_challenge.badge));
    v_tags text[] := (SELECT array_agg(lower(btrim(t.tag))) FROM unnest(create_challenge.tags) t(tag));
BEGIN
    PERFORM loyalty.require_program(create_challenge.program);
    IF program IS NULL OR code IS NULL OR name IS NULL OR metric IS NULL OR v_goal IS NULL OR period IS NULL THEN
        RAISE EXCEPTION 'program, code, name, metric, goal and period must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF metric NOT IN ('purchases', 'spend', 'visits', 'categories', 'activities', 'referrals', 'streak_weeks') THEN
        RAISE EXCEPTION 'unknown challenge metric "%"', metric USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use purchases, spend, visits, categories, activities, referrals or streak_weeks.';
    END IF;
    IF period NOT IN ('month', 'week', 'days', 'joining', 'campaign', 'streak') THEN
        RAISE EXCEPTION 'unknown challenge period "%"', period USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use month, week, days (with period_days), joining (with period_days), campaign or streak.';
    END IF;
    IF (metric = 'streak_weeks') <> (period = 'streak') THEN
        RAISE EXCEPTION 'a streak counts consecutive weeks: metric streak_weeks goes with period streak'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (period IN ('days', 'joining')) <> (period_days IS NOT NULL) THEN
        RAISE EXCEPTION 'period_days is needed by the days and joining periods, and only by them'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF period_days IS NOT NULL AND (period_days < 1 OR period_days > 3660) THEN
        RAISE EXCEPTION 'period_days must be between 1 and 3660, got %', period_days USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_goal = 'NaN' OR v_goal <= 0 OR v_goal >= 1e12 OR (metric <> 'spend' AND v_goal <> trunc(v_goal)) THEN
        RAISE EXCEPTION 'goal must be positive (a whole number but for spend), got %', v_goal
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_points IS NULL AND badge IS NULL THEN
        RAISE EXCEPTION 'a challenge gives reward_points, a badge, or both' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_points IS NOT NULL AND v_points::bigint <= 0 THEN
        RAISE EXCEPTION 'reward_points must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_min IS NOT NULL AND (v_min = 'NaN' OR v_min < 0 OR v_min = 'Infinity') THEN
        RAISE EXCEPTION 'min_amount must be a finite amount of at least 0' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF activities IS NOT NULL AND metric <> 'activities' OR categories IS NOT NULL AND metric IN ('activities', 'referrals')
       OR channels IS NOT NULL AND metric IN ('activities', 'referrals') THEN
        RAISE EXCEPTION 'activities filter the activities metric; categories and channels filter purchases'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(v_tags) t(tag) WHERE t.tag IS NULL OR NOT loyalty.valid_tag(t.tag))
       OR (v_badge IS NOT NULL AND NOT loyalty.valid_tag(v_badge)) THEN
        RAISE EXCEPTION 'tags and badges are 1 to 63 letters, digits, and _ . : - (not first)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF valid_until IS NOT NULL AND valid_from IS NOT NULL AND valid_until <= valid_from THEN
        RAISE EXCEPTION 'valid_until must be after valid_from' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    BEGIN
        INSERT INTO loyalty.challenges (program_id, code, name, metric, goal, period, period_days, repeating,
            reward_points, badge, categories, channels, activities, min_amount, segments, tags, min_tier_rank,
            valid_from, valid_until)
        VALUES (program, code, name, metric, v_goal, period, period_days, coalesce(repeating, false),
            v_points, v_badge, categories, channels, activities, v_min, segments, v_tags, min_tier_rank,
            valid_from, valid_until)
        RETURNING challenge_id INTO v_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a challenge "%"', program, code USING ERRCODE = 'unique_violation';
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid challenge "%": %', code, SQLERRM USING ERRCODE = 'invalid_parameter_value';
    END;
    -- the write path asks the program, not the table, whether to look at challenges
    UPDATE loyalty.programs p SET has_challenges = true
    WHERE p.program_id OPERATOR(pg_catalog.=) program AND NOT p.has_challenges;
    RETURN v_id;
END $$;
