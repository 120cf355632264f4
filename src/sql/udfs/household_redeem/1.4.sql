CREATE FUNCTION loyalty.household_redeem(
    redeemer bigint, points numeric,
    channel text DEFAULT NULL, reference text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_household_redeem'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
