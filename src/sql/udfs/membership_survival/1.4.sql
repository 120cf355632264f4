CREATE FUNCTION loyalty.membership_survival(program bigint, plan text, periods integer DEFAULT 12)
RETURNS TABLE (period integer, survival float8, renewal_rate float8, expected_active float8)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v record;
BEGIN
    IF program IS NULL OR plan IS NULL OR periods IS NULL THEN
        RAISE EXCEPTION 'program, plan and periods must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF periods < 0 OR periods > 1200 THEN
        RAISE EXCEPTION 'periods must be between 0 and 1200, got %', periods USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- through the views (the caller may be an analyst, who reads views only)
    SELECT x.plan_id, x.alpha, x.beta, x.model_failure, x.cancelling INTO v
    FROM loyalty.membership_plan_retention x
    WHERE x.program_id OPERATOR(pg_catalog.=) membership_survival.program
      AND x.plan OPERATOR(pg_catalog.=) membership_survival.plan;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % has no plan "%"', program, plan USING ERRCODE = 'no_data_found';
    END IF;
    IF v.alpha IS NULL THEN
        RAISE EXCEPTION 'plan "%" has no retention model', plan USING ERRCODE = 'LY030', DETAIL = v.model_failure,
            HINT = 'An administrator fits it with loyalty.fit_membership_models(program).';
    END IF;
    RETURN QUERY
    WITH a AS MATERIALIZED (
        -- the paying subscriptions by periods paid (those cancelling leave at the next renewal)
        SELECT x.periods_paid AS n, pg_catalog.count(*)::float8 AS c
        FROM loyalty.membership_retention x
        WHERE x.plan_id OPERATOR(pg_catalog.=) v.plan_id AND NOT x.cancel_at_period_end
        GROUP BY 1
    )
    SELECT k, loyalty.sbg_survival(v.alpha, v.beta, k),
           CASE WHEN k OPERATOR(pg_catalog.>) 0 THEN loyalty.sbg_renewal_probability(v.alpha, v.beta, k) END,
           coalesce((SELECT pg_catalog.sum(a.c OPERATOR(pg_catalog.*) loyalty.sbg_survival(v.alpha, v.beta, a.n OPERATOR(pg_catalog.-) 1 OPERATOR(pg_catalog.+) k)
                                           OPERATOR(pg_catalog./) loyalty.sbg_survival(v.alpha, v.beta, a.n OPERATOR(pg_catalog.-) 1))
                     FROM a), 0)
           OPERATOR(pg_catalog.+) CASE WHEN k OPERATOR(pg_catalog.=) 0 THEN v.cancelling::float8 ELSE 0 END
    FROM pg_catalog.generate_series(0, periods) k;
END $$;
