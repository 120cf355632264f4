-- Membership retention on a Citus cluster: memberships of members on both
-- workers made through the API, fit_membership_models() from the coordinator
-- (the subscriptions grouped on the workers, the plans and models reference
-- tables), the views and membership_survival() over the distributed
-- subscriptions.  Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(9);

SELECT loyalty.create_program('tap-retention') AS p \gset
SELECT loyalty.create_plan(:p, 'PLUS', 'Plus', 10, 'month') AS plus,
       loyalty.create_plan(:p, 'YEAR', 'Year', 100, 'year') AS year \gset
CREATE TEMP TABLE design (plan text, periods integer, fate text, n integer);
INSERT INTO design VALUES
    ('PLUS', 1, 'lapsed', 6), ('PLUS', 2, 'lapsed', 3), ('PLUS', 3, 'lapsed', 1), ('PLUS', 3, 'cancel_at_end', 1),
    ('PLUS', 4, 'active', 6), ('PLUS', 2, 'active', 2), ('PLUS', 4, 'changed', 1);
-- each membership through the API, started so long ago that its paid
-- periods ended before now (lapsed) or end in 20 days' time (the others)
SELECT set_config('tap.program', :'p', true) IS NOT NULL AS set \gset
DO $$
DECLARE
    d record;
    m bigint;
    ref text;
BEGIN
    FOR d IN SELECT x.*, k FROM design x, generate_series(1, x.n) k LOOP
        ref := 'ret-' || d.plan || '-' || d.periods || '-' || d.fate || '-' || d.k;
        m := loyalty.enroll(current_setting('tap.program')::bigint, 'app', ref);
        PERFORM loyalty.subscribe(m, d.plan, ref || '-1',
            started_at => now() - CASE WHEN d.fate = 'lapsed' THEN d.periods ELSE d.periods - 1 END * interval '1 month'
                          - interval '10 days');
        FOR i IN 2 .. d.periods LOOP
            PERFORM loyalty.renew_membership(m, ref || '-' || i);
        END LOOP;
        IF d.fate = 'cancel_at_end' THEN
            PERFORM loyalty.cancel_membership(m);
        ELSIF d.fate = 'changed' THEN
            PERFORM loyalty.change_membership_plan(m, 'YEAR', ref || '-change');
        END IF;
    END LOOP;
END $$;
SELECT ended AS lapsed FROM loyalty.membership_batch() \gset
-- (values read first, as in the other files: pgTAP's plan lives on the coordinator)
SELECT count(DISTINCT n.nodeport) AS nodes FROM loyalty.subscriptions s
JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('loyalty.subscriptions', s.member_id)
JOIN pg_dist_node n USING (groupid) WHERE s.program_id = :p \gset
SELECT is(:nodes::bigint, 2::bigint, 'the memberships are on both workers');
SELECT is(:lapsed::bigint, 10::bigint, 'membership_batch() from the coordinator lapsed the 10 not renewed');

CREATE TEMP TABLE fitted AS SELECT * FROM loyalty.fit_membership_models(:p);
SELECT round(alpha::numeric, 8) AS a_db, round(beta::numeric, 8) AS b_db, churned FROM fitted WHERE plan_id = :plus \gset
SELECT round((f).alpha::numeric, 8) AS a_ref, round((f).beta::numeric, 8) AS b_ref
FROM (SELECT loyalty.sbg_fit(periods, fate IN ('active', 'changed'), n) f FROM design) x \gset
SELECT is((:a_db, :b_db)::text, (:a_ref, :b_ref)::text, 'fit_membership_models() on the cluster: the sBG fit of the design');
SELECT is(:churned::bigint, 11::bigint, '... lapsed and cancelled at period end churned, the change censored');
SELECT failure AS year_failure FROM fitted WHERE plan_id = :year \gset
SELECT is(:'year_failure'::text, 'the sBG model needs at least 10 subscriptions, got 1', 'YEAR (one membership) fails on its own');

SELECT count(*) AS listed, count(*) FILTER (WHERE renewal_probability IS NOT NULL AND derl IS NOT NULL) AS predicted
FROM loyalty.membership_retention WHERE program_id = :p AND plan = 'PLUS' \gset
SELECT is((:listed, :predicted)::text, '(9,9)', 'membership_retention: the 9 paid PLUS memberships, predicted');
SELECT active_subscriptions AS active, cancelling FROM loyalty.membership_plan_retention WHERE plan_id = :plus \gset
SELECT is((:active, :cancelling)::text, '(9,1)', 'membership_plan_retention: 9 paid, 1 cancelling');
SELECT expected_active AS e0 FROM loyalty.membership_survival(:p, 'PLUS', 3) WHERE period = 0 \gset
SELECT is(:e0::float8, 9::float8, 'membership_survival() on the cluster');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
