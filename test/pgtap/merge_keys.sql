-- Idempotency survives merges: a merge carries the absorbed member's keys to
-- the survivor, and a replay looks its key up before refusing a closed
-- member, so an acknowledged call replays as it did on either member after
-- any number of merges, and writes nothing.
BEGIN;
SET search_path = public, loyalty;
SELECT plan(12);

SELECT create_program('merge keys') AS p \gset
SELECT enroll(:p, 'pos', 'mk-a') AS a \gset
SELECT enroll(:p, 'pos', 'mk-s') AS s \gset
SELECT enroll(:p, 'pos', 'mk-t') AS t \gset
SELECT earn(:a, 10, reference => 'o-1', idempotency_key => 'order:o-1');
SELECT redeem(:a, 4, idempotency_key => 'r-1') AS r1 \gset
SELECT earn(:s, 3, idempotency_key => 'shared') AS s_shared \gset
SELECT award(:a, 5, 'a own', idempotency_key => 'shared');
SELECT merge_members(:s, :a, 'merge-1');
CREATE TEMP TABLE n AS SELECT count(*) AS entries FROM ledger;

SELECT is(earn(:a, 10, reference => 'o-1', idempotency_key => 'order:o-1')::bigint, 10::bigint,
          'an earn acknowledged on the absorbed member replays there');
SELECT is(earn(:s, 10, reference => 'o-1', idempotency_key => 'order:o-1')::bigint, 10::bigint,
          '... and on the survivor');
SELECT is(redeem(:s, 4, idempotency_key => 'r-1'), :r1::bigint, 'a redemption replays on the survivor with its entry');
SELECT is((SELECT count(*) FROM ledger), (SELECT entries FROM n), 'the replays wrote nothing');
SELECT throws_ok(format('SELECT earn(%s, 10, idempotency_key => %L)', :a, 'new-key'), '55000', NULL,
                 'a new call on the absorbed member is still refused');
SELECT is((SELECT count(*) FROM idempotency_keys WHERE member_id = :s AND idempotency_key IN ('order:o-1', 'r-1')),
          2::bigint, 'the survivor holds the absorbed member''s keys');
SELECT is(earn(:s, 3, idempotency_key => 'shared')::bigint, 3::bigint,
          'a key both members had stays the survivor''s');
SELECT throws_ok(format('SELECT award(%s, 5, %L, idempotency_key => %L)', :s, 'a own', 'shared'), 'LY002', NULL,
                 '... so the absorbed member''s call with it is another request there');

-- after a second merge, both the first merge and the first earn replay
SELECT merge_members(:t, :s, 'merge-2');
SELECT is(merge_members(:s, :a, 'merge-1')::bigint, 11::bigint, 'a merge replays after its survivor was merged away');
SELECT is(earn(:t, 10, reference => 'o-1', idempotency_key => 'order:o-1')::bigint, 10::bigint,
          'the first earn replays on the last survivor');
SELECT is((SELECT count(*) FROM ledger WHERE kind = 'earn' AND member_id IN (:a, :s, :t)), 2::bigint,
          'one earn per acknowledged call, whatever the replays');
SELECT is((SELECT count(*) FROM verify()), 0::bigint, 'the books balance');

SELECT * FROM finish();
ROLLBACK;
