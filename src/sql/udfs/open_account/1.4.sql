CREATE FUNCTION loyalty.open_account(member bigint, program bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_open_account'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
