-- The write path on a Citus cluster, from the coordinator inside one
-- transaction (so no call is delegated: Citus routes each statement of the
-- write path to the member's shard).  Run by test/scripts/citus.sh after
-- loyalty.distribute().
BEGIN;
SELECT plan(19);

SELECT loyalty.create_program('tap-citus', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'tap-1') AS m1 \gset
SELECT loyalty.enroll(:p, 'pos', 'tap-2') AS m2 \gset

SELECT is(loyalty.member_id(:p, 'pos', 'tap-2'), :m2::bigint, 'member_id() finds a member by its identity');
SELECT is(loyalty.earn(:m1, 120)::bigint, 120::bigint, 'earn credits the purchase');
SELECT is(loyalty.earn(:m2, 80, idempotency_key => 'tap-k')::bigint, 80::bigint, 'a keyed earn');
SELECT is(loyalty.earn(:m2, 80, idempotency_key => 'tap-k')::bigint, 80::bigint, 'its replay returns the first result');
-- a query of a distributed table is read first: inside is() it would be
-- pushed down to the shard, where pgTAP's state is not
SELECT count(*) AS n FROM loyalty.ledger WHERE member_id = :m2 \gset
SELECT is(:n::bigint, 1::bigint, '... and writes nothing');
SELECT throws_ok(format('SELECT loyalty.earn(%s, 81, idempotency_key => %L)', :m2, 'tap-k'), 'LY002',
                 NULL, 'the key with other arguments is refused');
SELECT isnt(loyalty.redeem(:m1, '20'), NULL, 'redeem');
SELECT throws_ok(format('SELECT loyalty.redeem(%s, %L)', :m1, '1000'), 'LY001', NULL, 'an overdraft is refused');

SELECT loyalty.hold(:m1, '30') AS h1 \gset
SELECT isnt(loyalty.capture(:h1, '25'), NULL, 'capture by hold id (found across shards)');
SELECT loyalty.hold(:m1, '10') AS h2 \gset
SELECT is(loyalty.release(:h2)::bigint, 10::bigint, 'release by hold id');

SELECT entry_id AS e1 FROM loyalty.ledger WHERE member_id = :m1 AND kind = 'earn' \gset
SELECT is(loyalty.reverse(:m1, :e1, points => '10')::bigint, 10::bigint, 'reverse part of the earn');
SELECT isnt(loyalty.award(:m2, '5', 'goodwill'), NULL, 'award');
SELECT isnt(loyalty.adjust(:m2, '-3', 'correction'), NULL, 'adjust');

-- 120 - 20 - 25 - 10 = 65; 80 + 5 - 3 = 82
SELECT balance::bigint AS b FROM loyalty.accounts WHERE member_id = :m1 \gset
SELECT is(:b::bigint, 65::bigint, 'account balance of member 1');
SELECT is((SELECT available::bigint FROM loyalty.balance(:m1)), 65::bigint, 'balance() of member 1');
SELECT is(loyalty.balance_at(:m2, now())::bigint, 82::bigint, 'balance_at() of member 2');
SELECT is((SELECT count(*) FROM loyalty.history(:m1)), 8::bigint, 'history() of member 1: earn, redeem, hold, capture + release of the rest, hold, release, reverse');
SELECT count(*) AS n FROM loyalty.lots WHERE member_id = :m1 \gset
SELECT is(:n::bigint, 1::bigint, 'one lot for the one credit');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
