CREATE FUNCTION loyalty.refer(new_member bigint, code text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog bigint;
    v_referrer bigint;
    v_rules loyalty.referral_rules;
    v_n bigint;
    v_why text;
BEGIN
    PERFORM loyalty.require_member(refer.new_member);
    IF new_member IS NULL OR code IS NULL THEN
        RAISE EXCEPTION 'new_member and code must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.program_id INTO v_prog FROM loyalty.accounts a WHERE a.member_id = new_member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', new_member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.member_id INTO v_referrer FROM loyalty.referral_codes c
    WHERE c.program_id = v_prog AND c.code = upper(refer.code);
    IF NOT FOUND THEN
        IF EXISTS (SELECT FROM loyalty.referral_codes c WHERE c.code = upper(refer.code)) THEN
            RAISE EXCEPTION 'referral refused: code "%" belongs to a member of another program', code
                USING ERRCODE = 'LY020', DETAIL = format('Member %s is in program %s.', new_member, v_prog);
        END IF;
        RAISE EXCEPTION 'referral refused: no member of program % has code "%"', v_prog, code USING ERRCODE = 'LY020';
    END IF;
    IF v_referrer = new_member THEN
        RAISE EXCEPTION 'referral refused: member % cannot refer itself', new_member USING ERRCODE = 'LY020';
    END IF;
    -- A refusal for good is raised before any lock: a purchase of a referred
    -- member locks it, then its referrer, so the reverse pair (the referrer
    -- entering its referee's code) must not wait for a lock.
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    -- both members, in member_id order (no deadlock with another referral);
    -- one statement per member, so that each is routed to its shard on Citus
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) least(new_member, v_referrer) FOR NO KEY UPDATE;
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) greatest(new_member, v_referrer) FOR NO KEY UPDATE;
    SELECT * INTO v_rules FROM loyalty.referral_rules r WHERE r.program_id = v_prog;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'referral refused: program % has no referral rules', v_prog USING ERRCODE = 'LY020',
            HINT = 'Set them with loyalty.set_referral_rules().';
    END IF;
    -- again under the locks: a racing referral or purchase has committed by now
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    IF v_rules.max_referrals_per_referrer IS NOT NULL THEN
        SELECT count(*) INTO v_n FROM loyalty.referrals r WHERE r.referrer = v_referrer;
        IF v_n >= v_rules.max_referrals_per_referrer THEN
            RAISE EXCEPTION 'referral refused: member % has reached % referrals', v_referrer, v_n USING ERRCODE = 'LY020',
                DETAIL = format('The program allows %s referrals per member.', v_rules.max_referrals_per_referrer);
        END IF;
    END IF;
    INSERT INTO loyalty.referrals (member_id, referrer, code) VALUES (new_member, v_referrer, upper(refer.code));
    PERFORM loyalty.set_referral_pending(new_member, true);
    RETURN v_referrer;
END $$;
