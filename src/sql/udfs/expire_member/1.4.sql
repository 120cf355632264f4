CREATE FUNCTION loyalty.expire_member(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_expire_member'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
