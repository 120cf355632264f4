-- A refund knows only the order: loyalty.refund(member, reference, amount)
-- takes back the points of the purchase recorded under that reference, in
-- part (by amount, cumulative) or all that is left, idempotently.
BEGIN;
SET search_path = public, loyalty;
SELECT plan(11);

SELECT create_program('refunds') AS p \gset
SELECT enroll(:p, 'web', 'rf-1') AS m \gset
SELECT earn(:m, 100, reference => 'order-1');
SELECT earn(:m, 50, reference => 'order-2');

SELECT is(refund(:m, 'order-1', 40)::bigint, 40::bigint, 'a partial refund by amount takes back its share');
SELECT is(refund(:m, 'order-1', reason => 'returned', idempotency_key => 'rf-1:order-1')::bigint, 60::bigint,
          'the rest of the order, with no amount');
SELECT is(refund(:m, 'order-1', reason => 'returned', idempotency_key => 'rf-1:order-1')::bigint, 60::bigint,
          'a replay of it returns the same, and writes nothing');
SELECT is((SELECT count(*) FROM ledger WHERE member_id = :m AND kind = 'reverse'), 2::bigint, 'two reversals in all');
SELECT throws_ok(format('SELECT refund(%s, %L)', :m, 'order-1'), 'LY004', NULL, 'a fully refunded order has nothing left');
SELECT throws_ok(format('SELECT refund(%s, %L, 60)', :m, 'order-2'), 'LY004', NULL, 'no more than the order''s amount');
SELECT throws_ok(format('SELECT refund(%s, %L)', :m, 'order-9'), 'P0002', NULL, 'an unknown reference');
SELECT earn(:m, 10, reference => 'order-2');
SELECT throws_ok(format('SELECT refund(%s, %L)', :m, 'order-2'), '21000', NULL, 'two purchases under one reference are ambiguous');
SELECT throws_ok(format('SELECT refund(%s, %L, -5)', :m, 'order-2'), '22023', NULL, 'a negative refund');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :m), 60::bigint, 'balance: 160 earned, 100 refunded');
SELECT is((SELECT count(*) FROM verify()), 0::bigint, 'the books balance');

SELECT * FROM finish();
ROLLBACK;
