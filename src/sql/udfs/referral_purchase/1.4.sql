CREATE FUNCTION loyalty.referral_purchase(member bigint, entry bigint, amount numeric)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ref loyalty.referrals;
    v_rules loyalty.referral_rules;
BEGIN
    PERFORM loyalty.require_member(referral_purchase.member);
    SELECT * INTO v_ref FROM loyalty.referrals r WHERE r.member_id = member AND r.status = 'pending';
    IF NOT FOUND THEN
        PERFORM loyalty.set_referral_pending(member, false);
        RETURN false;
    END IF;
    SELECT r.* INTO v_rules FROM loyalty.referral_rules r JOIN loyalty.accounts a ON a.program_id = r.program_id
    WHERE a.member_id = member;
    IF amount < coalesce(v_rules.min_purchase_amount, 0) THEN
        RETURN false;           -- not a qualifying purchase: wait for the next one
    END IF;
    IF v_rules.referee_points::bigint > 0 THEN
        PERFORM loyalty.award(member, v_rules.referee_points, 'referral: welcome', NULL, 'referral:' || v_ref.code,
                              'referral:' || member);
    END IF;
    -- a referrer who left (or was merged away) gets nothing, and never blocks the sale
    IF v_rules.referrer_points::bigint > 0
       AND (SELECT a.status FROM loyalty.accounts a WHERE a.member_id = v_ref.referrer) = 'active' THEN
        -- the referrer may be locked after the new member: referrals never form loops
        PERFORM loyalty.award(v_ref.referrer, v_rules.referrer_points, 'referral: member ' || member || ' bought',
                              NULL, 'referral:' || v_ref.code, 'referral:' || member);
    END IF;
    -- the referral counts toward the referrer's challenges (under its lock)
    IF (SELECT p.has_challenges FROM loyalty.programs p WHERE p.program_id = v_rules.program_id) THEN
        PERFORM 1 FROM loyalty.accounts a WHERE a.member_id = v_ref.referrer AND a.status = 'active' FOR NO KEY UPDATE;
        IF FOUND THEN
            PERFORM loyalty.challenge_move(v_ref.referrer, NULL, 'referral', NULL, now(), NULL, NULL, member::text);
        END IF;
    END IF;
    UPDATE loyalty.referrals r SET status = 'rewarded', rewarded_at = now(), entry_id = entry WHERE r.member_id = member;
    PERFORM loyalty.set_referral_pending(member, false);
    RETURN true;
END $$;
