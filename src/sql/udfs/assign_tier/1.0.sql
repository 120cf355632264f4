CREATE FUNCTION loyalty.assign_tier(member bigint, tier loyalty.tier, until timestamptz DEFAULT 'infinity', reason text DEFAULT 'assigned')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF member IS NULL OR tier IS NULL THEN
        RAISE EXCEPTION 'member and tier must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.tiers t JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
                   WHERE m.member_id OPERATOR(pg_catalog.=) member
                     AND t.rank OPERATOR(pg_catalog.=) loyalty.tier_rank(assign_tier.tier)
                     AND t.name OPERATOR(pg_catalog.=) loyalty.tier_name(assign_tier.tier)) THEN
        RAISE EXCEPTION 'tier % is not on the ladder of member %''s program', tier, member
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF until IS NULL OR until <= now() THEN
        RAISE EXCEPTION 'until must lie in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty.tier_change(member, tier, coalesce(reason, 'assigned'), until);
END $$;
