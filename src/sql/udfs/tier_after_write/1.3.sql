CREATE FUNCTION loyalty.tier_after_write(member bigint, cause text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acc loyalty.accounts;
    v_q loyalty.tier;
    v_demote boolean;
    v_metric text;
    v_next numeric;
BEGIN
    PERFORM loyalty.require_member(tier_after_write.member);
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT p.tier_refund_demotes, p.tier_metric INTO v_demote, v_metric FROM loyalty.programs p
    WHERE p.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND p.tier_metric IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF cause OPERATOR(pg_catalog.<>) 'refund' THEN
        -- An earn can only upgrade.  The window's metric never exceeds the
        -- member's lifetime total of it (net of refunds, kept on the account),
        -- so when that total is below every higher tier's threshold, or there
        -- is no higher tier, the window need not be read (it grows with the
        -- member's purchases: reading it on every earn made earns O(window)).
        SELECT pg_catalog.min(t.threshold) INTO v_next FROM loyalty.tiers t
        WHERE t.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND NOT t.invitation_only
          AND (v_acc.tier IS NULL OR t.rank OPERATOR(pg_catalog.>) loyalty.tier_rank(v_acc.tier));
        IF v_next IS NULL OR (CASE v_metric
                                  WHEN 'spend' THEN v_acc.purchase_amount
                                  WHEN 'points' THEN v_acc.lifetime_earned::bigint::numeric
                                  WHEN 'visits' THEN v_acc.purchase_days::numeric
                              END) OPERATOR(pg_catalog.<) v_next THEN
            RETURN false;
        END IF;
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
