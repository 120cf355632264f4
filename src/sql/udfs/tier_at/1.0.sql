CREATE FUNCTION loyalty.tier_at(member bigint, at timestamptz)
RETURNS loyalty.tier
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.to_tier FROM loyalty.tier_history h
    WHERE h.member_id = $1 AND h.changed_at <= $2
    ORDER BY h.changed_at DESC, h.change_id DESC LIMIT 1
$$;
