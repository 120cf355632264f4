CREATE FUNCTION loyalty.challenge_progress_put(period loyalty.challenge_progress)
RETURNS void
AS 'MODULE_PATHNAME', 'loyalty_challenge_progress_put'
LANGUAGE C VOLATILE STRICT SET search_path = pg_catalog, pg_temp;
