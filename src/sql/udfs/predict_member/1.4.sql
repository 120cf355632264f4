CREATE FUNCTION loyalty.predict_member(m loyalty.models, member bigint)
RETURNS TABLE (x bigint, t_x numeric, "T" numeric, last_purchase date, p_alive numeric, expected_purchases_year numeric,
               expected_avg_spend numeric, clv_year numeric, purchase_model text, prediction_failure text)
LANGUAGE sql STABLE PARALLEL SAFE
-- one member's summary: at most one row (an estimate of 1000 per call would
-- make a view computing a few members look like millions of rows)
ROWS 1
SET search_path = pg_catalog, pg_temp
AS $$
SELECT ps.x, ps.t_x, ps."T", ps.last_purchase, sc.p_alive, sc.expected_purchases_year, sc.expected_avg_spend, sc.clv_year,
       sc.purchase_model, sc.prediction_failure
FROM loyalty.purchase_summary(($1).program_id, ($1).calibration_end, ($1).time_unit, $2, $2) ps,
     LATERAL loyalty.score_members($1, ARRAY[ps.member_id], ARRAY[ps.x], ARRAY[ps.t_x], ARRAY[ps."T"], ARRAY[ps.m_x]) sc
$$;
