CREATE FUNCTION loyalty.clv(m loyalty.models, x float8, t_x float8, "T" float8, m_x float8,
                            horizon integer DEFAULT 52, discount float8 DEFAULT 0.0019)
RETURNS float8
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- (no spend model, or one without an expected value: no CLV; no
    -- prediction by the program's purchase model: none either)
    SELECT CASE WHEN ($1.gamma_gamma).q > 1
                THEN loyalty.gamma_gamma_expected(($1.gamma_gamma).p, ($1.gamma_gamma).q, ($1.gamma_gamma).gamma, $2, coalesce($5, 0)) END
         * (SELECT sum((p.expected[k + 1] - p.expected[k]) / power(1 + $7, k))
            FROM loyalty.predict_purchases(($1).purchase_model, ($1).bgnbd, ($1).mbgnbd, $2, $3, $4,
                                           ARRAY(SELECT generate_series(0, $6))::float8[]) p,
                 generate_series(1, $6) k)
$$;
