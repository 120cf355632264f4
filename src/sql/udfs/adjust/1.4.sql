CREATE FUNCTION loyalty.adjust(
    member bigint, points numeric, reason text,
    idempotency_key text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_adjust'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
