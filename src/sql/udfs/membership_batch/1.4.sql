CREATE FUNCTION loyalty.membership_batch(as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
RETURNS TABLE (notified bigint, bonuses bigint, ended bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_as_of timestamptz := coalesce(as_of, now());
    r record;
    v_due integer;
    v_step interval;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_as_of > now() THEN
        RAISE EXCEPTION 'cannot process memberships as of a future time %', v_as_of USING ERRCODE = 'invalid_parameter_value';
    END IF;
    notified := 0; bonuses := 0; ended := 0;
    -- each subscription under its member's lock, in member order (as every
    -- write of the member takes it: no deadlock with renewals or earns)

    -- renewals due soon: one event per paid period
    FOR r IN
        SELECT s.member_id, s.subscription_id, s.current_period_end, p.code
        FROM loyalty.subscriptions s JOIN loyalty.membership_plans p ON p.plan_id = s.plan_id
        WHERE s.status = 'active' AND NOT s.cancel_at_period_end
          AND s.current_period_end - p.renewal_notice <= v_as_of AND s.current_period_end > v_as_of
          AND s.notified_period_end IS DISTINCT FROM s.current_period_end
        ORDER BY s.member_id LIMIT batch_size
    LOOP
        PERFORM FROM loyalty.accounts a WHERE a.member_id = r.member_id FOR NO KEY UPDATE;
        UPDATE loyalty.subscriptions s SET notified_period_end = r.current_period_end
        WHERE s.member_id = r.member_id AND s.subscription_id = r.subscription_id AND s.status = 'active'
          AND s.current_period_end = r.current_period_end;
        IF FOUND THEN
            PERFORM loyalty.emit_event(r.member_id, 'membership.renewal_due',
                jsonb_build_object('subscription_id', r.subscription_id, 'plan', r.code, 'period_end', r.current_period_end),
                'renewal_due:' || r.subscription_id || ':' || r.current_period_end);
            notified := notified + 1;
        END IF;
    END LOOP;

    -- monthly bonuses: month n (from 1) is due at started_at + (n - 1) months, within the paid periods
    FOR r IN
        SELECT s.member_id, s.subscription_id, s.started_at, s.bonus_months, s.periods, p.period, p.code,
               p.monthly_points
        FROM loyalty.subscriptions s JOIN loyalty.membership_plans p ON p.plan_id = s.plan_id
        WHERE s.status = 'active' AND p.monthly_points > 0 AND s.started_at <= v_as_of
          AND s.started_at + s.bonus_months * interval '1 month' <= v_as_of
          AND s.bonus_months < s.periods * CASE p.period WHEN 'month' THEN 1 ELSE 12 END
        ORDER BY s.member_id LIMIT batch_size
    LOOP
        PERFORM FROM loyalty.accounts a WHERE a.member_id = r.member_id FOR NO KEY UPDATE;
        v_due := r.bonus_months;
        WHILE r.started_at + v_due * interval '1 month' <= v_as_of
              AND v_due < r.periods * CASE r.period WHEN 'month' THEN 1 ELSE 12 END LOOP
            v_due := v_due + 1;
            PERFORM loyalty.award(r.member_id, r.monthly_points,
                                  'membership ' || r.code || ' month ' || v_due,
                                  idempotency_key => 'membership:' || r.subscription_id || ':month:' || v_due);
            bonuses := bonuses + 1;
        END LOOP;
        UPDATE loyalty.subscriptions s SET bonus_months = v_due
        WHERE s.member_id = r.member_id AND s.subscription_id = r.subscription_id;
    END LOOP;

    -- periods over: lapsed (no renewal came) or ended (cancelled at period end)
    FOR r IN
        SELECT s.member_id, s.subscription_id, s.cancel_at_period_end, s.current_period_end, p.code
        FROM loyalty.subscriptions s JOIN loyalty.membership_plans p ON p.plan_id = s.plan_id
        WHERE s.status = 'active' AND s.current_period_end <= v_as_of
        ORDER BY s.member_id LIMIT batch_size
    LOOP
        PERFORM FROM loyalty.accounts a WHERE a.member_id = r.member_id FOR NO KEY UPDATE;
        UPDATE loyalty.subscriptions s
        SET status = CASE WHEN r.cancel_at_period_end THEN 'ended' ELSE 'lapsed' END,
            ended_at = r.current_period_end,
            end_reason = CASE WHEN r.cancel_at_period_end THEN s.end_reason ELSE 'not renewed' END
        WHERE s.member_id = r.member_id AND s.subscription_id = r.subscription_id AND s.status = 'active'
          AND s.current_period_end <= v_as_of;
        IF FOUND THEN
            PERFORM loyalty.end_membership_benefits(r.member_id, r.subscription_id,
                'membership ' || r.code || CASE WHEN r.cancel_at_period_end THEN ' ended' ELSE ' lapsed' END);
            PERFORM loyalty.emit_event(r.member_id,
                CASE WHEN r.cancel_at_period_end THEN 'membership.ended' ELSE 'membership.lapsed' END,
                jsonb_build_object('subscription_id', r.subscription_id, 'plan', r.code, 'period_end', r.current_period_end));
            ended := ended + 1;
        END IF;
    END LOOP;
    RETURN NEXT;
END $$;
