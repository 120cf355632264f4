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
