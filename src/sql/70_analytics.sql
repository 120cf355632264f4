-- ---------------------------------------------------------------------------
-- Analytics: the RFM aggregate, RFM scores and segments, buy-till-you-die
-- models (BG/NBD, MBG/NBD, Gamma-Gamma) with predictions, and the BI views.
-- ---------------------------------------------------------------------------

-- RFM aggregate (src/rfm.c) -----------------------------------------------------

CREATE TYPE loyalty.rfm_summary AS (
    first_purchase  timestamptz,
    last_purchase   timestamptz,
    recency_days    integer,
    frequency       bigint,
    monetary        numeric,
    average         numeric
);
COMMENT ON TYPE loyalty.rfm_summary IS 'Result of loyalty.rfm(): first and last purchase, whole days since the last one, number of purchases, total and average amount';

CREATE FUNCTION loyalty.rfm_trans(internal, timestamptz, numeric) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_trans(internal, timestamptz, numeric, timestamptz) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_trans_asof' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'rfm_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- STABLE: without as_of, recency is counted to the transaction's start
CREATE FUNCTION loyalty.rfm_final(internal) RETURNS loyalty.rfm_summary
    AS 'MODULE_PATHNAME', 'rfm_final' LANGUAGE C STABLE PARALLEL SAFE;

CREATE AGGREGATE loyalty.rfm(timestamptz, numeric) (
    SFUNC = loyalty.rfm_trans, STYPE = internal, FINALFUNC = loyalty.rfm_final,
    COMBINEFUNC = loyalty.rfm_combine, SERIALFUNC = loyalty.rfm_serialize,
    DESERIALFUNC = loyalty.rfm_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.rfm(timestamptz, numeric, timestamptz) (
    SFUNC = loyalty.rfm_trans, STYPE = internal, FINALFUNC = loyalty.rfm_final,
    COMBINEFUNC = loyalty.rfm_combine, SERIALFUNC = loyalty.rfm_serialize,
    DESERIALFUNC = loyalty.rfm_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.rfm(timestamptz, numeric) IS
    'RFM of purchases (time, amount): first/last purchase, recency in days to now, frequency, monetary, average; parallel-safe, usable on any table';
COMMENT ON AGGREGATE loyalty.rfm(timestamptz, numeric, timestamptz) IS
    'RFM of purchases (time, amount) with recency counted to as_of (the third argument)';

-- RFM scores and segments --------------------------------------------------------

-- The usual 11 segments from the recency score (R) and the mean of the
-- frequency and monetary scores (FM = round((F + M) / 2)), first match by
-- priority.  The standard mapping ships in rfm_segments_standard; to change
-- it, fill loyalty.rfm_segments (dumped with the data; while it has rows it
-- replaces the standard mapping), e.g.
--   INSERT INTO loyalty.rfm_segments SELECT * FROM loyalty.rfm_segments_standard;
--   UPDATE loyalty.rfm_segments SET r_min = 3 WHERE segment = 'Champions';
CREATE TABLE loyalty.rfm_segments_standard (
    segment     text PRIMARY KEY,
    priority    integer NOT NULL UNIQUE,
    r_min       integer NOT NULL CHECK (r_min BETWEEN 1 AND 5),
    r_max       integer NOT NULL CHECK (r_max BETWEEN 1 AND 5),
    fm_min      integer NOT NULL CHECK (fm_min BETWEEN 1 AND 5),
    fm_max      integer NOT NULL CHECK (fm_max BETWEEN 1 AND 5),
    description text NOT NULL,
    CHECK (r_min <= r_max AND fm_min <= fm_max)
);
INSERT INTO loyalty.rfm_segments_standard VALUES
    ('Champions',          1, 4, 5, 4, 5, 'Bought recently, buy often and spend the most'),
    ('Loyal',              2, 3, 5, 3, 5, 'Buy regularly and spend well'),
    ('Cannot Lose Them',   3, 1, 1, 4, 5, 'Used to buy often and spend big, long ago'),
    ('At Risk',            4, 1, 2, 3, 5, 'Spent big and often, but not for a long time'),
    ('Potential Loyalist', 5, 4, 5, 2, 3, 'Recent customers with average frequency and spend'),
    ('New',                6, 5, 5, 1, 1, 'Bought most recently, but not often'),
    ('Promising',          7, 4, 4, 1, 1, 'Recent shoppers who have not spent much'),
    ('Need Attention',     8, 3, 3, 2, 3, 'Above average recency, frequency and spend, slipping'),
    ('About to Sleep',     9, 2, 3, 1, 2, 'Below average recency, frequency and spend'),
    ('Hibernating',       10, 2, 2, 1, 2, 'Last purchase long ago, few and small orders'),
    ('Lost',              11, 1, 1, 1, 3, 'Lowest recency; gone');
COMMENT ON TABLE loyalty.rfm_segments_standard IS 'The standard mapping of RFM scores to the 11 named segments (R range x FM range, first match by priority)';
CREATE TABLE loyalty.rfm_segments (LIKE loyalty.rfm_segments_standard INCLUDING ALL);
COMMENT ON TABLE loyalty.rfm_segments IS 'Your mapping of RFM scores to segments; while it has rows it replaces rfm_segments_standard';
#include "udfs/rfm_segment_map/1.0.sql"
COMMENT ON VIEW loyalty.rfm_segment_map IS 'The RFM segment mapping in force: loyalty.rfm_segments if it has rows, else the standard one';

-- member_rfm and segment_summary follow the rollups (parts/rollups.sql), whose
-- quintiles member_rfm reads

-- Buy-till-you-die models (src/btyd.c) ---------------------------------------------

CREATE TYPE loyalty.bgnbd_params AS (r float8, alpha float8, a float8, b float8, loglik float8, customers float8);
CREATE TYPE loyalty.gamma_gamma_params AS (p float8, q float8, gamma float8, loglik float8, customers float8);
COMMENT ON TYPE loyalty.bgnbd_params IS 'A fitted BG/NBD (or MBG/NBD) model: r, alpha (purchase rate), a, b (dropout), log-likelihood, customers';
COMMENT ON TYPE loyalty.gamma_gamma_params IS 'A fitted Gamma-Gamma spend model: p, q, gamma, log-likelihood, repeat customers';

CREATE FUNCTION loyalty.bgnbd_trans(internal, float8, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_bgnbd_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_trans(internal, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_gg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'btyd_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_final(internal) RETURNS loyalty.bgnbd_params
    AS 'MODULE_PATHNAME', 'btyd_bgnbd_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_final(internal) RETURNS loyalty.gamma_gamma_params
    AS 'MODULE_PATHNAME', 'btyd_gg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE loyalty.bgnbd_fit(x float8, t_x float8, "T" float8) (
    SFUNC = loyalty.bgnbd_trans, STYPE = internal, FINALFUNC = loyalty.bgnbd_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.gamma_gamma_fit(x float8, m_x float8) (
    SFUNC = loyalty.gamma_gamma_trans, STYPE = internal, FINALFUNC = loyalty.gamma_gamma_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.bgnbd_fit(float8, float8, float8) IS
    'Maximum-likelihood BG/NBD fit over customers (x repeat purchases, t_x time of the last, T age, in one time unit); LY030 when the data do not identify the model';
COMMENT ON AGGREGATE loyalty.gamma_gamma_fit(float8, float8) IS
    'Maximum-likelihood Gamma-Gamma fit over repeat customers (x repeat purchases, m_x their mean value); LY030 when not identified';

CREATE FUNCTION loyalty.bgnbd_loglik(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_loglik' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_expected(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8, t float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_expected' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_p_alive(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_p_alive' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_expected(p float8, q float8, gamma float8, x float8, m_x float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_gg_expected' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.bgnbd_loglik(float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD log-likelihood of one customer';
COMMENT ON FUNCTION loyalty.bgnbd_expected(float8, float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD: expected purchases of a customer in the next t time units';
COMMENT ON FUNCTION loyalty.bgnbd_p_alive(float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD: probability that the customer is still active';
COMMENT ON FUNCTION loyalty.gamma_gamma_expected(float8, float8, float8, float8, float8) IS 'Gamma-Gamma: expected average transaction value of a customer';

-- Customer summaries for the models, from the ledger: one purchase per day
-- (in the program's time zone), calibration up to and including `calibration_end`.
#include "udfs/purchase_summary/1.4.sql"
COMMENT ON FUNCTION loyalty.purchase_summary(bigint, date, text, bigint, bigint) IS
    'Per member of a program (or of its members from member_from to member_to, read through the ledger''s key), as of calibration_end: x (repeat purchases, one per day), t_x (last - first purchase), T (calibration_end - first purchase) in days or weeks, m_x (mean repeat-day spend)';

CREATE TABLE loyalty.models (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    fitted_at       timestamptz NOT NULL DEFAULT now(),
    calibration_end date NOT NULL,
    time_unit       text NOT NULL CHECK (time_unit IN ('day', 'week')),
    bgnbd           loyalty.bgnbd_params NOT NULL,
    gamma_gamma     loyalty.gamma_gamma_params,
    gamma_gamma_failure text,
    PRIMARY KEY (program_id, fitted_at)
);
COMMENT ON TABLE loyalty.models IS 'Fitted purchase models (BG/NBD, MBG/NBD) and spend model (Gamma-Gamma) per program, with fit time, calibration end, log-likelihoods and the purchase model in use';
COMMENT ON COLUMN loyalty.models.gamma_gamma_failure IS
    'Why the spend model (Gamma-Gamma) was not fitted, when it was not: the purchase models are kept without it';

#include "parts/purchase_models.sql"

#include "udfs/fit_models/1.4.sql"
COMMENT ON FUNCTION loyalty.fit_models(bigint, date, text, anycompatible) IS
    'Fit BG/NBD, MBG/NBD and Gamma-Gamma on a program''s purchases up to calibration_end, each on its own, and store them with the purchase model the program predicts with (its purchase_model; auto: the higher log-likelihood); penalizer: a number, or NULL for none and, where the data do not identify a model, the least of 0.001, 0.01 and 0.1 that does; LY030 if the data identify no purchase model (or not the one the program asks for); a model not fitted has its reason in NAME_failure; every member''s summary and predictions by the fit are stored in loyalty.member_scores in the same transaction, for the views';

#include "udfs/model_holdout/1.4.sql"
COMMENT ON FUNCTION loyalty.model_holdout(bigint, date) IS
    'Validation: each purchase model of the latest fit (model; chosen: the one the predictions use): its expected purchases in (calibration_end, holdout_end] against the purchase days seen, mean per customer by calibration frequency (0 to 6, 7+) and in all, as in the BG/NBD paper''s conditional-expectation table';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/refresh_models/1.0.sql"
COMMENT ON PROCEDURE loyalty.refresh_models(text, date) IS
    'Batch job (e.g. nightly with pg_cron): refit the models of every program on its purchases up to calibration_end (default today), one commit per program; programs whose data cannot identify the purchase model are reported and skipped';

-- CLV over `horizon` time units with a discount rate per unit: expected spend
-- per purchase times the discounted expected purchases of each unit.
#include "udfs/clv/1.4.sql"
COMMENT ON FUNCTION loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) IS
    'Customer lifetime value over horizon time units, discounted per unit (default 52 weeks at 10% a year), with the models'' purchase_model';

#include "udfs/member_predictions/1.4.sql"

#include "udfs/churn_risk/1.4.sql"

-- KPI and distribution views --------------------------------------------------------

#include "parts/rollups.sql"

#include "udfs/member_rfm/1.4.sql"

#include "udfs/segment_summary/1.0.sql"

#include "udfs/kpi_daily/1.4.sql"

#include "udfs/kpi_monthly/1.4.sql"

#include "udfs/kpi_summary/1.4.sql"

#include "udfs/tier_distribution/1.4.sql"

#include "udfs/channel_distribution/1.4.sql"

#include "udfs/member_mix/1.4.sql"

#include "udfs/cohort_retention/1.4.sql"

#include "udfs/reward_popularity/1.1.sql"

-- Comments on every view column (BI tools show them) --------------------------------
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('member_rfm', NULL, 'RFM per member from the account''s purchase statistics: scores 1-5 by quintile within the program (equal values, equal scores), and the named segment'),
        ('member_rfm', 'program_id', 'Program'), ('member_rfm', 'member_id', 'Member'),
        ('member_rfm', 'first_purchase', 'Date of the first purchase'), ('member_rfm', 'last_purchase', 'Date of the last purchase'),
        ('member_rfm', 'recency_days', 'Days since the last purchase'), ('member_rfm', 'frequency', 'Number of purchases'),
        ('member_rfm', 'purchase_days', 'Distinct days with a purchase'), ('member_rfm', 'monetary', 'Total purchase amount, net of refunds'),
        ('member_rfm', 'r_score', 'Recency quintile, 5 = most recent'), ('member_rfm', 'f_score', 'Frequency quintile, 5 = most purchases'),
        ('member_rfm', 'm_score', 'Monetary quintile, 5 = highest spend'), ('member_rfm', 'rfm_cell', 'R, F and M scores as a three-digit code'),
        ('member_rfm', 'segment', 'Named segment from loyalty.rfm_segment_map'),
        ('segment_summary', NULL, 'Members, share and averages per RFM segment'),
        ('segment_summary', 'program_id', 'Program'), ('segment_summary', 'segment', 'RFM segment'),
        ('segment_summary', 'members', 'Members in the segment'), ('segment_summary', 'share', 'Share of the program''s buyers'),
        ('segment_summary', 'avg_recency_days', 'Average days since the last purchase'), ('segment_summary', 'avg_frequency', 'Average number of purchases'),
        ('segment_summary', 'avg_monetary', 'Average total spend'), ('segment_summary', 'total_monetary', 'Total spend of the segment'),
        ('member_predictions', NULL, 'Per member, from the latest fitted models: P(alive), expected purchases and spend, CLV over a year, by the program''s purchase model (purchase_model)'),
        ('member_predictions', 'program_id', 'Program'), ('member_predictions', 'member_id', 'Member'),
        ('member_predictions', 'fitted_at', 'When the models used were fitted'), ('member_predictions', 'time_unit', 'Time unit of the model (day or week)'),
        ('member_predictions', 'repeat_purchases', 'Repeat purchase days in the calibration period (x)'),
        ('member_predictions', 't_x', 'Time from the first to the last purchase (t_x)'), ('member_predictions', 'customer_age', 'Time from the first purchase to the calibration end (T)'),
        ('member_predictions', 'p_alive', 'Probability the member is still active, by the purchase model in purchase_model'),
        ('member_predictions', 'expected_purchases_year', 'Expected purchases in the next 365.25 days, whatever the model''s time unit, by the purchase model in purchase_model'),
        ('member_predictions', 'expected_avg_spend', 'Expected spend per purchase (Gamma-Gamma)'),
        ('member_predictions', 'clv_year', 'Expected spend over the next 365.25 days, month by month discounted 10% a year (NULL without a spend model)'),
        ('member_predictions', 'spend_model_failure', 'Why expected spend and CLV are NULL: the spend model could not be fitted, or has no expected value'),
        ('member_predictions', 'calibration_end', 'The last day of the purchases the model was fitted on: the predictions are as of it'),
        ('member_predictions', 'last_purchase', 'The member''s last purchase day up to the calibration end'),
        ('member_predictions', 'purchase_model', 'The purchase model of p_alive, expected_purchases_year and clv_year: bgnbd (BG/NBD) or mbgnbd (MBG/NBD), the program''s choice (loyalty.set_purchase_model)'),
        ('member_predictions', 'prediction_failure', 'Why p_alive or the expected purchases (and CLV) are NULL: the purchase model''s formulas failed for this member'),
        ('churn_risk', NULL, 'Churn risk per member: 1 - P(alive), in bands, with value at stake'),
        ('churn_risk', 'program_id', 'Program'), ('churn_risk', 'member_id', 'Member'),
        ('churn_risk', 'p_alive', 'Probability the member is still active, by the purchase model in purchase_model'),
        ('churn_risk', 'churn_risk', '1 - P(alive)'), ('churn_risk', 'risk_band', 'high (P(alive) < 0.3), medium (< 0.6) or low; NULL without a P(alive)'),
        ('churn_risk', 'expected_purchases_year', 'Expected purchases in the next year'), ('churn_risk', 'clv_year', 'Expected discounted spend over the next year'),
        ('churn_risk', 'last_purchase', 'Date of the last purchase up to as_of'), ('churn_risk', 'purchases', 'Days with a purchase up to as_of'),
        ('churn_risk', 'as_of', 'The model''s calibration end: P(alive), the band, the last purchase and the purchases are as of this day'),
        ('churn_risk', 'risk_label', 'The band, or why a member has none: never bought, first purchase after the model, or no prediction (see prediction_failure)'),
        ('churn_risk', 'purchase_model', 'The purchase model of P(alive) and the expected purchases: bgnbd (BG/NBD) or mbgnbd (MBG/NBD), the program''s choice'),
        ('churn_risk', 'prediction_failure', 'Why a member with purchases has no P(alive) or expected purchases: the purchase model''s formulas failed for it'),
        ('kpi_daily', NULL, 'Daily KPIs per program (days in the program time zone)'),
        ('kpi_daily', 'program_id', 'Program'), ('kpi_daily', 'day', 'Day'), ('kpi_daily', 'new_members', 'Members who joined'),
        ('kpi_daily', 'active_members', 'Members who bought'), ('kpi_daily', 'purchases', 'Purchases'), ('kpi_daily', 'revenue', 'Purchase amounts'),
        ('kpi_daily', 'avg_order_value', 'Revenue per purchase'), ('kpi_daily', 'points_issued', 'Points credited (earn, award, positive adjust)'),
        ('kpi_daily', 'points_redeemed', 'Points spent (redeem, hold, less released)'), ('kpi_daily', 'points_expired', 'Points written off by expiry'),
        ('kpi_monthly', NULL, 'Monthly KPIs per program, with repeat-purchase rate, redemption rate and breakage'),
        ('kpi_monthly', 'program_id', 'Program'), ('kpi_monthly', 'month', 'First day of the month'), ('kpi_monthly', 'new_members', 'Members who joined'),
        ('kpi_monthly', 'active_members', 'Members who bought'), ('kpi_monthly', 'purchases', 'Purchases'), ('kpi_monthly', 'revenue', 'Purchase amounts'),
        ('kpi_monthly', 'avg_order_value', 'Revenue per purchase'), ('kpi_monthly', 'repeat_purchase_rate', 'Share of the month''s buyers who had bought in an earlier month'),
        ('kpi_monthly', 'points_issued', 'Points credited'), ('kpi_monthly', 'points_redeemed', 'Points spent'), ('kpi_monthly', 'points_expired', 'Points expired'),
        ('kpi_monthly', 'redemption_rate', 'Share of the points issued in the month redeemed since (the month''s cohort of points; at most 1)'),
        ('kpi_monthly', 'breakage', 'Share of the points issued in the month expired since (the month''s cohort of points)'),
        ('kpi_summary', NULL, 'Current KPIs per program: members, activity, points outstanding and the liability in money (exact to now: the account rollups and the accounts changed since; see rollups_as_of)'),
        ('kpi_summary', 'program_id', 'Program'), ('kpi_summary', 'program', 'Program name'), ('kpi_summary', 'currency', 'Currency of amounts and liability'),
        ('kpi_summary', 'members', 'Members (not closed)'), ('kpi_summary', 'active_members_90d', 'Members who bought in the last 90 days'),
        ('kpi_summary', 'repeat_purchase_rate', 'Share of buyers with more than one purchase'), ('kpi_summary', 'avg_order_value', 'Purchase amount per purchase'),
        ('kpi_summary', 'points_outstanding', 'Posted balances (spendable and pending)'), ('kpi_summary', 'points_held', 'Points held by active holds'), ('kpi_summary', 'points_pending', 'Points earned but still vesting (part of points_outstanding)'),
        ('kpi_summary', 'points_issued', 'Points ever credited'), ('kpi_summary', 'points_redeemed', 'Points ever redeemed'),
        ('kpi_summary', 'points_expired', 'Points ever expired'), ('kpi_summary', 'redemption_rate', 'Redeemed / issued'),
        ('kpi_summary', 'breakage', 'Expired / issued'), ('kpi_summary', 'liability', 'Outstanding and held points at the program''s point value'),
        ('tier_distribution', NULL, 'Members per tier (exact to now: the account rollups and the accounts changed since; see rollups_as_of)'), ('tier_distribution', 'program_id', 'Program'), ('tier_distribution', 'tier', 'Tier name (none: no tier)'),
        ('tier_distribution', 'tier_rank', 'Tier rank'), ('tier_distribution', 'members', 'Members'), ('tier_distribution', 'share', 'Share of the program''s members'),
        ('channel_distribution', NULL, 'Purchases per channel'), ('channel_distribution', 'program_id', 'Program'), ('channel_distribution', 'channel', 'Channel of the purchase'),
        ('channel_distribution', 'purchases', 'Purchases'), ('channel_distribution', 'members', 'Distinct buyers'), ('channel_distribution', 'revenue', 'Purchase amounts'),
        ('channel_distribution', 'points_issued', 'Points earned'),
        ('member_mix', NULL, 'Members by source channel and region (exact to now: the member mix rollup and the members changed since; see rollups_as_of)'), ('member_mix', 'program_id', 'Program'), ('member_mix', 'source_channel', 'Channel the member joined through'),
        ('member_mix', 'region', 'Region'), ('member_mix', 'members', 'Members'), ('member_mix', 'buyers', 'Members with a purchase'),
        ('cohort_retention', NULL, 'Monthly cohorts by first purchase: members buying again n months later'),
        ('cohort_retention', 'program_id', 'Program'), ('cohort_retention', 'cohort_month', 'Month of the first purchase'),
        ('cohort_retention', 'months_since_first', 'Months after the first purchase'), ('cohort_retention', 'active_members', 'Cohort members buying in that month'),
        ('cohort_retention', 'cohort_size', 'Members in the cohort'), ('cohort_retention', 'retention', 'active_members / cohort_size'),
        ('reward_popularity', NULL, 'Redemptions per reward'), ('reward_popularity', 'program_id', 'Program'), ('reward_popularity', 'reward_id', 'Reward'),
        ('reward_popularity', 'code', 'Reward code'), ('reward_popularity', 'name', 'Reward name'), ('reward_popularity', 'redemptions', 'Redemptions (with cancelled)'),
        ('reward_popularity', 'cancelled', 'Cancelled redemptions'), ('reward_popularity', 'points_spent', 'Points spent on issued redemptions'),
        ('reward_popularity', 'members', 'Distinct members'), ('reward_popularity', 'stock', 'Units left (NULL: unlimited)')
    ) v(view, col, txt) LOOP
        IF c.col IS NULL THEN
            EXECUTE format('COMMENT ON VIEW loyalty.%I IS %L', c.view, c.txt);
        ELSE
            EXECUTE format('COMMENT ON COLUMN loyalty.%I.%I IS %L', c.view, c.col, c.txt);
        END IF;
    END LOOP;
END $$;

SELECT pg_catalog.pg_extension_config_dump('loyalty.rfm_segments', '');   -- empty until you change the mapping
SELECT pg_catalog.pg_extension_config_dump('loyalty.models', '');

REVOKE ALL ON FUNCTION loyalty.purchase_summary(bigint, date, text, bigint, bigint), loyalty.fit_models(bigint, date, text, anycompatible),
    loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8), loyalty.model_holdout(bigint, date) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.refresh_models(text, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.purchase_summary(bigint, date, text, bigint, bigint), loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8)
    TO loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.purchase_summary(bigint, date, text, bigint, bigint), loyalty.fit_models(bigint, date, text, anycompatible),
    loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8), loyalty.model_holdout(bigint, date) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.refresh_models(text, date) TO loyalty_admin;
-- the analyst reads views, nothing else (the views run with their owner's rights)
GRANT SELECT ON loyalty.rfm_segment_map, loyalty.member_rfm, loyalty.segment_summary, loyalty.member_predictions, loyalty.churn_risk,
    loyalty.kpi_daily, loyalty.kpi_monthly, loyalty.kpi_summary, loyalty.tier_distribution,
    loyalty.channel_distribution, loyalty.member_mix, loyalty.cohort_retention, loyalty.reward_popularity
TO loyalty_analyst, loyalty_admin;
