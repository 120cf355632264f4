CREATE FUNCTION loyalty.earn(
    member bigint, amount double precision,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
    lines anycompatible DEFAULT NULL::jsonb, store text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_earn'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
