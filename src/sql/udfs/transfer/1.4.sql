CREATE FUNCTION loyalty.transfer(
    from_member bigint, to_member bigint, points numeric,
    reason text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_transfer'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
