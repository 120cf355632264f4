CREATE FUNCTION loyalty.tier_at(member bigint, at timestamptz)
RETURNS loyalty.tier
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT h.to_tier FROM loyalty.tier_history h
    WHERE h.member_id = v_member AND h.changed_at <= $2
    ORDER BY h.changed_at DESC, h.change_id DESC LIMIT 1);
END $$;
