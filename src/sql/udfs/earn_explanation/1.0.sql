CREATE FUNCTION loyalty.earn_explanation(member bigint, entry bigint)
RETURNS jsonb
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(l.details, jsonb_build_object('earn_base', l.amount, 'points', l.points::bigint, 'rules', '[]'::jsonb))
    FROM loyalty.ledger l
    WHERE l.member_id = $1 AND l.entry_id = $2 AND l.kind = 'earn'
$$;
