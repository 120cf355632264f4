CREATE FUNCTION loyalty.set_tier_grace(member bigint, grace_until timestamptz)
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_set_tier_grace'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
