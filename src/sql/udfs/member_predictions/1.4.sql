CREATE VIEW loyalty.member_predictions AS
WITH m AS (
    SELECT DISTINCT ON (x.program_id) x.* FROM loyalty.models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.program_id, x.fitted_at DESC
)
SELECT m.program_id, s.member_id, m.fitted_at, m.time_unit,
       s.x::bigint AS repeat_purchases, round(s.t_x, 2) AS t_x, round(s."T", 2) AS customer_age,
       round(loyalty.bgnbd_p_alive((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T")::numeric, 4) AS p_alive,
       round(loyalty.bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T",
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END)::numeric, 4) AS expected_purchases_year,
       round(CASE WHEN (m.gamma_gamma).q > 1
                  THEN loyalty.gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, s.x,
                                                    coalesce(s.m_x, 0)) END::numeric, 2)
           AS expected_avg_spend,
       round(loyalty.clv(m, s.x, s.t_x, s."T", s.m_x,
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END,
             CASE m.time_unit WHEN 'week' THEN 0.0019 ELSE 0.00026 END)::numeric, 2) AS clv_year,
       CASE WHEN m.gamma_gamma IS NULL THEN coalesce(m.gamma_gamma_failure, 'no spend model')
            WHEN NOT (m.gamma_gamma).q > 1 THEN format('q = %s: no expected spend (q must exceed 1)', round((m.gamma_gamma).q::numeric, 4))
       END AS spend_model_failure
FROM m, LATERAL loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit) s;
