CREATE FUNCTION loyalty.earn_explanation(member bigint, entry bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT coalesce(l.details, jsonb_build_object('earn_base', l.amount, 'points', l.points::bigint, 'rules', '[]'::jsonb))
    FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.entry_id = $2 AND l.kind = 'earn');
END $$;
