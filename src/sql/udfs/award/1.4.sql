CREATE FUNCTION loyalty.award(
    member bigint, points numeric, reason text,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_award'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
