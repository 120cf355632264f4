CREATE VIEW loyalty.churn_risk AS
SELECT p.program_id, p.member_id, p.p_alive, round(1 - p.p_alive, 4) AS churn_risk,
       CASE WHEN p.p_alive < 0.3 THEN 'high' WHEN p.p_alive < 0.6 THEN 'medium' ELSE 'low' END AS risk_band,
       p.expected_purchases_year, p.clv_year, a.last_purchase_at::date AS last_purchase, a.purchase_count AS purchases
FROM loyalty.member_predictions p JOIN loyalty.accounts a ON a.member_id = p.member_id;
