CREATE FUNCTION loyalty.rollup_array_union(a anyarray, b anyarray) RETURNS anyarray
    AS 'MODULE_PATHNAME', 'rollup_array_union' LANGUAGE C IMMUTABLE PARALLEL SAFE;
