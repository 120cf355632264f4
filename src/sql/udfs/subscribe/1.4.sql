CREATE FUNCTION loyalty.subscribe(
    member bigint, plan text, payment_reference text,
    amount anycompatible DEFAULT NULL, started_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- a driver may send the amount as an integer, a float, a decimal or text
    v_amount numeric := amount::numeric;
    m loyalty.members;
    a loyalty.accounts;
    p loyalty.membership_plans;
    pay loyalty.membership_payments;
    v_start timestamptz := coalesce(started_at, now());
    sub loyalty.subscriptions;
    v_id bigint;
BEGIN
    IF member IS NULL OR plan IS NULL OR payment_reference IS NULL THEN
        RAISE EXCEPTION 'member, plan and payment_reference must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF payment_reference = '' THEN
        RAISE EXCEPTION 'payment_reference must not be empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Send the reference of the payment the application took (the extension records it, it takes no money).';
    END IF;
    IF NOT isfinite(v_start) OR v_start > now() + interval '5 minutes' THEN
        RAISE EXCEPTION 'started_at must be a finite time, not in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- the member's lock, as every write of the member takes it
    SELECT * INTO a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) subscribe.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO STRICT m FROM loyalty.members x WHERE x.member_id OPERATOR(pg_catalog.=) subscribe.member;
    PERFORM loyalty.require_program(m.program_id);
    -- a payment recorded before: the same call again
    SELECT * INTO pay FROM loyalty.membership_payments x
    WHERE x.member_id OPERATOR(pg_catalog.=) subscribe.member
      AND x.payment_reference OPERATOR(pg_catalog.=) subscribe.payment_reference;
    IF FOUND THEN
        IF pay.kind OPERATOR(pg_catalog.<>) 'subscribe' THEN
            RAISE EXCEPTION 'payment % was recorded for a %', payment_reference, pay.kind
                USING ERRCODE = 'LY002', HINT = 'A payment reference names one payment.';
        END IF;
        RETURN pay.subscription_id;
    END IF;
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'member % is %', member, a.status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT * INTO p FROM loyalty.membership_plans x
    WHERE x.program_id OPERATOR(pg_catalog.=) m.program_id AND x.code OPERATOR(pg_catalog.=) subscribe.plan;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % has no plan "%"', m.program_id, plan USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT p.active THEN
        RAISE EXCEPTION 'plan "%" is no longer offered', plan USING ERRCODE = 'LY050';
    END IF;
    IF v_amount IS NOT NULL AND (v_amount = 'NaN' OR v_amount < 0 OR v_amount = 'Infinity') THEN
        RAISE EXCEPTION 'amount must be a finite amount of at least 0, got %', v_amount USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM loyalty.subscriptions x WHERE x.member_id OPERATOR(pg_catalog.=) subscribe.member
               AND x.status OPERATOR(pg_catalog.=) 'active') THEN
        RAISE EXCEPTION 'member % already has a membership', member USING ERRCODE = 'LY050',
            HINT = 'Renew it with loyalty.renew_membership(), or end it with loyalty.cancel_membership() first.';
    END IF;
    sub := loyalty.membership_start(member, p.plan_id, v_start, payment_reference, v_amount, 'subscribe');
    v_id := sub.subscription_id;
    IF p.welcome_points > 0 THEN
        PERFORM loyalty.award(member, p.welcome_points, 'membership ' OPERATOR(pg_catalog.||) p.code OPERATOR(pg_catalog.||) ' welcome',
                              idempotency_key => 'membership:' OPERATOR(pg_catalog.||) v_id OPERATOR(pg_catalog.||) ':welcome');
    END IF;
    PERFORM loyalty.emit_event(member, 'membership.started',
        jsonb_build_object('subscription_id', v_id, 'plan', p.code, 'period_end', sub.current_period_end));
    RETURN v_id;
END $$;
