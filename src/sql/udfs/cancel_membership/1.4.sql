CREATE FUNCTION loyalty.cancel_membership(
    member bigint, at_period_end boolean DEFAULT true, reason text DEFAULT NULL,
    refund_reference text DEFAULT NULL, refund_amount anycompatible DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- a driver may send the amount as an integer, a float, a decimal or text
    v_refund_amount numeric := refund_amount::numeric;
    s loyalty.subscriptions;
    p loyalty.membership_plans;
BEGIN
    IF member IS NULL OR at_period_end IS NULL THEN
        RAISE EXCEPTION 'member and at_period_end must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (refund_reference IS NULL) <> (v_refund_amount IS NULL) THEN
        RAISE EXCEPTION 'a refund needs both refund_reference and refund_amount' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_refund_amount IS NOT NULL AND (v_refund_amount = 'NaN' OR v_refund_amount <= 0 OR v_refund_amount = 'Infinity') THEN
        RAISE EXCEPTION 'refund_amount must be a positive finite amount' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF refund_reference IS NOT NULL AND at_period_end THEN
        RAISE EXCEPTION 'a refunded membership ends now' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Send at_period_end => false with a refund: the benefits end when the fee is given back.';
    END IF;
    PERFORM FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) cancel_membership.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_member(member);
    -- a refund recorded before: the same cancellation again
    IF refund_reference IS NOT NULL AND EXISTS (
        SELECT FROM loyalty.membership_payments x WHERE x.member_id OPERATOR(pg_catalog.=) cancel_membership.member
          AND x.payment_reference OPERATOR(pg_catalog.=) cancel_membership.refund_reference AND x.kind = 'refund') THEN
        RETURN (SELECT x.ended_at FROM loyalty.subscriptions x JOIN loyalty.membership_payments y
                  ON y.member_id = x.member_id AND y.subscription_id = x.subscription_id
                WHERE y.member_id OPERATOR(pg_catalog.=) cancel_membership.member
                  AND y.payment_reference OPERATOR(pg_catalog.=) cancel_membership.refund_reference);
    END IF;
    SELECT * INTO s FROM loyalty.subscriptions x
    WHERE x.member_id OPERATOR(pg_catalog.=) cancel_membership.member AND x.status OPERATOR(pg_catalog.=) 'active';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % has no membership to cancel', member USING ERRCODE = 'LY050';
    END IF;
    SELECT * INTO STRICT p FROM loyalty.membership_plans x WHERE x.plan_id OPERATOR(pg_catalog.=) s.plan_id;
    IF at_period_end THEN
        -- renewal stops; the benefits hold to the end of the paid period
        UPDATE loyalty.subscriptions x SET cancel_at_period_end = true, cancelled_at = now(),
            end_reason = coalesce(cancel_membership.reason, 'cancelled')
        WHERE x.member_id OPERATOR(pg_catalog.=) s.member_id AND x.subscription_id OPERATOR(pg_catalog.=) s.subscription_id;
        RETURN s.current_period_end;
    END IF;
    UPDATE loyalty.subscriptions x SET status = 'ended', cancelled_at = now(), ended_at = now(),
        end_reason = coalesce(cancel_membership.reason, 'cancelled')
    WHERE x.member_id OPERATOR(pg_catalog.=) s.member_id AND x.subscription_id OPERATOR(pg_catalog.=) s.subscription_id;
    IF refund_reference IS NOT NULL THEN
        INSERT INTO loyalty.membership_payments (member_id, subscription_id, program_id, kind, amount, currency,
                                                 period_start, period_end, payment_reference)
        VALUES (member, s.subscription_id, s.program_id, 'refund', -v_refund_amount, p.currency,
                s.current_period_start, s.current_period_end, refund_reference);
    END IF;
    PERFORM loyalty.end_membership_benefits(member, s.subscription_id, 'membership ' OPERATOR(pg_catalog.||) p.code OPERATOR(pg_catalog.||) ' cancelled');
    PERFORM loyalty.emit_event(member, 'membership.cancelled',
        jsonb_build_object('subscription_id', s.subscription_id, 'plan', p.code, 'refunded', v_refund_amount));
    RETURN now();
END $$;
