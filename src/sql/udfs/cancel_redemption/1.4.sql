CREATE FUNCTION loyalty.cancel_redemption(member bigint, redemption bigint, reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_x loyalty.redemptions;
    v_back loyalty.points;
    v_cancel bigint;
BEGIN
    PERFORM loyalty.require_member(cancel_redemption.member);
    IF member IS NULL OR redemption IS NULL THEN
        RAISE EXCEPTION 'member and redemption must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    SELECT * INTO v_x FROM loyalty.redemptions x WHERE x.member_id = member AND x.redemption_id = redemption;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'redemption % of member % does not exist', redemption, member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_x.status = 'cancelled' THEN
        RAISE EXCEPTION 'redemption % is already cancelled', redemption USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- the points go back to the lots they came from
    v_back := loyalty.reverse(member, v_x.entry_id, NULL, NULL, 'redemption:' || redemption,
                              coalesce(reason, 'redemption cancelled'));
    -- the reverse entry just written (a redemption is cancelled once, under the lock)
    SELECT l.entry_id INTO v_cancel FROM loyalty.ledger l
    WHERE l.member_id = member AND l.reference = 'redemption:' || redemption
      AND l.kind = 'reverse' AND l.source_entry = v_x.entry_id;
    UPDATE loyalty.rewards r SET stock = r.stock + 1 WHERE r.reward_id = v_x.reward_id AND r.stock IS NOT NULL;
    UPDATE loyalty.redemptions x SET status = 'cancelled', cancelled_at = now(), cancel_entry = v_cancel
    WHERE x.member_id = member AND x.redemption_id = redemption;
    RETURN v_back::bigint;
END $$;
