CREATE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint := loyalty.require_member($1);
    v_household bigint;
    v_sum numeric := 0;
    v_m bigint;
BEGIN
    -- a program with household tiers: the metric of the member's household,
    -- its current members' metrics added up
    SELECT hm.household_id INTO v_household
    FROM loyalty.household_members hm
    JOIN loyalty.household_rules r ON r.program_id OPERATOR(pg_catalog.=) hm.program_id AND r.household_tier
    WHERE hm.member_id OPERATOR(pg_catalog.=) v_member AND hm.left_at IS NULL;
    IF v_household IS NULL THEN
        RETURN loyalty.member_tier_metric(v_member, $2);
    END IF;
    FOR v_m IN SELECT x.member_id FROM loyalty.household_members x
               WHERE x.household_id OPERATOR(pg_catalog.=) v_household AND x.left_at IS NULL LOOP
        v_sum := v_sum OPERATOR(pg_catalog.+) coalesce(loyalty.member_tier_metric(v_m, $2), 0);
    END LOOP;
    RETURN v_sum;
END $$;
