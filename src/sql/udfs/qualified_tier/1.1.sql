CREATE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.tier
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.tier(t.rank, t.name)
    FROM loyalty.members m JOIN loyalty.tiers t ON t.program_id = m.program_id
    WHERE m.member_id = loyalty.require_member($1) AND NOT t.invitation_only AND t.threshold <= loyalty.tier_metric($1, $2)
    ORDER BY t.rank DESC LIMIT 1
$$;
