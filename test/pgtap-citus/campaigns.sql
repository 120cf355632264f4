-- Surveys and campaign results on a Citus cluster: responses per member on
-- its shard (rewarded once), the NPS view and campaign_results across
-- shards, a coupon's control group held out on both workers.
-- Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(5);

SELECT loyalty.create_program('tap-campaigns') AS p \gset
CREATE TEMP TABLE cpm AS SELECT loyalty.enroll(:p, 'app', 'cp-' || g) AS m FROM generate_series(1, 40) g;
SELECT loyalty.create_survey(:p, 'nps', 'Recommend us?', reward_points => '5');
SELECT count(loyalty.record_survey_response(m, 'nps', (m % 11)::int)) FROM cpm;
SELECT count(*) AS responses, sum(promoters) AS promoters FROM loyalty.nps WHERE program_id = :p \gset
SELECT is(:responses::bigint, 1::bigint, 'one NPS row (one month, tier, segment, channel)');
SELECT count(*) AS awards FROM loyalty.ledger WHERE program_id = :p AND kind = 'award' \gset
SELECT is(:awards::bigint, 40::bigint, 'forty responses, forty awards, on both workers');

SELECT loyalty.create_coupon_campaign(:p, 'five off', 'amount_off', 5, code => 'TAPFIVE') AS c \gset
SELECT loyalty.set_control_group('coupon', :c, 0.5, seed => 'tap');
SELECT count(*) FILTER (WHERE loyalty.validate_coupon(m, 'TAPFIVE', 20) ->> 'reason' = 'control_group') AS held,
       count(*) FILTER (WHERE loyalty.in_control(m, 'tap', 0.5)) AS expected FROM cpm \gset
SELECT is(:held::bigint, :expected::bigint, 'the control group is held out on both workers');
SELECT count(loyalty.earn(m, 20, reference => 'cp-' || m)) FROM cpm;
SELECT members + control_members AS n, revenue + control_revenue AS revenue
FROM loyalty.campaign_results WHERE kind = 'coupon' AND campaign_id = :c \gset
SELECT is(:n::bigint, 40::bigint, 'campaign_results counts every member across the shards');
SELECT is(:revenue::numeric, 800::numeric, '... and their revenue');
SELECT * FROM finish();
ROLLBACK;
