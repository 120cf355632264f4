-- Member profiles on a Citus cluster: update_member and erase_member run on
-- the member's worker (routed by their member argument) and touch the
-- identities, which are distributed by external id; export_member reads
-- every table of the member.  Run by test/scripts/citus.sh after
-- loyalty.distribute().
BEGIN;
SELECT plan(6);

SELECT loyalty.create_program('tap-profiles') AS p \gset
SELECT loyalty.enroll(:p, 'app', 'prof-1', birthday => '1985-05-05') AS m \gset
SELECT loyalty.award(:m, 40, 'seed');

SELECT loyalty.update_member(:m, region => 'Gent', consent => '{"email": true}', attributes => '{"vip": true}') AS changed \gset
SELECT is(:changed, 3, 'update_member on the member''s worker');
SELECT count(*) AS changes FROM loyalty.member_changes WHERE member_id = :m \gset
SELECT is(:changes::bigint, 3::bigint, 'its changes are recorded on the member''s shard');
SELECT loyalty.export_member(:m) ->> 'member_id' AS exported \gset
SELECT is(:'exported'::text, :m::text, 'export_member gathers the member''s rows');
SELECT loyalty.erase_member(:m, 'request') AS forfeited \gset
SELECT is(:forfeited::bigint, 40::bigint, 'erase_member forfeits the points');
SELECT loyalty.member_id(:p, 'app', 'prof-1') IS NULL AS gone \gset
SELECT is(:'gone'::text, 't'::text, 'the identity (on its own shard) is gone');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
