-- The bulk paths on a Citus cluster, from the coordinator inside one
-- transaction: a statement-level order trigger on a local table of the
-- coordinator and earn_batch earn through statements routed to each
-- member's shard, each member's account updated once per statement.  Run by
-- test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(7);

SELECT loyalty.create_program('tap-bulk') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'bulk-1') AS m1 \gset
SELECT loyalty.enroll(:p, 'pos', 'bulk-2') AS m2 \gset

CREATE TABLE public.bulk_orders (id bigint PRIMARY KEY, customer bigint, total numeric NOT NULL,
                                 status text NOT NULL DEFAULT 'paid');
CREATE TRIGGER bulk_loyalty AFTER INSERT ON public.bulk_orders REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
INSERT INTO public.bulk_orders (id, customer, total) VALUES (1, :m1, 10), (2, :m2, 20), (3, :m1, 30);

-- a query of a distributed table is read first: inside is() it would be
-- pushed down to the shard, where pgTAP's state is not
SELECT balance::bigint AS b1, purchase_count AS c1 FROM loyalty.accounts WHERE member_id = :m1 \gset
SELECT balance::bigint AS b2 FROM loyalty.accounts WHERE member_id = :m2 \gset
SELECT is(:b1::bigint, 40::bigint, 'the statement trigger earned both orders of member 1');
SELECT is(:c1::bigint, 2::bigint, '... counted as two purchases');
SELECT is(:b2::bigint, 20::bigint, '... and the order of member 2');

SELECT (orders, earned, replayed)::text AS r
FROM loyalty.earn_batch(ARRAY[:m1, :m2, :m1]::bigint[], ARRAY[10, 6, 7]::numeric[], ARRAY['1', 'b-2', 'b-3']) \gset
SELECT is(:'r'::text, '(3,2,1)', 'earn_batch replays the order the trigger earned and earns the others');
SELECT (orders, earned, replayed)::text AS r
FROM loyalty.earn_batch(ARRAY[:m1, :m2, :m1]::bigint[], ARRAY[10, 6, 7]::numeric[], ARRAY['1', 'b-2', 'b-3']) \gset
SELECT is(:'r'::text, '(3,0,3)', 'a replayed batch writes nothing');

SELECT balance::bigint AS b1 FROM loyalty.accounts WHERE member_id = :m1 \gset
SELECT is(:b1::bigint, 47::bigint, 'member 1: 10 + 30 + 7');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
