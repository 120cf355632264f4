CREATE FUNCTION loyalty.tier_after_write(member bigint, cause text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acc loyalty.accounts;
    v_q loyalty.tier;
    v_demote boolean;
BEGIN
    PERFORM loyalty.require_member(tier_after_write.member);
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT p.tier_refund_demotes INTO v_demote FROM loyalty.programs p
    WHERE p.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND p.tier_metric IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    v_q := loyalty.qualified_tier(member);
    IF v_q IS NOT NULL AND (v_acc.tier IS NULL OR v_q OPERATOR(loyalty.>) v_acc.tier) THEN
        -- an upgrade never waits, and ends a manual or invitation lock below it
        RETURN loyalty.tier_change(member, v_q, 'qualified (' || cause || ')');
    END IF;
    IF cause = 'refund' AND v_demote AND v_acc.tier IS NOT NULL
       AND (v_q IS NULL OR v_q OPERATOR(loyalty.<) v_acc.tier)
       AND (v_acc.tier_locked_until IS NULL OR v_acc.tier_locked_until <= now()) THEN
        RETURN loyalty.tier_change(member, v_q, 'refund lowered the qualifying metric');
    END IF;
    RETURN false;
END $$;
