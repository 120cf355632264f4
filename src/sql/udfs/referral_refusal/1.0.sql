CREATE FUNCTION loyalty.referral_refusal(new_member bigint, referrer bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM loyalty.referrals r WHERE r.member_id = new_member) THEN
        RETURN format('member %s was already referred', new_member);
    END IF;
    IF (SELECT a.purchase_count FROM loyalty.accounts a WHERE a.member_id = new_member) > 0 THEN
        RETURN format('member %s has already made a purchase', new_member);
    END IF;
    -- a loop: the referrer was itself referred, directly or further up, by the new member
    IF EXISTS (WITH RECURSIVE up(m, depth) AS (
                   SELECT r.referrer, 1 FROM loyalty.referrals r WHERE r.member_id = referral_refusal.referrer
                   UNION ALL
                   SELECT r.referrer, up.depth + 1 FROM loyalty.referrals r JOIN up ON r.member_id = up.m
                   WHERE up.depth < 1000)
               SELECT FROM up WHERE up.m = new_member) THEN
        RETURN format('member %s is in the referral chain of member %s', new_member, referrer);
    END IF;
    RETURN NULL;
END $$;
