CREATE FUNCTION loyalty.reverse(
    member bigint, entry bigint,
    points numeric DEFAULT NULL, amount anycompatible DEFAULT NULL,
    reference text DEFAULT NULL, reason text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_reverse'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
