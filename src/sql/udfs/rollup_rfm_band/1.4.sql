CREATE FUNCTION loyalty.rollup_rfm_band(amount numeric) RETURNS bigint
    AS 'MODULE_PATHNAME', 'rfm_rollup_band' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
