-- Purchase models (BG/NBD and MBG/NBD, src/btyd.c), a penalizer for every
-- fit, and the model each program predicts with: for the install script and
-- the 1.3 -> 1.4 upgrade.

-- MBG/NBD: BG/NBD where a customer may also drop out at the first purchase
CREATE FUNCTION loyalty.mbgnbd_final(internal) RETURNS loyalty.bgnbd_params
    AS 'MODULE_PATHNAME', 'btyd_mbgnbd_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE loyalty.mbgnbd_fit(x float8, t_x float8, "T" float8) (
    SFUNC = loyalty.bgnbd_trans, STYPE = internal, FINALFUNC = loyalty.mbgnbd_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.mbgnbd_fit(float8, float8, float8) IS
    'Maximum-likelihood MBG/NBD fit over customers (x repeat purchases, t_x time of the last, T age, in one time unit), as a loyalty.bgnbd_params; LY030 when the data do not identify the model';

-- a penalizer (lifetimes' penalizer_coef): -LL / customers + penalizer * sum(parameters^2)
CREATE FUNCTION loyalty.bgnbd_trans(internal, float8, float8, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_bgnbd_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_trans(internal, float8, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_gg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE loyalty.bgnbd_fit(x float8, t_x float8, "T" float8, penalizer float8) (
    SFUNC = loyalty.bgnbd_trans, STYPE = internal, FINALFUNC = loyalty.bgnbd_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.mbgnbd_fit(x float8, t_x float8, "T" float8, penalizer float8) (
    SFUNC = loyalty.bgnbd_trans, STYPE = internal, FINALFUNC = loyalty.mbgnbd_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.gamma_gamma_fit(x float8, m_x float8, penalizer float8) (
    SFUNC = loyalty.gamma_gamma_trans, STYPE = internal, FINALFUNC = loyalty.gamma_gamma_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.bgnbd_fit(float8, float8, float8, float8) IS
    'BG/NBD fit with a penalizer (the same on every row; NULL or 0: none): minimises -LL / customers + penalizer * (r^2 + alpha^2 + a^2 + b^2), as lifetimes does; loglik is the log-likelihood without the penalty';
COMMENT ON AGGREGATE loyalty.mbgnbd_fit(float8, float8, float8, float8) IS
    'MBG/NBD fit with a penalizer (the same on every row; NULL or 0: none): minimises -LL / customers + penalizer * (r^2 + alpha^2 + a^2 + b^2), as lifetimes does; loglik is the log-likelihood without the penalty';
COMMENT ON AGGREGATE loyalty.gamma_gamma_fit(float8, float8, float8) IS
    'Gamma-Gamma fit with a penalizer (the same on every row; NULL or 0: none): minimises -LL / customers + penalizer * (p^2 + q^2 + gamma^2); loglik is the log-likelihood without the penalty';

CREATE FUNCTION loyalty.mbgnbd_loglik(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_mbgnbd_loglik' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.mbgnbd_expected(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8, t float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_mbgnbd_expected' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.mbgnbd_p_alive(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_mbgnbd_p_alive' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.mbgnbd_loglik(float8, float8, float8, float8, float8, float8, float8) IS 'MBG/NBD log-likelihood of one customer';
COMMENT ON FUNCTION loyalty.mbgnbd_expected(float8, float8, float8, float8, float8, float8, float8, float8) IS
    'MBG/NBD: expected purchases of a customer in the next t time units (x = t_x = T = 0: a new customer''s expected repeat purchases in the t after the first)';
COMMENT ON FUNCTION loyalty.mbgnbd_p_alive(float8, float8, float8, float8, float8, float8, float8) IS
    'MBG/NBD: probability that the customer is still active (below 1 also for a customer who never came back)';

-- Which purchase model a program predicts with
ALTER TABLE loyalty.programs ADD COLUMN purchase_model text NOT NULL DEFAULT 'auto'
    CHECK (purchase_model = ANY (ARRAY['auto', 'bgnbd', 'mbgnbd']));
COMMENT ON COLUMN loyalty.programs.purchase_model IS
    'The purchase model the predictions use (loyalty.set_purchase_model): auto (of BG/NBD and MBG/NBD, the one with the higher log-likelihood at each fit), bgnbd or mbgnbd';

-- Both purchase models with each fit, each on its own, and the one in use
ALTER TABLE loyalty.models ALTER COLUMN bgnbd DROP NOT NULL,
    ADD COLUMN bgnbd_failure text,
    ADD COLUMN mbgnbd loyalty.bgnbd_params,
    ADD COLUMN mbgnbd_failure text,
    ADD COLUMN purchase_model text NOT NULL DEFAULT 'bgnbd' CHECK (purchase_model = ANY (ARRAY['bgnbd', 'mbgnbd'])),
    ADD COLUMN bgnbd_penalizer float8,
    ADD COLUMN mbgnbd_penalizer float8,
    ADD COLUMN gamma_gamma_penalizer float8,
    ADD CONSTRAINT models_purchase_model_fitted CHECK (CASE WHEN purchase_model = 'bgnbd' THEN bgnbd IS NOT NULL
                                                           ELSE mbgnbd IS NOT NULL END);
COMMENT ON COLUMN loyalty.models.bgnbd IS 'The BG/NBD purchase model (NULL: not fitted, see bgnbd_failure)';
COMMENT ON COLUMN loyalty.models.bgnbd_failure IS 'Why BG/NBD was not fitted, when it was not';
COMMENT ON COLUMN loyalty.models.mbgnbd IS 'The MBG/NBD purchase model (NULL: not fitted, see mbgnbd_failure)';
COMMENT ON COLUMN loyalty.models.mbgnbd_failure IS 'Why MBG/NBD was not fitted, when it was not';
COMMENT ON COLUMN loyalty.models.purchase_model IS
    'The purchase model the predictions use (bgnbd or mbgnbd): the program''s purchase_model setting, auto resolved to the higher log-likelihood';
COMMENT ON COLUMN loyalty.models.bgnbd_penalizer IS 'The penalizer BG/NBD was fitted with (0: none; NULL: not fitted)';
COMMENT ON COLUMN loyalty.models.mbgnbd_penalizer IS 'The penalizer MBG/NBD was fitted with (0: none; NULL: not fitted)';
COMMENT ON COLUMN loyalty.models.gamma_gamma_penalizer IS 'The penalizer Gamma-Gamma was fitted with (0: none; NULL: not fitted)';

#include "udfs/purchase_model_choice/1.4.sql"
COMMENT ON FUNCTION loyalty.purchase_model_choice(text, loyalty.bgnbd_params, loyalty.bgnbd_params) IS
    'Internal: the purchase model a setting (auto, bgnbd, mbgnbd) picks from two fits: auto takes the higher log-likelihood (BG/NBD on a tie), NULL when neither was fitted';
REVOKE ALL ON FUNCTION loyalty.purchase_model_choice(text, loyalty.bgnbd_params, loyalty.bgnbd_params) FROM PUBLIC;

#include "udfs/set_purchase_model/1.4.sql"
COMMENT ON FUNCTION loyalty.set_purchase_model(bigint, text) IS
    'Choose the purchase model a program''s predictions use: auto (the higher log-likelihood at each fit), bgnbd or mbgnbd; the latest fit follows at once; returns the model it now uses (NULL before the first fit)';
REVOKE ALL ON FUNCTION loyalty.set_purchase_model(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.set_purchase_model(bigint, text) TO loyalty_admin;

-- The one entry point of the predictions: the model chosen written once
CREATE TYPE loyalty.purchase_prediction AS (model text, p_alive float8, expected float8[], failure text);
COMMENT ON TYPE loyalty.purchase_prediction IS
    'A member''s purchase prediction: the model, P(alive), the expected purchases at each horizon asked, and why they are NULL';
CREATE FUNCTION loyalty.predict_purchases(model text, bgnbd loyalty.bgnbd_params, mbgnbd loyalty.bgnbd_params,
                                          x float8, t_x float8, "T" float8, horizons float8[])
    RETURNS loyalty.purchase_prediction
    AS 'MODULE_PATHNAME', 'btyd_predict' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.predict_purchases(text, loyalty.bgnbd_params, loyalty.bgnbd_params, float8, float8, float8, float8[]) IS
    'Predict a customer (x, t_x, T) with the purchase model named (the views: the models'' purchase_model) of the two fits given: P(alive) and the expected purchases in the next h time units for each h of horizons; where a formula fails, NULLs and the reason in failure, never an error';

#include "udfs/model_tracking/1.4.sql"
COMMENT ON FUNCTION loyalty.model_tracking(bigint, date) IS
    'Validation: per period (the model''s time unit) from the program''s first purchase to holdout_end, the repeat purchase days of the latest fit''s customers and what each purchase model expects of them since their first purchase, with running totals (the BG/NBD paper''s tracking plot)';
REVOKE ALL ON FUNCTION loyalty.model_tracking(bigint, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.model_tracking(bigint, date) TO loyalty_admin;

-- Each member's summary and predictions as of the latest fit, written by
-- fit_models in its transaction, so that member_predictions and churn_risk
-- read a member in a key lookup and a program in a scan instead of
-- summarising its ledger on every query
CREATE TABLE loyalty.member_scores (
    member_id       bigint PRIMARY KEY,
    program_id      bigint NOT NULL,
    fitted_at       timestamptz NOT NULL,
    x               bigint NOT NULL,
    t_x             numeric NOT NULL,
    "T"             numeric NOT NULL,
    m_x             numeric,
    last_purchase   date NOT NULL,
    purchase_count  bigint,
    purchase_days   bigint,
    purchase_amount numeric,
    last_purchase_at timestamptz,
    p_alive         numeric,
    expected_purchases_year numeric,
    expected_avg_spend numeric,
    clv_year        numeric,
    purchase_model  text,
    prediction_failure text
);
CREATE INDEX member_scores_program_idx ON loyalty.member_scores (program_id);
COMMENT ON TABLE loyalty.member_scores IS
    'Per member, the purchase summary and predictions of the program''s latest fit (fit_models, refresh_models, set_purchase_model write them with the model, in its transaction); member_predictions reads them while the member''s account shows the purchases they were computed from, and computes the others at query time';
COMMENT ON COLUMN loyalty.member_scores.member_id IS 'Member';
COMMENT ON COLUMN loyalty.member_scores.program_id IS 'Program';
COMMENT ON COLUMN loyalty.member_scores.fitted_at IS 'The fit (loyalty.models.fitted_at) the row belongs to: rows of an older fit are not read';
COMMENT ON COLUMN loyalty.member_scores.x IS 'Repeat purchase days up to the calibration end (purchase_summary x)';
COMMENT ON COLUMN loyalty.member_scores.t_x IS 'Time from the first to the last purchase, in the model''s unit (purchase_summary t_x)';
COMMENT ON COLUMN loyalty.member_scores."T" IS 'Time from the first purchase to the calibration end, in the model''s unit (purchase_summary T)';
COMMENT ON COLUMN loyalty.member_scores.m_x IS 'Mean spend of the repeat purchase days (purchase_summary m_x; NULL without one)';
COMMENT ON COLUMN loyalty.member_scores.last_purchase IS 'Last purchase day up to the calibration end';
COMMENT ON COLUMN loyalty.member_scores.purchase_count IS
    'The account''s purchase_count when the summary was read (in the same snapshot): with purchase_days, purchase_amount and last_purchase_at, the row is read only while the account still shows them; any purchase, refund or merge since changes one, and the view computes that member at query time';
COMMENT ON COLUMN loyalty.member_scores.purchase_days IS 'The account''s purchase_days when the summary was read';
COMMENT ON COLUMN loyalty.member_scores.purchase_amount IS 'The account''s purchase_amount when the summary was read';
COMMENT ON COLUMN loyalty.member_scores.last_purchase_at IS 'The account''s last_purchase_at when the summary was read';
COMMENT ON COLUMN loyalty.member_scores.p_alive IS 'P(alive) by purchase_model, rounded as member_predictions shows it';
COMMENT ON COLUMN loyalty.member_scores.expected_purchases_year IS 'Expected purchases in the next 365.25 days';
COMMENT ON COLUMN loyalty.member_scores.expected_avg_spend IS 'Expected spend per purchase (Gamma-Gamma; NULL without a spend model)';
COMMENT ON COLUMN loyalty.member_scores.clv_year IS 'Expected spend over the next 365.25 days, month by month discounted 10% a year';
COMMENT ON COLUMN loyalty.member_scores.purchase_model IS 'The purchase model of the predictions: bgnbd or mbgnbd';
COMMENT ON COLUMN loyalty.member_scores.prediction_failure IS 'Why p_alive or the expected purchases are NULL for this member';
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_scores', '');

#include "udfs/score_members/1.4.sql"
COMMENT ON FUNCTION loyalty.score_members(loyalty.models, bigint[], bigint[], numeric[], numeric[], numeric[]) IS
    'Internal: the predictions member_predictions shows for customers (member, x, t_x, T, m_x as purchase_summary gives them) by a fit: P(alive), expected purchases, spend and CLV over a year, the purchase model and why a prediction failed';
REVOKE ALL ON FUNCTION loyalty.score_members(loyalty.models, bigint[], bigint[], numeric[], numeric[], numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.score_members(loyalty.models, bigint[], bigint[], numeric[], numeric[], numeric[])
    TO loyalty_analyst, loyalty_admin;

#include "udfs/predict_member/1.4.sql"
COMMENT ON FUNCTION loyalty.predict_member(loyalty.models, bigint) IS
    'Internal (member_predictions): one member''s summary and predictions by a fit, computed from its ledger rows now; no row without a purchase by the calibration end, nor for a member whose stored row (member_scores) the account still matches; SECURITY DEFINER to read those two tables for the views'' readers, who may read no table';
REVOKE ALL ON FUNCTION loyalty.predict_member(loyalty.models, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.predict_member(loyalty.models, bigint) TO loyalty_analyst, loyalty_admin;

#include "udfs/store_member_scores/1.4.sql"
COMMENT ON FUNCTION loyalty.store_member_scores(loyalty.models, bigint[], bigint[], numeric[], numeric[], numeric[], date[],
                                                bigint[], bigint[], numeric[], timestamptz[]) IS
    'Internal (fit_models, set_purchase_model): replace a program''s rows of loyalty.member_scores by those of a fit, from the members'' summaries and the account figures read with them; returns the rows written';
REVOKE ALL ON FUNCTION loyalty.store_member_scores(loyalty.models, bigint[], bigint[], numeric[], numeric[], numeric[], date[],
                                                   bigint[], bigint[], numeric[], timestamptz[]) FROM PUBLIC;

#include "udfs/models_rescore/1.4.sql"
COMMENT ON FUNCTION loyalty.models_rescore() IS
    'Internal trigger of loyalty.models: when a fit''s row changes (its purchase model, its parameters), rewrite the predictions stored with it';
REVOKE ALL ON FUNCTION loyalty.models_rescore() FROM PUBLIC;
CREATE TRIGGER models_rescore AFTER UPDATE ON loyalty.models
    FOR EACH ROW EXECUTE FUNCTION loyalty.models_rescore();
