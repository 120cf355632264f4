-- loyalty.import_orders commits after each batch of members, so it runs
-- outside a transaction block (not in pgTAP): orders staged in a table are
-- earned through earn_batch, two members per transaction, with progress;
-- a second run replays; a bad order stops the import (the batches before
-- it stay committed) or, with on_error skip, is set aside.
SET search_path = loyalty, public;
\set VERBOSITY terse
SELECT create_program('import') AS p \gset
SELECT count(enroll(:p, 'pos', 'i' || g)) AS enrolled FROM generate_series(1, 5) g;
CREATE TABLE staged (order_no text, customer bigint, total numeric(12, 2), placed_at timestamptz, via text);
INSERT INTO staged
SELECT 'imp-' || g, member_id(:p, 'pos', 'i' || (1 + g % 5)), 10 + g, now() - make_interval(days => 20 - g), 'pos'
FROM generate_series(1, 10) g;
INSERT INTO staged VALUES ('imp-guest', NULL, 99, now(), 'web');
-- five members, two per batch: three commits
CALL import_orders('staged', 'customer', 'total', 'order_no', 'placed_at', 'via', batch_size => 2);
SELECT count(*) AS earn_entries, sum(points::bigint) AS points, count(DISTINCT member_id) AS members,
       bool_and(channel = 'pos') AS channel_kept
FROM ledger WHERE reference LIKE 'imp-%';
SELECT count(*) AS violations FROM verify();
-- a second run writes nothing (a replay passes the same columns: they are
-- part of each order's request)
CALL import_orders('staged', 'customer', 'total', 'order_no', 'placed_at', 'via', batch_size => 10);
SELECT count(*) AS earn_entries FROM ledger WHERE reference LIKE 'imp-%';
-- a bad order (another amount for an earned order) stops the import at its
-- batch (the last member's); the batches before it stay committed
INSERT INTO staged VALUES ('new-1', (SELECT min(customer) FROM staged), 5, now(), 'pos');
UPDATE staged SET total = total + 1 WHERE order_no = 'imp-9';
CALL import_orders('staged', 'customer', 'total', 'order_no', 'placed_at', 'via', batch_size => 1);
SELECT count(*) AS new_entries FROM ledger WHERE reference = 'new-1';
-- with on_error skip it is set aside and the rest goes on
CALL import_orders('staged', 'customer', 'total', 'order_no', 'placed_at', 'via', batch_size => 1, on_error => 'skip');
SELECT reference, sqlstate FROM rejected_orders ORDER BY reject_id;
-- bad arguments
CALL import_orders('staged', 'customer', 'total', 'order_no', batch_size => 0);
CALL import_orders('staged', 'customer', 'total', 'order_no', on_error => 'ignore');
CALL import_orders('staged', 'buyer', 'total', 'order_no');
-- inside a transaction block it cannot commit
DELETE FROM staged WHERE order_no = 'imp-9';
BEGIN;
CALL import_orders('staged', 'customer', 'total', 'order_no', 'placed_at', 'via');
ROLLBACK;
SELECT count(*) AS violations FROM verify();
DROP TABLE staged;
