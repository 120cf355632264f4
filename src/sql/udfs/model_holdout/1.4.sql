CREATE FUNCTION loyalty.model_holdout(program bigint, holdout_end date)
RETURNS TABLE (repeat_purchases text, customers bigint, predicted numeric, actual numeric,
               total_predicted numeric, total_actual bigint, model text, chosen boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    m loyalty.models;
    v_unit numeric;
BEGIN
    PERFORM loyalty.require_program(model_holdout.program);
    IF program IS NULL OR holdout_end IS NULL THEN
        RAISE EXCEPTION 'program and holdout_end must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO m FROM loyalty.models x WHERE x.program_id = model_holdout.program ORDER BY x.fitted_at DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % has no fitted model', program USING ERRCODE = 'no_data_found',
            HINT = 'Fit one on the calibration period first: loyalty.fit_models(program, calibration_end).';
    END IF;
    IF holdout_end <= m.calibration_end THEN
        RAISE EXCEPTION 'the holdout must end after the model''s calibration end %', m.calibration_end
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_unit := CASE m.time_unit WHEN 'day' THEN 1 ELSE 7 END;
    -- each customer of the calibration period: the purchases each fitted
    -- purchase model expects in the holdout, and the days with a purchase
    -- there (one purchase per day, as the models count them), by calibration
    -- frequency
    RETURN QUERY
    WITH s AS (
        SELECT s.member_id, s.x, s.t_x, s."T" FROM loyalty.purchase_summary(program, m.calibration_end, m.time_unit) s
    ), held AS (
        SELECT l.member_id, count(DISTINCT (l.occurred_at AT TIME ZONE p.time_zone)::date) AS n
        FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
        WHERE l.program_id = model_holdout.program AND l.kind = 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date > m.calibration_end
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date <= model_holdout.holdout_end
        GROUP BY l.member_id
    ), models AS (
        SELECT u.model FROM unnest(ARRAY['bgnbd', 'mbgnbd']) u(model)
        WHERE CASE WHEN u.model = 'bgnbd' THEN m.bgnbd IS NOT NULL ELSE m.mbgnbd IS NOT NULL END
    ), c AS (
        SELECT md.model, CASE WHEN s.x >= 7 THEN '7+' ELSE s.x::text END AS bucket, least(s.x, 7) AS ord,
               pr.expected[1]::numeric AS predicted, coalesce(h.n, 0) AS actual
        FROM s CROSS JOIN models md
        LEFT JOIN held h ON h.member_id = s.member_id,
        LATERAL loyalty.predict_purchases(md.model, m.bgnbd, m.mbgnbd, s.x, s.t_x, s."T",
                                          ARRAY[(model_holdout.holdout_end - m.calibration_end) / v_unit]::float8[]) pr
    )
    -- (a group with a member a model has no prediction for has none either)
    SELECT coalesce(c.bucket, 'all'), count(*),
           CASE WHEN count(c.predicted) = count(*) THEN round(avg(c.predicted), 4) END, round(avg(c.actual), 4),
           CASE WHEN count(c.predicted) = count(*) THEN round(sum(c.predicted), 1) END, sum(c.actual)::bigint,
           c.model, c.model = m.purchase_model
    FROM c
    GROUP BY c.model, GROUPING SETS ((c.bucket, c.ord), ())
    ORDER BY c.model, grouping(c.bucket), min(c.ord);
END $$;
