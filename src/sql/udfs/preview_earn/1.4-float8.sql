CREATE FUNCTION loyalty.preview_earn(
    member bigint, amount double precision, lines anycompatible DEFAULT NULL::jsonb,
    channel text DEFAULT NULL, store text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'loyalty_preview_earn'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
