CREATE FUNCTION loyalty.model_tracking(program bigint, holdout_end date)
RETURNS TABLE (model text, chosen boolean, period integer, period_start date, period_end date, holdout boolean,
               actual bigint, expected numeric, cumulative_actual bigint, cumulative_expected numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    m loyalty.models;
    v_unit integer;
BEGIN
    PERFORM loyalty.require_program(model_tracking.program);
    IF program IS NULL OR holdout_end IS NULL THEN
        RAISE EXCEPTION 'program and holdout_end must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO m FROM loyalty.models x WHERE x.program_id = model_tracking.program ORDER BY x.fitted_at DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % has no fitted model', program USING ERRCODE = 'no_data_found',
            HINT = 'Fit one on the calibration period first: loyalty.fit_models(program, calibration_end).';
    END IF;
    IF holdout_end <= m.calibration_end THEN
        RAISE EXCEPTION 'the holdout must end after the model''s calibration end %', m.calibration_end
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_unit := CASE WHEN m.time_unit = 'day' THEN 1 ELSE 7 END;
    -- the customers of the calibration period, periods of the model's unit
    -- from the first one's first purchase, and (Fader, Hardie & Lee 2005,
    -- figure 3) each period's repeat purchase days against the sum of what
    -- each customer was expected to buy since the first purchase, E[X(t)]:
    -- a model's prediction for a customer with no history (x = t_x = T = 0)
    RETURN QUERY
    WITH s AS (
        SELECT s.member_id, s.first_purchase FROM loyalty.purchase_summary(program, m.calibration_end, m.time_unit) s
    ), f AS (
        SELECT min(s.first_purchase) AS first_day FROM s
    ), periods AS (
        SELECT n AS period, f.first_day + (n - 1) * v_unit AS period_start,
               least(f.first_day + n * v_unit - 1, model_tracking.holdout_end) AS period_end
        FROM f, generate_series(1, (model_tracking.holdout_end - f.first_day) / v_unit + 1) n
    ), repeats AS (
        -- their purchase days after the first (one a day, as the models count)
        SELECT (l.day - f.first_day) / v_unit + 1 AS period, count(*) AS n
        FROM (SELECT DISTINCT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day
              FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
              WHERE l.program_id = model_tracking.program AND l.kind = 'earn'
                AND (l.occurred_at AT TIME ZONE p.time_zone)::date <= model_tracking.holdout_end) l
        JOIN s ON s.member_id = l.member_id AND l.day > s.first_purchase
        CROSS JOIN f
        GROUP BY 1
    ), cohorts AS (
        SELECT s.first_purchase, count(*) AS customers FROM s GROUP BY s.first_purchase
    ), models AS (
        SELECT u.model FROM unnest(ARRAY['bgnbd', 'mbgnbd']) u(model)
        WHERE CASE WHEN u.model = 'bgnbd' THEN m.bgnbd IS NOT NULL ELSE m.mbgnbd IS NOT NULL END
    ), pred AS (
        -- each model's E[X(t)] for the customers of one first purchase day,
        -- at the end of every period (0 before it)
        SELECT md.model, co.customers, pr.expected, pr.failure
        FROM models md CROSS JOIN cohorts co,
        LATERAL loyalty.predict_purchases(md.model, m.bgnbd, m.mbgnbd, 0, 0, 0,
                    ARRAY(SELECT greatest(pe.period_end - co.first_purchase, 0)::float8 / v_unit
                          FROM periods pe ORDER BY pe.period)) pr
    ), cum AS (
        SELECT p.model, pe.period, sum(p.customers * p.expected[pe.period]) AS e,
               bool_and(p.failure IS NULL) AS ok
        FROM pred p CROSS JOIN periods pe
        GROUP BY p.model, pe.period
    )
    SELECT c.model, c.model = m.purchase_model, pe.period, pe.period_start, pe.period_end, pe.period_start > m.calibration_end,
           coalesce(r.n, 0), round((CASE WHEN c.ok THEN c.e - lag(c.e, 1, 0::float8) OVER w END)::numeric, 2),
           (sum(coalesce(r.n, 0)) OVER w)::bigint, round((CASE WHEN c.ok THEN c.e END)::numeric, 2)
    FROM cum c JOIN periods pe ON pe.period = c.period
    LEFT JOIN repeats r ON r.period = c.period
    WINDOW w AS (PARTITION BY c.model ORDER BY c.period)
    ORDER BY c.model, c.period;
END $$;
