CREATE FUNCTION loyalty.set_member_status(member bigint, status text)
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_set_member_status'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
