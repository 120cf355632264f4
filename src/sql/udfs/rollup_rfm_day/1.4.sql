CREATE FUNCTION loyalty.rollup_rfm_day(t timestamptz) RETURNS integer
    AS 'MODULE_PATHNAME', 'rfm_rollup_day' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
