CREATE FUNCTION loyalty.household_close(household bigint, reason text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_household_close'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
