CREATE VIEW loyalty.membership_retention AS
WITH m AS (
    -- each plan's latest fit, whether it succeeded or not
    SELECT DISTINCT ON (x.plan_id) x.*
    FROM loyalty.membership_models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.plan_id, x.fitted_at DESC
)
SELECT s.program_id, s.member_id, s.subscription_id, s.plan_id, p.code AS plan, p.period,
       s.periods AS periods_paid, s.started_at, s.current_period_end, s.cancel_at_period_end,
       round(CASE WHEN s.cancel_at_period_end THEN 0
                  ELSE loyalty.sbg_renewal_probability(m.alpha, m.beta, s.periods) END::numeric, 4) AS renewal_probability,
       round(CASE WHEN s.cancel_at_period_end THEN 0
                  ELSE loyalty.sbg_expected_remaining(m.alpha, m.beta, s.periods) END::numeric, 2) AS expected_remaining_periods,
       round(k.derl::numeric, 4) AS derl,
       round(p.fee * k.derl::numeric, 2) AS expected_remaining_revenue,
       p.currency,
       round(r.rate::numeric, 6) AS discount_rate,
       m.fitted_at,
       CASE WHEN m.plan_id IS NULL THEN 'no model: loyalty.fit_membership_models() has not fitted this plan'
            ELSE m.failure END AS model_failure
FROM loyalty.subscriptions s
JOIN loyalty.membership_plans p ON p.plan_id = s.plan_id
LEFT JOIN m ON m.plan_id = s.plan_id
-- 10% a year, per period of the plan
CROSS JOIN LATERAL (SELECT CASE WHEN p.period = 'month' THEN power(1.1::float8, 1 / 12.0::float8) - 1 ELSE 0.1::float8 END AS rate) r
CROSS JOIN LATERAL (SELECT CASE WHEN s.cancel_at_period_end THEN 0::float8
                                ELSE loyalty.sbg_derl(m.alpha, m.beta, s.periods, r.rate) END AS derl) k
WHERE s.status = 'active' AND loyalty.program_visible(s.program_id);
