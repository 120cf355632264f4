CREATE FUNCTION loyalty.change_membership_plan(
    member bigint, plan text, payment_reference text, amount anycompatible DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- a driver may send the amount as an integer, a float, a decimal or text
    v_amount numeric := amount::numeric;
    a loyalty.accounts;
    s loyalty.subscriptions;
    old_p loyalty.membership_plans;
    p loyalty.membership_plans;
    pay loyalty.membership_payments;
    sub loyalty.subscriptions;
BEGIN
    IF member IS NULL OR plan IS NULL OR payment_reference IS NULL THEN
        RAISE EXCEPTION 'member, plan and payment_reference must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF payment_reference = '' THEN
        RAISE EXCEPTION 'payment_reference must not be empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Send the reference of the payment the application took for the new plan (0 is a valid amount).';
    END IF;
    IF v_amount IS NOT NULL AND (v_amount = 'NaN' OR v_amount < 0 OR v_amount = 'Infinity') THEN
        RAISE EXCEPTION 'amount must be a finite amount of at least 0, got %', v_amount USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the member's lock, as every write of the member takes it
    SELECT * INTO a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) change_membership_plan.member
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(a.program_id);
    -- the same change again (a payment reference names one payment)
    SELECT * INTO pay FROM loyalty.membership_payments x
    WHERE x.member_id OPERATOR(pg_catalog.=) change_membership_plan.member
      AND x.payment_reference OPERATOR(pg_catalog.=) change_membership_plan.payment_reference;
    IF FOUND THEN
        IF pay.kind OPERATOR(pg_catalog.<>) 'change' THEN
            RAISE EXCEPTION 'payment % was recorded for a %', payment_reference, pay.kind
                USING ERRCODE = 'LY002', HINT = 'A payment reference names one payment.';
        END IF;
        RETURN pay.subscription_id;
    END IF;
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'member % is %', member, a.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO s FROM loyalty.subscriptions x
    WHERE x.member_id OPERATOR(pg_catalog.=) change_membership_plan.member AND x.status OPERATOR(pg_catalog.=) 'active';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % has no membership to change', member USING ERRCODE = 'LY050',
            HINT = 'Start one with loyalty.subscribe().';
    END IF;
    SELECT * INTO STRICT old_p FROM loyalty.membership_plans x WHERE x.plan_id OPERATOR(pg_catalog.=) s.plan_id;
    SELECT * INTO p FROM loyalty.membership_plans x
    WHERE x.program_id OPERATOR(pg_catalog.=) a.program_id AND x.code OPERATOR(pg_catalog.=) change_membership_plan.plan;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % has no plan "%"', a.program_id, plan USING ERRCODE = 'no_data_found';
    END IF;
    IF p.plan_id = old_p.plan_id THEN
        RAISE EXCEPTION 'member % is on plan "%" already', member, plan USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Renew it with loyalty.renew_membership().';
    END IF;
    IF NOT p.active THEN
        RAISE EXCEPTION 'plan "%" is no longer offered', plan USING ERRCODE = 'LY050';
    END IF;

    -- the current membership ends now, with its benefits ...
    UPDATE loyalty.subscriptions x SET status = 'changed', ended_at = now(),
        end_reason = 'changed to ' OPERATOR(pg_catalog.||) p.code
    WHERE x.member_id OPERATOR(pg_catalog.=) s.member_id AND x.subscription_id OPERATOR(pg_catalog.=) s.subscription_id;
    PERFORM loyalty.end_membership_benefits(member, s.subscription_id,
        'membership ' OPERATOR(pg_catalog.||) old_p.code OPERATOR(pg_catalog.||) ' changed to ' OPERATOR(pg_catalog.||) p.code);
    -- ... and the new plan's starts: a period of its own from now, paid by
    -- what the application charged for the change (it prorates, not us)
    sub := loyalty.membership_start(member, p.plan_id, now(), payment_reference, v_amount, 'change');
    PERFORM loyalty.emit_event(member, 'membership.changed',
        jsonb_build_object('subscription_id', sub.subscription_id, 'from', old_p.code, 'plan', p.code,
                           'period_end', sub.current_period_end));
    RETURN sub.subscription_id;
END $$;
