CREATE FUNCTION loyalty.forfeit_books(member bigint, reason text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_forfeit_books'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
