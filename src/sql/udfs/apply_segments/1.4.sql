CREATE FUNCTION loyalty.apply_segments(members bigint[], segments text[], risk_bands text[], since date[])
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_apply_segments'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
