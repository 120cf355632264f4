-- One row, not a set: on Citus a set-returning function cannot take the
-- aggregates of a distributed table (SELECT loyalty.earn_batch(array_agg(...))
-- FROM loyalty.members ...), whose combine query has no ProjectSet step.
CREATE FUNCTION loyalty.earn_batch(
    member bigint[], amount numeric[], reference text[],
    occurred_at timestamptz[] DEFAULT NULL, channel text[] DEFAULT NULL, lines jsonb[] DEFAULT NULL,
    on_error text DEFAULT 'fail',
    OUT orders bigint, OUT earned bigint, OUT replayed bigint, OUT rejected bigint, OUT points bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'loyalty_earn_batch'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
