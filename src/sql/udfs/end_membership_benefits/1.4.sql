CREATE FUNCTION loyalty.end_membership_benefits(member bigint, subscription bigint, reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s loyalty.subscriptions;
    a loyalty.accounts;
BEGIN
    SELECT * INTO STRICT s FROM loyalty.subscriptions x
    WHERE x.member_id OPERATOR(pg_catalog.=) end_membership_benefits.member
      AND x.subscription_id OPERATOR(pg_catalog.=) end_membership_benefits.subscription;
    SELECT * INTO STRICT a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) end_membership_benefits.member;
    -- the paid tier, while the membership still holds it: back to the tier the
    -- member's activity earns (not one step down to a tier never qualified for)
    IF s.tier_given IS NOT NULL AND a.tier OPERATOR(loyalty.=) s.tier_given AND a.tier_locked_until IS NOT NULL
       AND a.status OPERATOR(pg_catalog.<>) 'closed' THEN
        PERFORM loyalty.tier_change(member, loyalty.qualified_tier(member), reason);
    END IF;
END $$;
