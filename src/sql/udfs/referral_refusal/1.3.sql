CREATE FUNCTION loyalty.referral_refusal(new_member bigint, referrer bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_up bigint := referral_refusal.referrer;
    v_depth integer := 0;
BEGIN
    PERFORM loyalty.require_member(referral_refusal.new_member);
    PERFORM loyalty.require_member(referral_refusal.referrer);
    IF EXISTS (SELECT FROM loyalty.referrals r WHERE r.member_id = new_member) THEN
        RETURN format('member %s was already referred', new_member);
    END IF;
    IF (SELECT a.purchase_count FROM loyalty.accounts a WHERE a.member_id = new_member) > 0 THEN
        RETURN format('member %s has already made a purchase', new_member);
    END IF;
    -- a loop: the referrer was itself referred, directly or further up, by
    -- the new member.  One lookup per member of the chain (at most 1000), each
    -- by its member_id: on Citus each is routed to that member's shard, where
    -- one recursive query across members cannot be planned.
    LOOP
        SELECT r.referrer INTO v_up FROM loyalty.referrals r WHERE r.member_id OPERATOR(pg_catalog.=) v_up;
        EXIT WHEN NOT FOUND OR v_depth OPERATOR(pg_catalog.>=) 1000;
        IF v_up OPERATOR(pg_catalog.=) new_member THEN
            RETURN format('member %s is in the referral chain of member %s', new_member, referrer);
        END IF;
        v_depth := v_depth OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN NULL;
END $$;
