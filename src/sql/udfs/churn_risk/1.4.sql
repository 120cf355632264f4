CREATE VIEW loyalty.churn_risk AS
-- everything as of the model's calibration end (as_of): P(alive), the band,
-- the last purchase and the purchase days it was computed from
SELECT p.program_id, p.member_id, p.p_alive, round(1 - p.p_alive, 4) AS churn_risk,
       b.band AS risk_band,
       p.expected_purchases_year, p.clv_year, p.last_purchase, p.repeat_purchases + 1 AS purchases,
       p.calibration_end AS as_of,
       coalesce(b.band, 'no prediction') AS risk_label,
       p.purchase_model, p.prediction_failure
FROM loyalty.member_predictions p,
     -- no band without a P(alive): the reason is in prediction_failure
     LATERAL (SELECT CASE WHEN p.p_alive < 0.3 THEN 'high' WHEN p.p_alive < 0.6 THEN 'medium'
                          WHEN p.p_alive >= 0.6 THEN 'low' END AS band) b
UNION ALL
-- the program's other active members, without a prediction: no purchase
-- by the calibration end (as member_predictions counts purchases), and why
SELECT a.program_id, a.member_id, NULL, NULL, NULL, NULL, NULL, NULL, 0, m.calibration_end,
       CASE WHEN a.first_purchase_at IS NULL THEN 'never bought' ELSE 'first purchase after the model' END,
       m.purchase_model, NULL
FROM loyalty.accounts a
JOIN loyalty.programs pr ON pr.program_id = a.program_id
JOIN (SELECT DISTINCT ON (x.program_id) x.program_id, x.calibration_end, x.purchase_model FROM loyalty.models x
      ORDER BY x.program_id, x.fitted_at DESC) m ON m.program_id = a.program_id
WHERE a.status = 'active' AND loyalty.program_visible(a.program_id)
  AND (a.first_purchase_at IS NULL OR (a.first_purchase_at AT TIME ZONE pr.time_zone)::date > m.calibration_end);
