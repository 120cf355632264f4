-- Purchase models (BG/NBD and MBG/NBD, src/btyd.c) and a penalizer for every
-- fit: for the install script and the 1.3 -> 1.4 upgrade.

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
