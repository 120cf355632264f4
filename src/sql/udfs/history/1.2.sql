CREATE FUNCTION loyalty.history(member bigint, since timestamptz DEFAULT '-infinity', max_rows integer DEFAULT 1000)
RETURNS SETOF loyalty.ledger
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN QUERY
    SELECT * FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.created_at >= coalesce($2, '-infinity')
    ORDER BY l.created_at DESC, l.entry_id DESC
    LIMIT coalesce($3, 1000);
END $$;
