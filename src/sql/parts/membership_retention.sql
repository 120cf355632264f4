-- Membership retention's objects (the sBG model of src/sbg.c), for the
-- install script and the 1.3 -> 1.4 upgrade.

CREATE TYPE loyalty.sbg_params AS (alpha float8, beta float8, loglik float8, subscriptions float8);
COMMENT ON TYPE loyalty.sbg_params IS
    'A fitted shifted-beta-geometric (sBG) retention model: alpha, beta (the Beta distribution of the churn probability per period across subscribers), log-likelihood, subscriptions';

CREATE FUNCTION loyalty.sbg_trans(internal, integer, boolean) RETURNS internal
    AS 'MODULE_PATHNAME', 'sbg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.sbg_trans(internal, integer, boolean, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'sbg_trans_weighted' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.sbg_final(internal) RETURNS loyalty.sbg_params
    AS 'MODULE_PATHNAME', 'sbg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.sbg_trans(internal, integer, boolean) IS 'Internal: transition function of loyalty.sbg_fit';
COMMENT ON FUNCTION loyalty.sbg_trans(internal, integer, boolean, float8) IS 'Internal: transition function of loyalty.sbg_fit (weighted)';
COMMENT ON FUNCTION loyalty.sbg_final(internal) IS 'Internal: final function of loyalty.sbg_fit (the maximum-likelihood fit)';

-- the state, its combination and serialization are the BTYD models' (src/btyd.c)
CREATE AGGREGATE loyalty.sbg_fit(periods integer, still_active boolean) (
    SFUNC = loyalty.sbg_trans, STYPE = internal, FINALFUNC = loyalty.sbg_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.sbg_fit(periods integer, still_active boolean, subscriptions float8) (
    SFUNC = loyalty.sbg_trans, STYPE = internal, FINALFUNC = loyalty.sbg_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.sbg_fit(integer, boolean) IS
    'Maximum-likelihood sBG fit over subscriptions: periods paid, and still_active (false: it ended after those periods; true: it had renewed periods - 1 times and not ended when last seen); LY030 when the data do not identify the model';
COMMENT ON AGGREGATE loyalty.sbg_fit(integer, boolean, float8) IS
    'Maximum-likelihood sBG fit over groups of alike subscriptions (periods paid, still_active, how many); LY030 when the data do not identify the model';

CREATE FUNCTION loyalty.sbg_loglik(alpha float8, beta float8, periods integer, still_active boolean)
    RETURNS float8 AS 'MODULE_PATHNAME', 'sbg_loglik' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.sbg_survival(alpha float8, beta float8, t integer)
    RETURNS float8 AS 'MODULE_PATHNAME', 'sbg_survival' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.sbg_renewal_probability(alpha float8, beta float8, periods integer)
    RETURNS float8 AS 'MODULE_PATHNAME', 'sbg_renewal_probability' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.sbg_expected_remaining(alpha float8, beta float8, periods integer)
    RETURNS float8 AS 'MODULE_PATHNAME', 'sbg_expected_remaining' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.sbg_derl(alpha float8, beta float8, periods integer, discount float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'sbg_derl' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.sbg_loglik(float8, float8, integer, boolean) IS
    'sBG log-likelihood of one subscription: ln P(T = periods) if it ended, ln S(periods - 1) if still active';
COMMENT ON FUNCTION loyalty.sbg_survival(float8, float8, integer) IS
    'sBG: S(t), the share of new subscribers still paying after t renewals';
COMMENT ON FUNCTION loyalty.sbg_renewal_probability(float8, float8, integer) IS
    'sBG: probability that a subscription that has paid periods periods renews once more, (beta + periods - 1) / (alpha + beta + periods - 1)';
COMMENT ON FUNCTION loyalty.sbg_expected_remaining(float8, float8, integer) IS
    'sBG: expected periods still to be paid by a subscription that has paid periods periods, (beta + periods - 1) / (alpha - 1); NULL for alpha <= 1, where that mean is infinite';
COMMENT ON FUNCTION loyalty.sbg_derl(float8, float8, integer, float8) IS
    'sBG: discounted expected residual lifetime of a subscription that has paid periods periods, in periods, valued at its next renewal (that renewal undiscounted, each later one discounted once more by 1 + discount); discount 0: sbg_expected_remaining';

CREATE TABLE loyalty.membership_models (
    program_id     bigint NOT NULL REFERENCES loyalty.programs,
    plan_id        bigint NOT NULL REFERENCES loyalty.membership_plans,
    fitted_at      timestamptz NOT NULL DEFAULT now(),
    alpha          float8 CHECK (alpha > 0),
    beta           float8 CHECK (beta > 0),
    loglik         float8,
    subscriptions  bigint NOT NULL CHECK (subscriptions >= 0),
    churned        bigint NOT NULL CHECK (churned >= 0),
    failure        text,
    PRIMARY KEY (program_id, plan_id, fitted_at),
    CHECK ((failure IS NULL) = (alpha IS NOT NULL AND beta IS NOT NULL AND loglik IS NOT NULL))
);
COMMENT ON TABLE loyalty.membership_models IS
    'Fitted sBG retention models per program and membership plan, one row per plan and fit (loyalty.fit_membership_models); a plan the data could not identify has its reason and no parameters';
COMMENT ON COLUMN loyalty.membership_models.program_id IS 'Program';
COMMENT ON COLUMN loyalty.membership_models.plan_id IS 'Membership plan the model is of (its periods are the plan''s)';
COMMENT ON COLUMN loyalty.membership_models.fitted_at IS 'When fit_membership_models ran (the same for every plan of one call)';
COMMENT ON COLUMN loyalty.membership_models.alpha IS 'sBG alpha (NULL: not fitted, see failure)';
COMMENT ON COLUMN loyalty.membership_models.beta IS 'sBG beta (NULL: not fitted, see failure)';
COMMENT ON COLUMN loyalty.membership_models.loglik IS 'Log-likelihood at the fit';
COMMENT ON COLUMN loyalty.membership_models.subscriptions IS 'Subscriptions of the plan the fit saw';
COMMENT ON COLUMN loyalty.membership_models.churned IS 'Of them, those that ended (lapsed, ended, or cancelled at period end); the others were still paying or changed plan (censored)';
COMMENT ON COLUMN loyalty.membership_models.failure IS 'Why this plan has no model from this fit (LY030''s message: the data do not identify it)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.membership_models', '');

-- SECURITY DEFINER (search_path pinned): the administrator reads the tables
-- but writes membership_models only through this function
#include "udfs/fit_membership_models/1.4.sql"
COMMENT ON FUNCTION loyalty.fit_membership_models(bigint) IS
    'Fit the sBG retention model of each membership plan of a program on its subscriptions and store them, each plan on its own (one the data do not identify gets its reason); returns the rows stored';

#include "udfs/membership_retention/1.4.sql"
COMMENT ON VIEW loyalty.membership_retention IS
    'Per paid membership, from its plan''s latest sBG fit: renewal probability, expected remaining periods, discounted expected residual lifetime (10% a year) and remaining revenue';
COMMENT ON COLUMN loyalty.membership_retention.program_id IS 'Program';
COMMENT ON COLUMN loyalty.membership_retention.member_id IS 'Member';
COMMENT ON COLUMN loyalty.membership_retention.subscription_id IS 'Subscription (status active)';
COMMENT ON COLUMN loyalty.membership_retention.plan_id IS 'Plan';
COMMENT ON COLUMN loyalty.membership_retention.plan IS 'Plan code';
COMMENT ON COLUMN loyalty.membership_retention.period IS 'The plan''s period (month or year): the unit of the periods and rates';
COMMENT ON COLUMN loyalty.membership_retention.periods_paid IS 'Periods paid, the current one included (1: not renewed yet)';
COMMENT ON COLUMN loyalty.membership_retention.started_at IS 'When the subscription started';
COMMENT ON COLUMN loyalty.membership_retention.current_period_end IS 'End of the paid period: the next renewal';
COMMENT ON COLUMN loyalty.membership_retention.cancel_at_period_end IS 'Cancelled at period end: it will not renew (renewal probability, remaining periods and revenue 0)';
COMMENT ON COLUMN loyalty.membership_retention.renewal_probability IS 'Probability that it renews at current_period_end: (beta + periods_paid - 1) / (alpha + beta + periods_paid - 1)';
COMMENT ON COLUMN loyalty.membership_retention.expected_remaining_periods IS 'Expected periods still to be paid after the current one, (beta + periods_paid - 1) / (alpha - 1); NULL when alpha <= 1: that mean is infinite (some subscribers practically never leave), use derl';
COMMENT ON COLUMN loyalty.membership_retention.derl IS 'Discounted expected residual lifetime in periods: the renewals still to come, each weighted by its probability and discounted at discount_rate per period, valued at current_period_end (the next renewal counts 1 if certain)';
COMMENT ON COLUMN loyalty.membership_retention.expected_remaining_revenue IS 'The plan''s fee times derl: the present value at current_period_end of the fees still to come';
COMMENT ON COLUMN loyalty.membership_retention.currency IS 'Currency of the fee and revenue';
COMMENT ON COLUMN loyalty.membership_retention.discount_rate IS 'Discount rate per period of the plan: 10% a year (1.1^(1/12) - 1 a month)';
COMMENT ON COLUMN loyalty.membership_retention.fitted_at IS 'When the plan''s model was fitted (NULL: never)';
COMMENT ON COLUMN loyalty.membership_retention.model_failure IS 'Why the predictions are NULL: the plan''s latest fit failed (its reason), or it was never fitted';

#include "udfs/membership_plan_retention/1.4.sql"
COMMENT ON VIEW loyalty.membership_plan_retention IS
    'Per membership plan: its latest sBG fit, the paid memberships now, their expected renewals and remaining revenue, and what a new subscriber is expected to pay';
COMMENT ON COLUMN loyalty.membership_plan_retention.program_id IS 'Program';
COMMENT ON COLUMN loyalty.membership_plan_retention.plan_id IS 'Plan';
COMMENT ON COLUMN loyalty.membership_plan_retention.plan IS 'Plan code';
COMMENT ON COLUMN loyalty.membership_plan_retention.name IS 'Plan name';
COMMENT ON COLUMN loyalty.membership_plan_retention.period IS 'The plan''s period (month or year)';
COMMENT ON COLUMN loyalty.membership_plan_retention.fee IS 'Fee per period';
COMMENT ON COLUMN loyalty.membership_plan_retention.currency IS 'Currency of the fee and revenue';
COMMENT ON COLUMN loyalty.membership_plan_retention.fitted_at IS 'When the latest fit ran (NULL: never)';
COMMENT ON COLUMN loyalty.membership_plan_retention.alpha IS 'sBG alpha of the latest fit (NULL: it failed, or none)';
COMMENT ON COLUMN loyalty.membership_plan_retention.beta IS 'sBG beta of the latest fit';
COMMENT ON COLUMN loyalty.membership_plan_retention.loglik IS 'Log-likelihood of the latest fit';
COMMENT ON COLUMN loyalty.membership_plan_retention.fitted_subscriptions IS 'Subscriptions the latest fit saw';
COMMENT ON COLUMN loyalty.membership_plan_retention.fitted_churned IS 'Of them, those that had ended';
COMMENT ON COLUMN loyalty.membership_plan_retention.model_failure IS 'Why there is no model: the latest fit''s reason, or never fitted';
COMMENT ON COLUMN loyalty.membership_plan_retention.active_subscriptions IS 'Paid memberships now (those cancelled at period end included)';
COMMENT ON COLUMN loyalty.membership_plan_retention.cancelling IS 'Of them, cancelled at period end';
COMMENT ON COLUMN loyalty.membership_plan_retention.expected_renewals IS 'Expected renewals at the memberships'' next renewal dates (sum of their renewal probabilities)';
COMMENT ON COLUMN loyalty.membership_plan_retention.expected_remaining_revenue IS 'Sum of the memberships'' expected remaining revenue (membership_retention)';
COMMENT ON COLUMN loyalty.membership_plan_retention.new_subscriber_periods IS 'Expected periods a new subscriber pays, (alpha + beta - 1) / (alpha - 1); NULL when alpha <= 1 (infinite)';
COMMENT ON COLUMN loyalty.membership_plan_retention.new_subscriber_value IS 'Expected fees of a new subscriber discounted to the start, the first included: fee * (1 + DERL(1) / (1 + discount_rate))';
COMMENT ON COLUMN loyalty.membership_plan_retention.discount_rate IS 'Discount rate per period of the plan: 10% a year';

-- not SECURITY DEFINER: it reads the views, as the analyst calling it may
#include "udfs/membership_survival/1.4.sql"
COMMENT ON FUNCTION loyalty.membership_survival(bigint, text, integer) IS
    'A plan''s projected retention for the next periods from its latest sBG fit: the share of new subscribers still paying after each renewal, the renewal rate at each, and the expected paid memberships of today still paying after k more renewals; LY030 without a model';

REVOKE ALL ON FUNCTION loyalty.fit_membership_models(bigint), loyalty.membership_survival(bigint, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.fit_membership_models(bigint) TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.membership_survival(bigint, text, integer) TO loyalty_analyst, loyalty_admin;
GRANT SELECT ON loyalty.membership_retention, loyalty.membership_plan_retention TO loyalty_analyst, loyalty_admin;
