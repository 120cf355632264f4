-- loyalty.earn_batch: orders given as arrays earn as if each had been
-- earned on its own, member by member in occurred_at order: the same books
-- as loyalty.earn called once per order in that order (first-purchase
-- bonus, tier upgrades that change the earn rate, back-dated orders),
-- whatever the order of the arrays.  Keyed by order reference like the
-- order trigger: a replayed backfill writes nothing, an order imported by
-- the trigger is not credited again, another amount fails (LY002) and the
-- whole call writes nothing.
BEGIN;
SELECT plan(22);

SELECT loyalty.create_program('backfill', earn_rate => 1) AS p \gset
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0);
SELECT loyalty.define_tier(:p, 1, 'Silver', 300, earn_multiplier => 2);
SELECT loyalty.create_earning_rule(:p, 'welcome', 'bonus', bonus_points => '25', first_purchase => true);

CREATE TEMP TABLE twins (k integer PRIMARY KEY, one_m bigint, batch_m bigint);
INSERT INTO twins
SELECT k, loyalty.enroll(:p, 'pos', 'one-' || k), loyalty.enroll(:p, 'pos', 'batch-' || k)
FROM generate_series(1, 10) k;

-- two years of history, 200 orders, in no particular order
CREATE TEMP TABLE hist AS
SELECT g AS id, 1 + (g * 7) % 10 AS k, (5 + (g * 13) % 90)::numeric(12, 2) AS total,
       now() - make_interval(days => (g * 37) % 700) AS placed_at,
       CASE WHEN g % 4 = 0 THEN 'web' END AS channel
FROM generate_series(1, 200) g;

-- one by one, in time order per member
SELECT count(loyalty.earn(t.one_m, h.total, channel => h.channel, reference => 'h' || h.id,
                          idempotency_key => 'order:h' || h.id, occurred_at => h.placed_at))
FROM (SELECT * FROM hist ORDER BY k, placed_at) h JOIN twins t USING (k);

-- in one call, arrays in id order
CREATE TEMP TABLE result AS
SELECT * FROM loyalty.earn_batch(
    (SELECT array_agg(t.batch_m ORDER BY h.id) FROM hist h JOIN twins t USING (k)),
    (SELECT array_agg(h.total ORDER BY h.id) FROM hist h),
    (SELECT array_agg('h' || h.id ORDER BY h.id) FROM hist h),
    occurred_at => (SELECT array_agg(h.placed_at ORDER BY h.id) FROM hist h),
    channel => (SELECT array_agg(h.channel ORDER BY h.id) FROM hist h));
SELECT is((SELECT (orders, earned, replayed)::text FROM result), '(200,200,0)', 'earn_batch earns every order once');
SELECT is((SELECT points FROM result),
          (SELECT sum(l.points::bigint) FROM loyalty.ledger l JOIN twins t ON t.batch_m = l.member_id)::bigint,
          '...and returns the points it credited');

CREATE FUNCTION pg_temp.books(side text) RETURNS TABLE (k integer, what text, row_text text) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT t.k, 'ledger', (l.kind, l.points, l.amount, l.channel, l.reference, l.occurred_at, l.idempotency_key, l.details)::text
        FROM loyalty.ledger l JOIN twins t ON t.%1$I = l.member_id
        UNION ALL
        SELECT t.k, 'lot', (lo.original, lo.remaining, lo.vests_at, lo.expires_at)::text
        FROM loyalty.lots lo JOIN twins t ON t.%1$I = lo.member_id
        UNION ALL
        SELECT t.k, 'account', (a.tier, a.balance, a.lifetime_earned, a.first_purchase_at, a.last_purchase_at,
                                a.purchase_count, a.purchase_days, a.purchase_amount, a.next_expiry_at)::text
        FROM loyalty.accounts a JOIN twins t ON t.%1$I = a.member_id
        UNION ALL
        SELECT t.k, 'tier', (h.from_tier, h.to_tier, h.reason)::text
        FROM loyalty.tier_history h JOIN twins t ON t.%1$I = h.member_id$q$, side);
END $$;
SELECT is((SELECT count(*) FROM (
              (SELECT * FROM pg_temp.books('one_m') EXCEPT ALL SELECT * FROM pg_temp.books('batch_m'))
              UNION ALL
              (SELECT * FROM pg_temp.books('batch_m') EXCEPT ALL SELECT * FROM pg_temp.books('one_m'))) d),
          0::bigint, 'the same books as earning each order on its own, in time order per member');
SELECT cmp_ok((SELECT count(*) FROM loyalty.tier_history h JOIN twins t ON t.batch_m = h.member_id), '>', 0::bigint,
              'members reached Silver along the way');

-- a replayed backfill writes nothing
CREATE TEMP TABLE n AS SELECT count(*) AS entries FROM loyalty.ledger;
SELECT is((SELECT (orders, earned, replayed, points)::text FROM loyalty.earn_batch(
              (SELECT array_agg(t.batch_m ORDER BY h.id DESC) FROM hist h JOIN twins t USING (k)),
              (SELECT array_agg(h.total ORDER BY h.id DESC) FROM hist h),
              (SELECT array_agg('h' || h.id ORDER BY h.id DESC) FROM hist h),
              occurred_at => (SELECT array_agg(h.placed_at ORDER BY h.id DESC) FROM hist h),
              channel => (SELECT array_agg(h.channel ORDER BY h.id DESC) FROM hist h))),
          '(200,0,200,0)', 'a replayed backfill replays every order...');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT entries FROM n), '...and writes nothing');

-- the order trigger and the batch share the order's key
CREATE SCHEMA shop;
CREATE TABLE shop.orders (id text PRIMARY KEY, customer bigint, total numeric NOT NULL, status text NOT NULL DEFAULT 'paid');
CREATE TRIGGER orders_loyalty AFTER INSERT ON shop.orders
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
INSERT INTO shop.orders (id, customer, total) SELECT 'live-1', batch_m, 12 FROM twins WHERE k = 1;
SELECT is((SELECT (earned, replayed)::text FROM loyalty.earn_batch(
              (SELECT ARRAY[batch_m, batch_m] FROM twins WHERE k = 1), ARRAY[12, 8]::numeric[], ARRAY['live-1', 'live-2'])),
          '(1,1)', 'an order the trigger earned replays in the batch; a new one earns');

-- guests are skipped; drivers' integer arrays and untyped arrays work
SELECT is((SELECT (orders, earned)::text FROM loyalty.earn_batch(ARRAY[NULL, NULL]::bigint[], '{1,2}', '{g-1,g-2}')),
          '(2,0)', 'orders without a member are skipped');
SELECT is((SELECT earned FROM loyalty.earn_batch(ARRAY[(SELECT batch_m::integer FROM twins WHERE k = 2)], ARRAY[3], ARRAY['int-1'])),
          1::bigint, 'integer[] members and amounts (psycopg2 lists of ints) are taken');

-- one bad order fails the call, naming it, and nothing is written
TRUNCATE n;
INSERT INTO n SELECT count(*) FROM loyalty.ledger;
SELECT throws_ok(format($$SELECT * FROM loyalty.earn_batch(ARRAY[%1$s, %1$s], ARRAY[10, 99], ARRAY['new-1', 'h2'])$$,
                        (SELECT batch_m FROM twins WHERE k = 1 + (2 * 7) % 10)),
                 'LY002', NULL, 'an order replayed with another amount fails the call');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT entries FROM n), '...and nothing of it is written');
CREATE FUNCTION pg_temp.error_context(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    ctx text;
BEGIN
    EXECUTE stmt;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
    RETURN ctx;
END $$;
SELECT matches(pg_temp.error_context(format($$SELECT * FROM loyalty.earn_batch(ARRAY[%s, 99999999], ARRAY[1, 1], ARRAY['u-1', 'u-2'])$$,
                                            (SELECT batch_m FROM twins WHERE k = 3))),
               'order "u-2" of member 99999999', 'the error names the order and member');
SELECT throws_ok($$SELECT * FROM loyalty.earn_batch(ARRAY[1, 2], ARRAY[1], ARRAY['a', 'b'])$$, '2202E',
                 'amount has 1 elements, member has 2', 'arrays of different lengths are refused');
SELECT throws_ok($$SELECT * FROM loyalty.earn_batch(NULL, ARRAY[1], ARRAY['a'])$$, '22004', 'member must not be NULL',
                 'a NULL array is refused');
SELECT throws_ok($$SELECT * FROM loyalty.earn_batch(ARRAY[1], ARRAY[1], ARRAY[NULL::text])$$, '22004', NULL,
                 'an order without a reference is refused');

-- imports that must go on: on_error => 'skip' puts failing orders aside
TRUNCATE n;
INSERT INTO n SELECT count(*) FROM loyalty.ledger;
CREATE TEMP TABLE skipped AS
SELECT * FROM loyalty.earn_batch(
    ARRAY[(SELECT batch_m FROM twins WHERE k = 5), 99999999, (SELECT batch_m FROM twins WHERE k = 5),
          (SELECT batch_m FROM twins WHERE k = 1 + (2 * 7) % 10), (SELECT batch_m FROM twins WHERE k = 6),
          (SELECT batch_m FROM twins WHERE k = 6)],
    ARRAY[10, 10, -5, 99, 20, 'NaN']::numeric[], ARRAY['s-1', 's-2', 's-3', 'h2', NULL, 's-nan'],
    on_error => 'skip');
SELECT is((SELECT (orders, earned, replayed, rejected)::text FROM skipped), '(6,1,0,5)',
          'on_error skip: the good order earns, the five bad ones are rejected');
SELECT is((SELECT points FROM skipped), (SELECT points::bigint FROM loyalty.ledger WHERE reference = 's-1'),
          '...and the points are the good order''s');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT entries FROM n) + 1, '...and only the good one is written');
SELECT results_eq($$SELECT source, reference, sqlstate FROM loyalty.rejected_orders ORDER BY reject_id$$,
                  $$VALUES ('loyalty.earn_batch', 's-3', '22023'), ('loyalty.earn_batch', 'h2', 'LY002'),
                           ('loyalty.earn_batch', NULL, '22004'), ('loyalty.earn_batch', 's-nan', '22023'),
                           ('loyalty.earn_batch', 's-2', 'P0002')$$,
                  'loyalty.rejected_orders says which and why, in the order they were taken (a negative amount, another amount, no reference, NaN, an unknown member)');
SELECT ok((SELECT bool_and(message <> '' AND rejected_at IS NOT NULL) FROM loyalty.rejected_orders), 'with the error''s message');
SELECT throws_ok($$SELECT * FROM loyalty.earn_batch(ARRAY[1], ARRAY[1], ARRAY['x'], on_error => 'ignore')$$, '22023', NULL,
                 'on_error is fail or skip');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
SELECT * FROM finish();
ROLLBACK;
