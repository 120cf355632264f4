-- Paid membership on a Citus cluster: subscribe, renew and cancel run on the
-- member's worker (routed by their member argument), with the plans a
-- reference table; the batch and the KPIs from the coordinator.  Run by
-- test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(5);

SELECT loyalty.create_program('tap-club') AS p \gset
SELECT loyalty.create_plan(:p, 'PLUS', 'Plus', 5, 'month', earn_multiplier => 2, welcome_points => 100, monthly_points => 10);
SELECT loyalty.enroll(:p, 'app', 'club-1') AS m \gset
SELECT loyalty.enroll(:p, 'app', 'club-2') AS n \gset
SELECT loyalty.subscribe(:m, 'PLUS', 'c-pay-1') AS s \gset
SELECT loyalty.subscribe(:m, 'PLUS', 'c-pay-1') AS s_again \gset
SELECT is(:s_again::bigint, :s::bigint, 'a replayed subscription');
SELECT loyalty.earn(:m, 10) AS earned \gset
SELECT is(:earned::bigint, 20::bigint, 'the plan''s multiplier on the member''s worker');
SELECT loyalty.subscribe(:n, 'PLUS', 'c-pay-2', started_at => now() - interval '40 days');
SELECT (notified, bonuses, ended)::text AS batch FROM loyalty.membership_batch() \gset
SELECT is(:'batch'::text, '(0,2,1)', 'the batch from the coordinator: two monthly bonuses, one lapse');
SELECT loyalty.cancel_membership(:m, at_period_end => false) IS NOT NULL AS cancelled \gset
SELECT is(:'cancelled'::text, 't'::text, 'cancelled now');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
