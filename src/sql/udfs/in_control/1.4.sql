CREATE FUNCTION loyalty.in_control(member bigint, seed text, share float8)
RETURNS boolean
AS 'MODULE_PATHNAME', 'loyalty_in_control'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp;
