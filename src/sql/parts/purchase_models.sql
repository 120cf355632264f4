-- Purchase models (BG/NBD and MBG/NBD, src/btyd.c): for the install script
-- and the 1.3 -> 1.4 upgrade.

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
