CREATE FUNCTION loyalty.archive_books(partitions regclass[], horizon timestamptz, archive_schema text,
                                      OUT carried bigint, OUT lots bigint, OUT allocations bigint)
AS 'MODULE_PATHNAME', 'loyalty_archive_books'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
