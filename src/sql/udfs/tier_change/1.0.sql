CREATE FUNCTION loyalty.tier_change(member bigint, new_tier loyalty.tier, reason text,
                                    locked_until timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old loyalty.tier;
BEGIN
    SELECT a.tier INTO v_old FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    -- (IS DISTINCT FROM cannot name the operator's schema)
    IF (v_old IS NULL AND new_tier IS NULL) OR v_old OPERATOR(loyalty.=) new_tier THEN
        UPDATE loyalty.accounts a SET tier_locked_until = locked_until, tier_grace_until = NULL
        WHERE a.member_id OPERATOR(pg_catalog.=) member AND locked_until IS NOT NULL;
        RETURN false;
    END IF;
    UPDATE loyalty.accounts a SET tier = new_tier, tier_since = now(), tier_locked_until = locked_until,
        tier_grace_until = NULL, updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason) VALUES (member, v_old, new_tier, reason);
    PERFORM loyalty.emit_event(member, 'tier.changed',
        jsonb_build_object('from', v_old::text, 'to', new_tier::text, 'reason', reason));
    RETURN true;
END $$;
