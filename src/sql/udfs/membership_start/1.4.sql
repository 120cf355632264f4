CREATE FUNCTION loyalty.membership_start(member bigint, plan bigint, started_at timestamptz, payment_reference text,
                                         amount numeric, kind text)
RETURNS loyalty.subscriptions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a loyalty.accounts;
    p loyalty.membership_plans;
    s loyalty.subscriptions;
    v_end timestamptz;
    v_tier loyalty.tier;
BEGIN
    -- (the caller holds the member's lock and checked the request)
    SELECT * INTO STRICT a FROM loyalty.accounts x WHERE x.member_id OPERATOR(pg_catalog.=) membership_start.member;
    SELECT * INTO STRICT p FROM loyalty.membership_plans x WHERE x.plan_id OPERATOR(pg_catalog.=) membership_start.plan;
    v_end := started_at + CASE p.period WHEN 'month' THEN interval '1 month' ELSE interval '1 year' END;
    -- the paid tier for the period, unless the member's own tier is higher
    -- (a membership brought over from another system may start in the past;
    -- one whose first period is over already gets no tier, and the next
    -- membership_batch() lapses it unless it is renewed first)
    IF p.tier IS NOT NULL AND v_end > now()
       AND (a.tier IS NULL OR loyalty.tier_rank(a.tier) <= loyalty.tier_rank(p.tier)) THEN
        v_tier := p.tier;
    END IF;
    INSERT INTO loyalty.subscriptions AS x (member_id, program_id, plan_id, started_at, current_period_start,
                                            current_period_end, tier_given)
    VALUES (member, a.program_id, p.plan_id, started_at, started_at, v_end, v_tier)
    RETURNING x.* INTO s;
    INSERT INTO loyalty.membership_payments (member_id, subscription_id, program_id, kind, amount, currency,
                                             period_start, period_end, payment_reference)
    VALUES (member, s.subscription_id, a.program_id, membership_start.kind, coalesce(amount, p.fee), p.currency,
            started_at, v_end, payment_reference);
    IF v_tier IS NOT NULL THEN
        PERFORM loyalty.tier_change(member, v_tier, 'membership ' OPERATOR(pg_catalog.||) p.code, v_end);
    END IF;
    RETURN s;
END $$;
