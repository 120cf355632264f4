CREATE FUNCTION loyalty.history(member bigint, since timestamptz DEFAULT '-infinity', max_rows integer DEFAULT 1000)
RETURNS SETOF loyalty.ledger
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.ledger l
    WHERE l.member_id = loyalty.require_member($1) AND l.created_at >= coalesce($2, '-infinity')
    ORDER BY l.created_at DESC, l.entry_id DESC
    LIMIT coalesce($3, 1000)
$$;
