-- Membership retention end to end: memberships made through the public API
-- (subscribe with a start in the past, renew, cancel now or at period end,
-- change plan, lapsed by membership_batch), then fit_membership_models(),
-- the per-membership view, the per-plan view and membership_survival().
-- Lapsed and ended memberships, and those cancelled at period end, are
-- churn; active ones and those changed to another plan are censored.
BEGIN;
SELECT plan(43);

SELECT loyalty.create_program('retention', currency => 'EUR') AS p \gset
SELECT loyalty.create_plan(:p, 'PLUS', 'Club Plus', 10, 'month') AS plus,
       loyalty.create_plan(:p, 'YEAR', 'Club Year', 100, 'year') AS year,
       loyalty.create_plan(:p, 'NEW', 'Club New', 5, 'month') AS new \gset

-- the memberships: plan, periods paid, how it ends, how many
CREATE TEMP TABLE design (plan text, periods integer, fate text, n integer);
INSERT INTO design VALUES
    ('PLUS', 1, 'lapsed', 15), ('PLUS', 2, 'lapsed', 6), ('PLUS', 3, 'lapsed', 2), ('PLUS', 3, 'cancel_at_end', 1),
    ('PLUS', 4, 'ended', 1), ('PLUS', 5, 'active', 10), ('PLUS', 2, 'active', 4), ('PLUS', 4, 'changed', 3),
    ('YEAR', 1, 'lapsed', 10), ('YEAR', 2, 'lapsed', 4), ('YEAR', 3, 'lapsed', 2), ('YEAR', 4, 'active', 14),
    ('YEAR', 1, 'active', 2),
    ('NEW', 1, 'lapsed', 1), ('NEW', 2, 'active', 2);

-- one member's membership, through the API: started so long ago that its
-- paid periods end before now (lapsed) or in 20 days' time (the others)
CREATE FUNCTION pg_temp.membership(program bigint, plan text, periods integer, fate text, k integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    m bigint;
    ref text := plan || '-' || periods || '-' || fate || '-' || k;
    unit interval := CASE WHEN plan = 'YEAR' THEN interval '1 year' ELSE interval '1 month' END;
BEGIN
    m := loyalty.enroll(program, 'app', ref);
    PERFORM loyalty.subscribe(m, plan, ref || '-1',
        started_at => now() - CASE WHEN fate = 'lapsed' THEN periods ELSE periods - 1 END * unit - interval '10 days');
    FOR i IN 2 .. periods LOOP
        PERFORM loyalty.renew_membership(m, ref || '-' || i);
    END LOOP;
    IF fate = 'ended' THEN
        PERFORM loyalty.cancel_membership(m, at_period_end => false);
    ELSIF fate = 'cancel_at_end' THEN
        PERFORM loyalty.cancel_membership(m);
    ELSIF fate = 'changed' THEN
        PERFORM loyalty.change_membership_plan(m, 'YEAR', ref || '-change');
    END IF;
    RETURN m;
END $$;
SELECT count(pg_temp.membership(:p, d.plan, d.periods, d.fate, k)) AS made FROM design d, generate_series(1, d.n) k \gset
SELECT ended AS lapsed FROM loyalty.membership_batch() \gset

SELECT is(:lapsed::bigint, (SELECT sum(n) FROM design WHERE fate = 'lapsed'), 'membership_batch lapsed the memberships not renewed');
SELECT is((SELECT count(*) FROM loyalty.subscriptions WHERE program_id = :p AND status = 'changed'), 3::bigint,
          'three memberships changed to YEAR');

-- before any fit: the view lists the paid memberships, without predictions
SELECT is((SELECT count(*) FILTER (WHERE renewal_probability IS NULL AND derl IS NULL AND fitted_at IS NULL
                                     AND model_failure LIKE 'no model:%')
           FROM loyalty.membership_retention WHERE program_id = :p AND NOT cancel_at_period_end),
          (SELECT count(*) FROM loyalty.subscriptions WHERE program_id = :p AND status = 'active' AND NOT cancel_at_period_end),
          'before a fit: every paid membership, no predictions, and why');

-- the fit ------------------------------------------------------------------------------------------
CREATE TEMP TABLE fitted AS SELECT * FROM loyalty.fit_membership_models(:p);
SELECT is((SELECT count(*) FROM fitted), 3::bigint, 'one model row per plan');
SELECT is((SELECT count(*) FROM loyalty.membership_models WHERE program_id = :p), 3::bigint, '... stored');
SELECT is((SELECT (alpha IS NULL, beta IS NULL, subscriptions, churned, failure) FROM fitted WHERE plan_id = :new),
          (true, true, 3::bigint, 1::bigint, 'the sBG model needs at least 10 subscriptions, got 3'::text),
          'NEW (three memberships) cannot be fitted: its reason, no parameters');
SELECT ok((SELECT alpha > 0 AND beta > 0 AND failure IS NULL FROM fitted WHERE plan_id = :plus)
          AND (SELECT alpha > 0 AND beta > 0 AND failure IS NULL FROM fitted WHERE plan_id = :year),
          '... while PLUS and YEAR are fitted');
-- the same fit by hand from the design: churn for lapsed, ended and cancelled
-- at period end, censored for active and changed; the changed memberships'
-- new YEAR memberships are YEAR's, one period paid, active
SELECT is((SELECT (subscriptions, churned) FROM fitted WHERE plan_id = :plus),
          (SELECT (sum(n)::bigint, sum(n) FILTER (WHERE fate IN ('lapsed', 'ended', 'cancel_at_end'))::bigint) FROM design WHERE plan = 'PLUS'),
          'PLUS: 42 memberships seen, 25 churned (the 3 changed to YEAR are not churn)');
SELECT is((SELECT (round(alpha::numeric, 8), round(beta::numeric, 8), round(loglik::numeric, 8)) FROM fitted WHERE plan_id = :plus),
          (SELECT (round((f).alpha::numeric, 8), round((f).beta::numeric, 8), round((f).loglik::numeric, 8))
           FROM (SELECT loyalty.sbg_fit(periods, fate IN ('active', 'changed'), n) f FROM design WHERE plan = 'PLUS') x),
          'PLUS: the sBG fit of the design');
SELECT is((SELECT (round(alpha::numeric, 8), round(beta::numeric, 8), subscriptions) FROM fitted WHERE plan_id = :year),
          (SELECT (round((f).alpha::numeric, 8), round((f).beta::numeric, 8), (f).subscriptions::bigint)
           FROM (SELECT loyalty.sbg_fit(periods, fate = 'active', n) f
                 FROM (SELECT plan, periods, fate, n FROM design WHERE plan = 'YEAR' UNION ALL VALUES ('YEAR', 1, 'active', 3)) d) x),
          'YEAR: the sBG fit of the design and the three memberships changed to it');
SELECT isnt((SELECT round(alpha::numeric, 8) FROM fitted WHERE plan_id = :plus),
            (SELECT round((loyalty.sbg_fit(periods, fate = 'active', n)).alpha::numeric, 8) FROM design WHERE plan = 'PLUS'),
            '(counting the changes as churn would give another model)');

-- the memberships ----------------------------------------------------------------------------------
CREATE TEMP TABLE r AS SELECT * FROM loyalty.membership_retention WHERE program_id = :p;
SELECT is((SELECT count(*) FROM r), (SELECT count(*) FROM loyalty.subscriptions WHERE program_id = :p AND status = 'active'),
          'membership_retention: one row per paid membership');
SELECT is((SELECT array_agg(DISTINCT (plan, period, periods_paid)::text ORDER BY (plan, period, periods_paid)::text) FROM r),
          ARRAY['(NEW,month,2)', '(PLUS,month,2)', '(PLUS,month,3)', '(PLUS,month,5)', '(YEAR,year,1)', '(YEAR,year,4)'],
          '... by plan and periods paid');
SELECT is((SELECT count(*) FROM r r1 JOIN fitted f USING (plan_id)
           WHERE plan = 'PLUS' AND NOT cancel_at_period_end
             AND renewal_probability = round(loyalty.sbg_renewal_probability(f.alpha, f.beta, periods_paid)::numeric, 4)
             AND expected_remaining_periods IS NOT DISTINCT FROM round(loyalty.sbg_expected_remaining(f.alpha, f.beta, periods_paid)::numeric, 2)
             AND derl = round(loyalty.sbg_derl(f.alpha, f.beta, periods_paid, 1.1 ^ (1 / 12.0) - 1)::numeric, 4)
             AND expected_remaining_revenue = round(10 * loyalty.sbg_derl(f.alpha, f.beta, periods_paid, 1.1 ^ (1 / 12.0) - 1)::numeric, 2)
             AND discount_rate = 0.007974 AND r1.fitted_at = f.fitted_at AND model_failure IS NULL),
          14::bigint, 'PLUS: renewal probability, expected remaining periods, DERL at 10% a year (0.7974% a month) and fee x DERL, from the fit');
SELECT is((SELECT count(*) FROM r r1 JOIN fitted f USING (plan_id)
           WHERE plan = 'YEAR' AND discount_rate = 0.1
             AND derl = round(loyalty.sbg_derl(f.alpha, f.beta, periods_paid, 0.1)::numeric, 4)
             AND expected_remaining_revenue = round(100 * loyalty.sbg_derl(f.alpha, f.beta, periods_paid, 0.1)::numeric, 2)),
          19::bigint, 'YEAR: DERL at 10% a year, fee x DERL');
SELECT ok((SELECT bool_and(r1.renewal_probability > r2.renewal_probability) FROM r r1, r r2
           WHERE r1.plan = 'PLUS' AND r2.plan = 'PLUS' AND r1.periods_paid = 5 AND r2.periods_paid = 2),
          'five months paid renew more surely than two (churn falls with tenure)');
SELECT ok((SELECT (renewal_probability, expected_remaining_periods, derl, expected_remaining_revenue) = (0, 0, 0, 0)
           FROM r WHERE cancel_at_period_end), 'cancelled at period end: it will not renew');
SELECT is((SELECT count(*) FROM r WHERE plan = 'NEW' AND renewal_probability IS NULL AND derl IS NULL
                                    AND fitted_at = (SELECT fitted_at FROM fitted WHERE plan_id = :new)
                                    AND model_failure = 'the sBG model needs at least 10 subscriptions, got 3'),
          2::bigint, 'NEW: no predictions, the reason of its fit');
SELECT ok((SELECT bool_and(expected_remaining_periods IS NULL) = ((SELECT alpha FROM fitted WHERE plan_id = :plus) <= 1)
           FROM r WHERE plan = 'PLUS' AND NOT cancel_at_period_end),
          'expected remaining periods NULL exactly when alpha <= 1 (infinite)');

-- the plans ---------------------------------------------------------------------------------------
SELECT is((SELECT (active_subscriptions, cancelling, expected_renewals, expected_remaining_revenue)
           FROM loyalty.membership_plan_retention WHERE plan_id = :plus),
          (SELECT (count(*), count(*) FILTER (WHERE cancel_at_period_end), round(sum(renewal_probability), 2), sum(expected_remaining_revenue))
           FROM r WHERE plan = 'PLUS'),
          'membership_plan_retention: PLUS''s paid memberships, those cancelling, expected renewals, remaining revenue');
SELECT is((SELECT (active_subscriptions, round(alpha::numeric, 8), fitted_subscriptions, fitted_churned, model_failure)
           FROM loyalty.membership_plan_retention WHERE plan_id = :plus),
          (SELECT (15::bigint, round(alpha::numeric, 8), subscriptions, churned, NULL::text) FROM fitted WHERE plan_id = :plus),
          '... and its model');
SELECT is((SELECT (new_subscriber_periods, new_subscriber_value) FROM loyalty.membership_plan_retention WHERE plan_id = :year),
          (SELECT (round((1 + loyalty.sbg_expected_remaining(alpha, beta, 1))::numeric, 2),
                   round(100 * (1 + loyalty.sbg_derl(alpha, beta, 1, 0.1) / 1.1)::numeric, 2)) FROM fitted WHERE plan_id = :year),
          'a new YEAR subscriber: expected periods and discounted fees, the first included');
SELECT is((SELECT (active_subscriptions, expected_renewals, expected_remaining_revenue, model_failure)
           FROM loyalty.membership_plan_retention WHERE plan_id = :new),
          (2::bigint, NULL::numeric, NULL::numeric, 'the sBG model needs at least 10 subscriptions, got 3'::text),
          'NEW: its memberships, no predictions, the reason');

-- the survival curve -------------------------------------------------------------------------------
CREATE TEMP TABLE s AS SELECT * FROM loyalty.membership_survival(:p, 'PLUS', 6);
SELECT is((SELECT array_agg(period ORDER BY period) FROM s), '{0,1,2,3,4,5,6}'::int[], 'membership_survival: periods 0 to 6');
SELECT is((SELECT count(*) FROM s, fitted f WHERE f.plan_id = :plus
             AND survival = loyalty.sbg_survival(f.alpha, f.beta, period)
             AND renewal_rate IS NOT DISTINCT FROM CASE WHEN period > 0 THEN loyalty.sbg_renewal_probability(f.alpha, f.beta, period) END),
          7::bigint, '... a new subscriber''s survival S(k) and the renewal rate at each renewal');
SELECT is((SELECT expected_active FROM s WHERE period = 0), 15::float8, '... today''s 15 paid memberships');
SELECT ok((SELECT abs(expected_active - (10 * loyalty.sbg_renewal_probability(f.alpha, f.beta, 5) + 4 * loyalty.sbg_renewal_probability(f.alpha, f.beta, 2))) < 1e-9
           FROM s, fitted f WHERE f.plan_id = :plus AND period = 1),
          '... of which after one renewal: 10 x r(5) + 4 x r(2) (the one cancelling leaves)');
SELECT ok((SELECT abs(expected_active - (10 * loyalty.sbg_survival(f.alpha, f.beta, 10) / loyalty.sbg_survival(f.alpha, f.beta, 4)
                                         + 4 * loyalty.sbg_survival(f.alpha, f.beta, 7) / loyalty.sbg_survival(f.alpha, f.beta, 1))) < 1e-9
           FROM s, fitted f WHERE f.plan_id = :plus AND period = 6),
          '... after six: S(n - 1 + 6) / S(n - 1) each');
SELECT throws_ok(format('SELECT * FROM loyalty.membership_survival(%s, %L)', :p, 'NEW'), 'LY030', 'plan "NEW" has no retention model',
                 'a plan without a model: LY030');
SELECT throws_ok(format('SELECT * FROM loyalty.membership_survival(%s, %L)', :p, 'GOLD'), 'P0002', NULL, 'an unknown plan');
SELECT throws_ok(format('SELECT * FROM loyalty.membership_survival(%s, %L, -1)', :p, 'PLUS'), '22023', NULL, 'negative periods');
SELECT throws_ok(format('SELECT * FROM loyalty.membership_survival(%s, NULL)', :p), '22004', NULL, 'a NULL plan');
SELECT throws_ok('SELECT * FROM loyalty.fit_membership_models(NULL)', '22004', NULL, 'fit: a NULL program');
SELECT throws_ok('SELECT * FROM loyalty.fit_membership_models(-1)', 'P0002', NULL, 'fit: an unknown program');

-- a refit: a new row per plan, and the views follow the latest
SELECT count(loyalty.renew_membership(member_id, 'again-' || member_id)) AS renewed FROM r WHERE plan = 'PLUS' AND periods_paid = 2 \gset
SELECT count(*) AS refitted FROM loyalty.fit_membership_models(:p) \gset
SELECT is((SELECT count(*) FROM loyalty.membership_models WHERE program_id = :p), 6::bigint, 'a refit adds a row per plan');
SELECT is((SELECT count(DISTINCT fitted_at) FROM loyalty.membership_retention WHERE program_id = :p AND plan = 'PLUS'), 1::bigint,
          '... and the view reads the latest only');
SELECT ok((SELECT fitted_at > (SELECT fitted_at FROM fitted WHERE plan_id = :plus) FROM loyalty.membership_plan_retention WHERE plan_id = :plus),
          '... the newer one');

-- roles, programs, privileges ----------------------------------------------------------------------
CREATE ROLE ret_analyst_b;
CREATE ROLE ret_admin_b;
GRANT loyalty_analyst TO ret_analyst_b;
GRANT loyalty_admin TO ret_admin_b;
SELECT loyalty.create_program('another') AS b \gset
SELECT loyalty.bind_role(:b, 'ret_analyst_b') IS NULL AS bound, loyalty.bind_role(:b, 'ret_admin_b') IS NULL AS bound \gset
SET ROLE ret_analyst_b;
SELECT is((SELECT count(*) FROM loyalty.membership_retention) + (SELECT count(*) FROM loyalty.membership_plan_retention),
          0::bigint, 'an analyst bound to another program sees none of these memberships or plans');
SELECT throws_ok(format('SELECT * FROM loyalty.membership_survival(%s, %L)', :p, 'PLUS'), 'P0002', NULL,
                 '... nor this program''s plan through membership_survival');
RESET ROLE;
SET ROLE ret_admin_b;
SELECT throws_ok(format('SELECT * FROM loyalty.fit_membership_models(%s)', :p), '42501', NULL,
                 'an administrator bound to another program cannot fit this one');
RESET ROLE;
SELECT ok(has_function_privilege('loyalty_admin', 'loyalty.fit_membership_models(bigint)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.fit_membership_models(bigint)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_analyst', 'loyalty.fit_membership_models(bigint)', 'EXECUTE')
          AND has_function_privilege('loyalty_analyst', 'loyalty.membership_survival(bigint, text, integer)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.membership_survival(bigint, text, integer)', 'EXECUTE')
          AND has_table_privilege('loyalty_analyst', 'loyalty.membership_retention', 'SELECT')
          AND has_table_privilege('loyalty_analyst', 'loyalty.membership_plan_retention', 'SELECT')
          AND NOT has_table_privilege('loyalty_analyst', 'loyalty.membership_models', 'SELECT')
          AND has_table_privilege('loyalty_admin', 'loyalty.membership_models', 'SELECT')
          AND NOT has_table_privilege('loyalty_admin', 'loyalty.membership_models', 'INSERT'),
          'the administrator fits, the analyst reads the views and the survival curve, the application neither');
SELECT is((SELECT (relrowsecurity, (SELECT count(*) FROM pg_policies WHERE schemaname = 'loyalty' AND tablename = 'membership_models'))
           FROM pg_class WHERE oid = 'loyalty.membership_models'::regclass),
          (true, 1::bigint), 'membership_models has row-level security and its program_isolation policy');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');

SELECT * FROM finish();
ROLLBACK;
