CREATE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS loyalty.points
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT coalesce(sum(l.points::bigint), 0)::loyalty.points
    FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.created_at <= $2);
END $$;
