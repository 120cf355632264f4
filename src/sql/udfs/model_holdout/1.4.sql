CREATE FUNCTION loyalty.model_holdout(program bigint, holdout_end date)
RETURNS TABLE (repeat_purchases text, customers bigint, predicted numeric, actual numeric,
               total_predicted numeric, total_actual bigint)
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
    -- each customer of the calibration period: the purchases the model
    -- expects in the holdout, and the days with a purchase there (one
    -- purchase per day, as the model counts them), by calibration frequency
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
    ), c AS (
        SELECT CASE WHEN s.x >= 7 THEN '7+' ELSE s.x::text END AS bucket, least(s.x, 7) AS ord,
               loyalty.bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T",
                                      (model_holdout.holdout_end - m.calibration_end) / v_unit)::numeric AS predicted,
               coalesce(h.n, 0) AS actual
        FROM s LEFT JOIN held h ON h.member_id = s.member_id
    )
    SELECT coalesce(c.bucket, 'all'), count(*), round(avg(c.predicted), 4), round(avg(c.actual), 4),
           round(sum(c.predicted), 1), sum(c.actual)::bigint
    FROM c
    GROUP BY GROUPING SETS ((c.bucket, c.ord), ())
    ORDER BY grouping(c.bucket), min(c.ord);
END $$;
