CREATE VIEW loyalty.membership_plan_retention AS
WITH m AS (
    -- each plan's latest fit, whether it succeeded or not
    SELECT DISTINCT ON (x.plan_id) x.*
    FROM loyalty.membership_models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.plan_id, x.fitted_at DESC
), a AS (
    SELECT x.plan_id, count(*) AS active_subscriptions, count(*) FILTER (WHERE x.cancel_at_period_end) AS cancelling,
           sum(x.renewal_probability) AS expected_renewals, sum(x.expected_remaining_revenue) AS expected_remaining_revenue
    FROM loyalty.membership_retention x
    GROUP BY x.plan_id
)
SELECT p.program_id, p.plan_id, p.code AS plan, p.name, p.period, p.fee, p.currency,
       m.fitted_at, m.alpha, m.beta, m.loglik, m.subscriptions AS fitted_subscriptions, m.churned AS fitted_churned,
       CASE WHEN m.plan_id IS NULL THEN 'no model: loyalty.fit_membership_models() has not fitted this plan'
            ELSE m.failure END AS model_failure,
       coalesce(a.active_subscriptions, 0) AS active_subscriptions, coalesce(a.cancelling, 0) AS cancelling,
       CASE WHEN m.alpha IS NOT NULL THEN round(coalesce(a.expected_renewals, 0), 2) END AS expected_renewals,
       CASE WHEN m.alpha IS NOT NULL THEN coalesce(a.expected_remaining_revenue, 0) END AS expected_remaining_revenue,
       round((1 + loyalty.sbg_expected_remaining(m.alpha, m.beta, 1))::numeric, 2) AS new_subscriber_periods,
       round(p.fee * (1 + loyalty.sbg_derl(m.alpha, m.beta, 1, r.rate) / (1 + r.rate))::numeric, 2) AS new_subscriber_value,
       round(r.rate::numeric, 6) AS discount_rate
FROM loyalty.membership_plans p
LEFT JOIN m ON m.plan_id = p.plan_id
LEFT JOIN a ON a.plan_id = p.plan_id
-- 10% a year, per period of the plan (as membership_retention)
CROSS JOIN LATERAL (SELECT CASE WHEN p.period = 'month' THEN power(1.1::float8, 1 / 12.0::float8) - 1 ELSE 0.1::float8 END AS rate) r
WHERE loyalty.program_visible(p.program_id);
