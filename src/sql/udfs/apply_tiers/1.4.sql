CREATE FUNCTION loyalty.apply_tiers(members bigint[], changes boolean[], tiers loyalty.tier[],
                                    grace_until timestamptz[])
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_apply_tiers'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
