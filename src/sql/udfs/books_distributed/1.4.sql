CREATE FUNCTION loyalty.books_distributed()
RETURNS boolean
AS 'MODULE_PATHNAME', 'loyalty_books_distributed'
LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
