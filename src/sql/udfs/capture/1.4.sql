CREATE FUNCTION loyalty.capture(hold bigint, points numeric DEFAULT NULL,
                                idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_capture'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
