CREATE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS loyalty.points
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(l.points::bigint), 0)::loyalty.points
    FROM loyalty.ledger l
    WHERE l.member_id = loyalty.require_member($1) AND l.created_at <= $2
$$;
