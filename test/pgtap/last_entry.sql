-- loyalty.last_entry(): the ledger entry a session's last write call wrote,
-- as lastval() is for sequences, so an application that called earn() (which
-- returns points) can still refer to the entry it wrote.
BEGIN;
SET search_path = public, loyalty;
SELECT plan(14);

SELECT throws_ok('SELECT last_entry()', '55000', NULL, 'undefined before any write call of the session');

SELECT create_program('last entry') AS p \gset
SELECT enroll(:p, 'web', 'le-1') AS m \gset
SELECT earn(:m, 100, reference => 'o-1', idempotency_key => 'le-1:o-1');
SELECT is(last_entry(), (SELECT entry_id FROM ledger WHERE member_id = :m AND kind = 'earn' AND reference = 'o-1'),
          'after earn(): the purchase''s entry');
SELECT last_entry() AS earn_entry \gset
SELECT award(:m, 5, 'welcome') AS award_entry \gset
SELECT is(last_entry(), :award_entry::bigint, 'after award(): the id award() returned');
SELECT earn(:m, 100, reference => 'o-1', idempotency_key => 'le-1:o-1');
SELECT is(last_entry(), :earn_entry::bigint, 'a replay gives the entry the first call wrote');
SELECT is((SELECT count(*) FROM ledger WHERE member_id = :m AND kind = 'earn'), 1::bigint, '...and wrote none');

SELECT reverse(:m, :earn_entry, 30);
SELECT is(last_entry(), (SELECT max(entry_id) FROM ledger WHERE member_id = :m AND kind = 'reverse' AND source_entry = :earn_entry),
          'after reverse(): the reversal''s entry');
SELECT refund(:m, 'o-1', idempotency_key => 'le-1:refund');
SELECT last_entry() AS refund_entry \gset
SELECT is((SELECT kind || ' of ' || source_entry FROM ledger WHERE entry_id = :refund_entry), 'reverse of ' || :earn_entry,
          'after refund(): the reversal it wrote, not the purchase');
SELECT award(:m, 1, 'other');
SELECT refund(:m, 'o-1', idempotency_key => 'le-1:refund');
SELECT is(last_entry(), :refund_entry::bigint, 'a refund''s replay gives its reversal again');

SELECT earn(:m, 0, reference => 'free');
SELECT reverse(:m, last_entry());
SELECT is(last_entry(), NULL, 'NULL when the last call wrote no entry (a purchase that earned nothing has nothing to take back)');

-- a rollback takes the entry away, and what it says with it
SELECT award(:m, 7, 'kept') AS kept \gset
SAVEPOINT s;
SELECT award(:m, 8, 'rolled back');
ROLLBACK TO SAVEPOINT s;
SELECT throws_ok('SELECT last_entry()', '55000', NULL, 'forgotten when the savepoint that wrote it rolls back');
SAVEPOINT s2;
SELECT award(:m, 9, 'released') AS released \gset
RELEASE SAVEPOINT s2;
SAVEPOINT s3;
SELECT 1;
ROLLBACK TO SAVEPOINT s3;
SELECT is(last_entry(), :released::bigint, 'a later savepoint''s rollback leaves it alone');

-- the order trigger writes through the same call
CREATE TABLE public.orders (id bigint PRIMARY KEY, member_id bigint, total numeric(12,2) NOT NULL, status text NOT NULL DEFAULT 'paid');
CREATE TRIGGER orders_loyalty AFTER INSERT OR UPDATE OR DELETE ON public.orders
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('member_id', 'total', 'id', 'status');
INSERT INTO public.orders (id, member_id, total) VALUES (77, :m, 4.00);
SELECT is(last_entry(), (SELECT entry_id FROM ledger WHERE member_id = :m AND kind = 'earn' AND reference = '77'),
          'after an order''s insert: its earn entry');

-- the application role may call it
SET LOCAL ROLE loyalty_app;
SELECT lives_ok('SELECT loyalty.last_entry()', 'the application role may call it');
RESET ROLE;
SELECT is((SELECT count(*) FROM verify()), 0::bigint, 'the books balance');

SELECT * FROM finish();
ROLLBACK;
