CREATE VIEW loyalty.member_predictions AS
WITH m AS (
    SELECT DISTINCT ON (x.program_id) x.program_id, x.fitted_at, x.time_unit, x.calibration_end, x.gamma_gamma,
           x.gamma_gamma_failure, x AS model
    FROM loyalty.models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.program_id, x.fitted_at DESC
), r AS (
    -- as the fit stored them (loyalty.member_scores), for each member whose
    -- account still shows the purchase figures they were computed with
    SELECT s.program_id, s.member_id, s.x, s.t_x, s."T", s.last_purchase, s.p_alive, s.expected_purchases_year,
           s.expected_avg_spend, s.clv_year, s.purchase_model, s.prediction_failure
    -- (equalities: a member without an account or figures is not read here
    -- but computed below, exactly the complement of this test)
    FROM m JOIN loyalty.member_scores s ON s.program_id = m.program_id AND s.fitted_at = m.fitted_at
    JOIN loyalty.accounts a ON a.member_id = s.member_id AND a.purchase_count = s.purchase_count
                           AND a.purchase_days = s.purchase_days AND a.purchase_amount = s.purchase_amount
                           AND a.last_purchase_at = s.last_purchase_at
    UNION ALL
    -- computed now for the program's other members who bought (after the
    -- fit, or bought, were refunded or merged since), each from its own
    -- ledger rows; the same figures as the fit would have stored
    SELECT m.program_id, a.member_id, pm.x, pm.t_x, pm."T", pm.last_purchase, pm.p_alive, pm.expected_purchases_year,
           pm.expected_avg_spend, pm.clv_year, pm.purchase_model, pm.prediction_failure
    FROM m JOIN loyalty.accounts a ON a.program_id = m.program_id
    -- (predict_member also gives nothing for a member with a fresh row,
    -- should the join call it before the test below)
    CROSS JOIN LATERAL loyalty.predict_member(m.model, a.member_id) pm
    WHERE a.first_purchase_at IS NOT NULL
      AND NOT EXISTS (SELECT FROM loyalty.member_scores s
                      WHERE s.member_id = a.member_id AND s.program_id = m.program_id AND s.fitted_at = m.fitted_at
                        AND s.purchase_count = a.purchase_count AND s.purchase_days = a.purchase_days
                        AND s.purchase_amount = a.purchase_amount AND s.last_purchase_at = a.last_purchase_at)
)
SELECT m.program_id, r.member_id, m.fitted_at, m.time_unit,
       r.x AS repeat_purchases, round(r.t_x, 2) AS t_x, round(r."T", 2) AS customer_age,
       r.p_alive, r.expected_purchases_year, r.expected_avg_spend, r.clv_year,
       CASE WHEN m.gamma_gamma IS NULL THEN coalesce(m.gamma_gamma_failure, 'no spend model')
            WHEN NOT (m.gamma_gamma).q > 1 THEN format('q = %s: no expected spend (q must exceed 1)', round((m.gamma_gamma).q::numeric, 4))
       END AS spend_model_failure,
       m.calibration_end, r.last_purchase,
       r.purchase_model, r.prediction_failure
FROM m JOIN r ON r.program_id = m.program_id;
