CREATE FUNCTION loyalty.score_members(m loyalty.models, members bigint[], x bigint[], t_x numeric[], "T" numeric[],
                                      m_x numeric[])
RETURNS TABLE (member_id bigint, p_alive numeric, expected_purchases_year numeric, expected_avg_spend numeric,
               clv_year numeric, purchase_model text, prediction_failure text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL, not SQL: its plan is kept for the session, where a SQL
    -- function's body is parsed and planned again in every statement that
    -- calls it (predict_member calls it once per member)
    RETURN QUERY
    SELECT u.member_id,
           round(pr.p_alive::numeric, 4),
           round(pr.expected[13]::numeric, 4),
           round(v.spend::numeric, 2),
           -- each month's expected purchases, discounted, times the expected spend
           round((v.spend * (SELECT sum((pr.expected[k + 1] - pr.expected[k]) / power(1.1::float8, k / 12.0))
                             FROM generate_series(1, 12) k))::numeric, 2),
           pr.model, pr.failure
    FROM unnest($2, $3, $4, $5, $6) u(member_id, x, t_x, "T", m_x),
         -- with the program's purchase model, at the end of each month of a year
         -- (one calendar convention whatever the model's unit: 365.25 days in
         -- twelve equal months; the first, 0: no time)
         LATERAL loyalty.predict_purchases(($1).purchase_model, ($1).bgnbd, ($1).mbgnbd, u.x, u.t_x, u."T",
                                           ARRAY(SELECT 365.25 / CASE WHEN ($1).time_unit = 'week' THEN 7 ELSE 1 END * k / 12
                                                 FROM generate_series(0, 12) k)::float8[]) pr,
         LATERAL (SELECT CASE WHEN (($1).gamma_gamma).q > 1
                              THEN loyalty.gamma_gamma_expected((($1).gamma_gamma).p, (($1).gamma_gamma).q, (($1).gamma_gamma).gamma,
                                                                u.x, coalesce(u.m_x, 0)) END AS spend) v;
END $$;
