-- loyalty.order_trigger on an application's own orders table: insert earns,
-- cancel / lowered amount / delete reverse, replays and COPY, guests,
-- misconfiguration, and an application role with no loyalty rights.
BEGIN;
SELECT plan(27);

SELECT loyalty.create_program('shop', earn_rate => 1) AS p \gset
SELECT loyalty.enroll(:p, 'web', 'alice') AS a \gset
SELECT loyalty.enroll(:p, 'web', 'bob') AS b \gset

CREATE SCHEMA shop;
CREATE TABLE shop.orders (
    id          bigint PRIMARY KEY,
    customer    bigint,
    total       numeric(12, 2) NOT NULL,
    status      text NOT NULL DEFAULT 'paid',
    channel     text,
    placed_at   timestamptz
);
CREATE TRIGGER orders_loyalty AFTER INSERT OR UPDATE OR DELETE ON shop.orders
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');

CREATE FUNCTION pg_temp.bal(m bigint) RETURNS bigint LANGUAGE sql AS
    $$ SELECT balance::bigint FROM loyalty.accounts WHERE member_id = m $$;

INSERT INTO shop.orders (id, customer, total, channel, placed_at) VALUES (1, :a, 100.00, 'web', now() - interval '1 hour');
SELECT is(pg_temp.bal(:a), 100::bigint, 'an inserted paid order earns');
SELECT results_eq(format($$SELECT reference, channel, amount FROM loyalty.ledger WHERE member_id = %s AND kind = 'earn'$$, :a),
                  $$VALUES ('1'::text, 'web'::text, 100.00::numeric)$$, 'the earn carries the order reference, channel and amount');
SELECT is((SELECT occurred_at FROM loyalty.ledger WHERE member_id = :a AND kind = 'earn'),
          (SELECT placed_at FROM shop.orders WHERE id = 1), 'and the order''s time as occurred_at');

UPDATE shop.orders SET total = 60.00 WHERE id = 1;
SELECT is(pg_temp.bal(:a), 60::bigint, 'a lowered amount reverses in proportion (a partial refund)');
UPDATE shop.orders SET total = 60.00 WHERE id = 1;
SELECT is(pg_temp.bal(:a), 60::bigint, 'an update that changes nothing changes nothing');
UPDATE shop.orders SET total = 90.00 WHERE id = 1;
SELECT is(pg_temp.bal(:a), 60::bigint, 'a raised amount earns nothing more');
UPDATE shop.orders SET status = 'refunded' WHERE id = 1;
SELECT is(pg_temp.bal(:a), 0::bigint, 'a refunded status reverses the rest');
UPDATE shop.orders SET status = 'paid' WHERE id = 1;
SELECT is(pg_temp.bal(:a), 0::bigint, 'a refunded order that comes back earns nothing again');

INSERT INTO shop.orders (id, customer, total) VALUES (2, :a, 40.00);
DELETE FROM shop.orders WHERE id = 2;
SELECT is(pg_temp.bal(:a), 0::bigint, 'a deleted order is reversed');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE member_id = :a AND kind = 'reverse'), 3::bigint,
          'three reversals: partial refund, refund, delete');

INSERT INTO shop.orders (id, customer, total) VALUES (3, NULL, 50.00);
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reference = '3'), 0::bigint, 'a guest order (no member) earns nothing');
INSERT INTO shop.orders (id, customer, total, status) VALUES (4, :b, 25.00, 'cancelled');
SELECT is(pg_temp.bal(:b), 0::bigint, 'an order inserted as cancelled earns nothing');

-- a replayed import never double-credits
CREATE TABLE shop.orders_replay (LIKE shop.orders);
CREATE TRIGGER replay_loyalty AFTER INSERT OR UPDATE OR DELETE ON shop.orders_replay
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
INSERT INTO shop.orders (id, customer, total, placed_at) VALUES (5, :b, 10.00, '2026-11-20 12:00+00');
INSERT INTO shop.orders_replay SELECT * FROM shop.orders WHERE id = 5;
SELECT is(pg_temp.bal(:b), 10::bigint, 'the same order imported twice earns once');
SELECT throws_ok(format($$INSERT INTO shop.orders_replay (id, customer, total, status) VALUES (5, %s, 11.00, 'paid')$$, :b), 'LY002', NULL,
                 'a replay of an order with another amount is refused (idempotency conflict)');

-- COPY, one transaction, with a status filter option
CREATE TABLE shop.web_orders (id bigint, customer bigint, total numeric, state text);
CREATE TRIGGER web_loyalty AFTER INSERT OR UPDATE OR DELETE ON shop.web_orders
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'state', '', '', 'earn=paid,shipped', 'cancel=void');
-- (the rows are written to a file first so they can carry this run's member ids)
SELECT format($$COPY (VALUES (100, %1$s, 10, 'paid'), (101, %1$s, 20, 'pending'), (102, %2$s, 30, 'shipped'),
                      (103, %2$s, 40, 'void')) TO '/tmp/loyalty_web_orders.tsv'$$, :a, :b) AS copy_out \gset
:copy_out;
COPY shop.web_orders FROM '/tmp/loyalty_web_orders.tsv';
SELECT is(pg_temp.bal(:a), 10::bigint, 'COPY: paid earns, pending does not');
SELECT is(pg_temp.bal(:b), 40::bigint, 'COPY: shipped earns, void does not');
UPDATE shop.web_orders SET state = 'paid' WHERE id = 101;
SELECT is(pg_temp.bal(:a), 30::bigint, 'a pending order earns when it becomes paid');
UPDATE shop.web_orders SET state = 'void' WHERE id = 101;
SELECT is(pg_temp.bal(:a), 10::bigint, 'the configured cancel status reverses it');

-- earning rules apply through the trigger
SELECT loyalty.create_earning_rule(:p, 'web x2', 'multiply', multiplier => 2, channels => ARRAY['web']);
INSERT INTO shop.orders (id, customer, total, channel) VALUES (6, :b, 5.00, 'web');
SELECT is(pg_temp.bal(:b), 50::bigint, 'an order on the web channel gets the web rule');

-- the application writes orders with no right on the extension
CREATE ROLE loyalty_test_shop_app;
GRANT USAGE ON SCHEMA shop TO loyalty_test_shop_app;
GRANT INSERT, UPDATE, DELETE, SELECT ON shop.orders TO loyalty_test_shop_app;
SET LOCAL ROLE loyalty_test_shop_app;
INSERT INTO shop.orders (id, customer, total) VALUES (7, :b, 1.00);
SELECT throws_ok('SELECT count(*) FROM loyalty.ledger', '42501', NULL, 'the shop role cannot read the ledger...');
RESET ROLE;
SELECT is(pg_temp.bal(:b), 51::bigint, '... yet its orders earn through the trigger');
SELECT throws_ok($$CREATE TRIGGER t AFTER INSERT ON shop.orders FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('a','b','c','d')$$,
                 '42501', NULL, 'PUBLIC cannot attach the trigger') FROM (SELECT set_config('role', 'loyalty_test_shop_app', true)) s;
RESET ROLE;

-- misconfiguration fails at the first row, naming the argument
CREATE TABLE shop.bad (id bigint, who text, total numeric, status text);
CREATE TRIGGER bad1 AFTER INSERT ON shop.bad FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('who', 'totl', 'id', 'status');
SELECT throws_ok($$INSERT INTO shop.bad VALUES (1, '1', 5, 'paid')$$, '42703',
                 'loyalty.order_trigger: argument 2 (amount) names column "totl", which table "bad" does not have',
                 'an unknown column is named');
DROP TRIGGER bad1 ON shop.bad;
CREATE TRIGGER bad2 AFTER INSERT ON shop.bad FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('who', 'total', 'id', 'status');
SELECT throws_ok($$INSERT INTO shop.bad VALUES (1, '1', 5, 'paid')$$, '42804',
                 'loyalty.order_trigger: argument 1 (member) names column "who" of type text; bigint, integer or smallint expected',
                 'a column of the wrong type is named');
DROP TRIGGER bad2 ON shop.bad;
CREATE TRIGGER bad3 BEFORE INSERT ON shop.bad FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('id', 'total', 'id', 'status');
SELECT throws_ok($$INSERT INTO shop.bad VALUES (1, '1', 5, 'paid')$$, '39P01', NULL, 'a BEFORE trigger is refused');
DROP TRIGGER bad3 ON shop.bad;
CREATE TRIGGER bad4 AFTER INSERT ON shop.bad FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('id', 'total', 'id', 'status', '', '', 'refund=x');
SELECT throws_ok($$INSERT INTO shop.bad VALUES (1, '1', 5, 'paid')$$, '22023', NULL, 'an unknown option is refused');
DROP TRIGGER bad4 ON shop.bad;

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
SELECT * FROM finish();
ROLLBACK;
