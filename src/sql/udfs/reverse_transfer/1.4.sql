CREATE FUNCTION loyalty.reverse_transfer(
    sender bigint, entry bigint, reason text, idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_reverse_transfer'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
