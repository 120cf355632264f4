CREATE FUNCTION loyalty.tier_change(member bigint, new_tier loyalty.tier, reason text,
                                    locked_until timestamptz DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'loyalty_tier_change'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
