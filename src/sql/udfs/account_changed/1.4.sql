CREATE FUNCTION loyalty.account_changed(member bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_account_changed'
LANGUAGE C VOLATILE STRICT SET search_path = pg_catalog, pg_temp;
