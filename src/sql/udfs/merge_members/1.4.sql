CREATE FUNCTION loyalty.merge_members(survivor bigint, absorbed bigint, idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_merge_members'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
