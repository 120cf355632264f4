CREATE FUNCTION loyalty.hold(
    member bigint, points numeric, ttl interval DEFAULT interval '15 minutes',
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_hold'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
