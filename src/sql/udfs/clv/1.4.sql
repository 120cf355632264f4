CREATE FUNCTION loyalty.clv(m loyalty.models, x float8, t_x float8, "T" float8, m_x float8,
                            horizon integer DEFAULT 52, discount float8 DEFAULT 0.0019)
RETURNS float8
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- (no spend model, or one without an expected value: no CLV)
    SELECT CASE WHEN ($1.gamma_gamma).q > 1
                THEN loyalty.gamma_gamma_expected(($1.gamma_gamma).p, ($1.gamma_gamma).q, ($1.gamma_gamma).gamma, $2, coalesce($5, 0)) END
         * sum((loyalty.bgnbd_expected(($1.bgnbd).r, ($1.bgnbd).alpha, ($1.bgnbd).a, ($1.bgnbd).b, $2, $3, $4, k)
                - loyalty.bgnbd_expected(($1.bgnbd).r, ($1.bgnbd).alpha, ($1.bgnbd).a, ($1.bgnbd).b, $2, $3, $4, k - 1))
               / power(1 + $7, k))
    FROM generate_series(1, $6) k
$$;
