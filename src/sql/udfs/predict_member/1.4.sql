CREATE FUNCTION loyalty.predict_member(m loyalty.models, member bigint)
RETURNS TABLE (x bigint, t_x numeric, "T" numeric, last_purchase date, p_alive numeric, expected_purchases_year numeric,
               expected_avg_spend numeric, clv_year numeric, purchase_model text, prediction_failure text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
-- purchase_summary sets plan_cache_mode for a member's summary: not in a
-- parallel query
PARALLEL UNSAFE
-- one member's summary: at most one row (an estimate of 1000 per call would
-- make a view computing a few members look like millions of rows)
ROWS 1
SET search_path = pg_catalog, pg_temp
-- on Citus this runs inside the view's query on a shard, and summarises the
-- member through distributed tables: allowed there (a placeholder elsewhere)
SET citus.allow_nested_distributed_execution = on
AS $$
DECLARE
    v record;
BEGIN
    -- nothing for a member whose stored row still holds (the view reads
    -- that), whatever order the view's join calls this in; PL/pgSQL keeps
    -- both statements' plans for the session
    IF EXISTS (SELECT FROM loyalty.member_scores s
               JOIN loyalty.accounts a ON a.member_id OPERATOR(pg_catalog.=) s.member_id
                                      AND a.purchase_count OPERATOR(pg_catalog.=) s.purchase_count
                                      AND a.purchase_days OPERATOR(pg_catalog.=) s.purchase_days
                                      AND a.purchase_amount OPERATOR(pg_catalog.=) s.purchase_amount
                                      AND a.last_purchase_at OPERATOR(pg_catalog.=) s.last_purchase_at
               WHERE s.member_id OPERATOR(pg_catalog.=) predict_member.member
                 AND s.program_id OPERATOR(pg_catalog.=) m.program_id
                 AND s.fitted_at OPERATOR(pg_catalog.=) m.fitted_at) THEN
        RETURN;
    END IF;
    SELECT * INTO v FROM loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit, member, member);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT v.x, v.t_x, v."T", v.last_purchase, sc.p_alive, sc.expected_purchases_year, sc.expected_avg_spend,
           sc.clv_year, sc.purchase_model, sc.prediction_failure
    FROM loyalty.score_members(m, ARRAY[v.member_id], ARRAY[v.x], ARRAY[v.t_x], ARRAY[v."T"], ARRAY[v.m_x]) sc;
END $$;
