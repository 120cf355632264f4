CREATE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.tier
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT loyalty.tier(t.rank, t.name)
    FROM loyalty.members m JOIN loyalty.tiers t ON t.program_id = m.program_id
    WHERE m.member_id = v_member AND NOT t.invitation_only AND t.threshold <= loyalty.tier_metric($1, $2)
    ORDER BY t.rank DESC LIMIT 1);
END $$;
