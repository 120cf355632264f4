-- Point transfers on a Citus cluster: the two members live on different
-- shards; loyalty.transfer runs on the coordinator (its first argument is
-- not named member, so it is not routed to one member's worker) and writes
-- each side through statements routed to that member's shard.  Run by
-- test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(7);

SELECT loyalty.create_program('tap-transfer') AS p \gset
SELECT loyalty.set_transfer_rules(:p, sender_daily_points => 100);
CREATE TEMP TABLE tm AS
SELECT loyalty.enroll(:p, 'pos', 'tr-' || g) AS m FROM generate_series(1, 8) g;
-- two members on different shards
SELECT a.m AS a, b.m AS b FROM tm a, tm b
WHERE get_shard_id_for_distribution_column('loyalty.members', a.m)
      <> get_shard_id_for_distribution_column('loyalty.members', b.m)
ORDER BY a.m, b.m LIMIT 1 \gset
SELECT loyalty.award(:a, 100, 'seed', expires_at => now() + interval '30 days');

SELECT loyalty.transfer(:a, :b, 60, 'gift', 'tr-key') AS t \gset
SELECT loyalty.transfer(:a, :b, 60, 'gift', 'tr-key') AS t_again \gset
SELECT is(:t_again::bigint, :t::bigint, 'a replay answers the first transfer');
SELECT balance::bigint AS ba FROM loyalty.accounts WHERE member_id = :a \gset
SELECT balance::bigint AS bb, next_expiry_at AS eb FROM loyalty.accounts WHERE member_id = :b \gset
SELECT is(ARRAY[:ba, :bb]::bigint[], ARRAY[40, 60]::bigint[], 'the points moved across shards');
SELECT is(:'eb'::timestamptz, now() + interval '30 days', 'with their expiry date');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 41)', :a, :b), 'LY041', NULL,
                 'the daily limit counts what was sent');
SELECT loyalty.reverse_transfer(:a, :t, 'mistake') AS back \gset
SELECT balance::bigint AS ba FROM loyalty.accounts WHERE member_id = :a \gset
SELECT balance::bigint AS bb FROM loyalty.accounts WHERE member_id = :b \gset
SELECT is(ARRAY[:back, :ba, :bb]::bigint[], ARRAY[60, 100, 0]::bigint[], 'reversed across shards');
SELECT reversed::text AS rv FROM loyalty.transfers WHERE transfer_id = :t \gset
SELECT is(:'rv'::text, 'true', 'the transfers view joins on the sender''s shard');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing, the pair check included');

SELECT * FROM finish();
ROLLBACK;
