CREATE FUNCTION loyalty.earn_batch(
    member bigint[], amount numeric[], reference text[],
    occurred_at timestamptz[] DEFAULT NULL, channel text[] DEFAULT NULL, lines jsonb[] DEFAULT NULL,
    on_error text DEFAULT 'fail')
RETURNS TABLE (orders bigint, earned bigint, replayed bigint, rejected bigint, points bigint)
AS 'MODULE_PATHNAME', 'loyalty_earn_batch'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
