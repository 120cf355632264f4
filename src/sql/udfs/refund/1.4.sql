CREATE FUNCTION loyalty.refund(
    member bigint, reference text, amount numeric DEFAULT NULL,
    reason text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_refund'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
