CREATE FUNCTION loyalty.set_referral_pending(member bigint, pending boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_set_referral_pending'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
