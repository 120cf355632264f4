CREATE FUNCTION loyalty.renew_membership(
    member bigint, payment_reference text, amount anycompatible DEFAULT NULL, period_start timestamptz DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- a driver may send the amount as an integer, a float, a decimal or text
    v_amount numeric := amount::numeric;
    s loyalty.subscriptions;
    p loyalty.membership_plans;
    pay loyalty.membership_payments;
    v_end timestamptz;
BEGIN
    IF member IS NULL OR payment_reference IS NULL THEN
        RAISE EXCEPTION 'member and payment_reference must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF payment_reference = '' THEN
        RAISE EXCEPTION 'payment_reference must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) renew_membership.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_member(member);
    SELECT * INTO pay FROM loyalty.membership_payments x
    WHERE x.member_id OPERATOR(pg_catalog.=) renew_membership.member
      AND x.payment_reference OPERATOR(pg_catalog.=) renew_membership.payment_reference;
    IF FOUND THEN
        IF pay.kind OPERATOR(pg_catalog.<>) 'renew' THEN
            RAISE EXCEPTION 'payment % was recorded for a %', payment_reference, pay.kind
                USING ERRCODE = 'LY002', HINT = 'A payment reference names one payment.';
        END IF;
        RETURN pay.period_end;                      -- the same renewal again
    END IF;
    SELECT * INTO s FROM loyalty.subscriptions x
    WHERE x.member_id OPERATOR(pg_catalog.=) renew_membership.member AND x.status OPERATOR(pg_catalog.=) 'active';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % has no membership to renew', member USING ERRCODE = 'LY050',
            HINT = 'A membership that lapsed or ended starts again with loyalty.subscribe().';
    END IF;
    -- the period a renewal pays for: the one after the current one; naming it
    -- makes a retry with another payment reference harmless
    IF period_start IS NOT NULL AND period_start OPERATOR(pg_catalog.<>) s.current_period_end THEN
        IF EXISTS (SELECT FROM loyalty.membership_payments x
                   WHERE x.member_id OPERATOR(pg_catalog.=) renew_membership.member
                     AND x.subscription_id OPERATOR(pg_catalog.=) s.subscription_id
                     AND x.period_start OPERATOR(pg_catalog.=) renew_membership.period_start) THEN
            RAISE EXCEPTION 'the period from % is paid already', period_start USING ERRCODE = 'LY051',
                DETAIL = format('Payment %s paid it.', (SELECT x.payment_reference FROM loyalty.membership_payments x
                   WHERE x.member_id OPERATOR(pg_catalog.=) renew_membership.member
                     AND x.subscription_id OPERATOR(pg_catalog.=) s.subscription_id
                     AND x.period_start OPERATOR(pg_catalog.=) renew_membership.period_start LIMIT 1));
        END IF;
        RAISE EXCEPTION 'the next period starts at %, not %', s.current_period_end, period_start
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_amount IS NOT NULL AND (v_amount = 'NaN' OR v_amount < 0 OR v_amount = 'Infinity') THEN
        RAISE EXCEPTION 'amount must be a finite amount of at least 0, got %', v_amount USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO STRICT p FROM loyalty.membership_plans x WHERE x.plan_id OPERATOR(pg_catalog.=) s.plan_id;
    -- periods count from the start (31 January, 28 February, 31 March), never drifting
    v_end := s.started_at + (s.periods + 1) * CASE p.period WHEN 'month' THEN interval '1 month' ELSE interval '1 year' END;
    UPDATE loyalty.subscriptions x
    SET periods = s.periods + 1, current_period_start = s.current_period_end, current_period_end = v_end,
        cancel_at_period_end = false, cancelled_at = NULL
    WHERE x.member_id OPERATOR(pg_catalog.=) s.member_id AND x.subscription_id OPERATOR(pg_catalog.=) s.subscription_id;
    INSERT INTO loyalty.membership_payments (member_id, subscription_id, program_id, kind, amount, currency,
                                             period_start, period_end, payment_reference)
    VALUES (member, s.subscription_id, s.program_id, 'renew', coalesce(v_amount, p.fee), p.currency,
            s.current_period_end, v_end, payment_reference);
    -- the paid tier held for the new period too, while the membership holds it
    IF s.tier_given IS NOT NULL AND EXISTS (
        SELECT FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) renew_membership.member
          AND x.tier OPERATOR(loyalty.=) s.tier_given AND x.tier_locked_until IS NOT NULL) THEN
        PERFORM loyalty.tier_change(member, s.tier_given, 'membership ' OPERATOR(pg_catalog.||) p.code OPERATOR(pg_catalog.||) ' renewed', v_end);
    END IF;
    PERFORM loyalty.emit_event(member, 'membership.renewed',
        jsonb_build_object('subscription_id', s.subscription_id, 'plan', p.code, 'period_end', v_end));
    RETURN v_end;
END $$;
