-- SECURITY DEFINER: the API's writes run as the extension owner, so whether
-- row-level security or a missing privilege keeps them off the fast store is
-- answered for that role.
CREATE FUNCTION loyalty.write_store()
RETURNS TABLE (table_name text, store text, reason text)
AS 'MODULE_PATHNAME', 'loyalty_write_store'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
