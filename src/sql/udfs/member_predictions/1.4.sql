CREATE VIEW loyalty.member_predictions AS
WITH m AS (
    SELECT DISTINCT ON (x.program_id) x.*,
           -- one calendar convention whatever the model's unit: a year of
           -- 365.25 days in twelve equal months, discounted 10% a year; the
           -- predictions at the end of each month (the first, 0: no time)
           ARRAY(SELECT 365.25 / CASE x.time_unit WHEN 'week' THEN 7 ELSE 1 END * k / 12
                 FROM generate_series(0, 12) k)::float8[] AS months
    FROM loyalty.models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.program_id, x.fitted_at DESC
)
SELECT m.program_id, s.member_id, m.fitted_at, m.time_unit,
       s.x::bigint AS repeat_purchases, round(s.t_x, 2) AS t_x, round(s."T", 2) AS customer_age,
       round(pr.p_alive::numeric, 4) AS p_alive,
       round(pr.expected[13]::numeric, 4) AS expected_purchases_year,
       round(v.spend::numeric, 2) AS expected_avg_spend,
       -- each month's expected purchases, discounted, times the expected spend
       round((v.spend * (SELECT sum((pr.expected[k + 1] - pr.expected[k]) / power(1.1::float8, k / 12.0))
                         FROM generate_series(1, 12) k))::numeric, 2) AS clv_year,
       CASE WHEN m.gamma_gamma IS NULL THEN coalesce(m.gamma_gamma_failure, 'no spend model')
            WHEN NOT (m.gamma_gamma).q > 1 THEN format('q = %s: no expected spend (q must exceed 1)', round((m.gamma_gamma).q::numeric, 4))
       END AS spend_model_failure,
       m.calibration_end, s.last_purchase,
       pr.model AS purchase_model, pr.failure AS prediction_failure
FROM m, LATERAL loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit) s,
     -- with the program's purchase model
     LATERAL loyalty.predict_purchases(m.purchase_model, m.bgnbd, m.mbgnbd, s.x, s.t_x, s."T", m.months) pr,
     LATERAL (SELECT CASE WHEN (m.gamma_gamma).q > 1
                          THEN loyalty.gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, s.x,
                                                            coalesce(s.m_x, 0)) END AS spend) v;
