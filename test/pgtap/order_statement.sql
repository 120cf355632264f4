-- loyalty.order_trigger FOR EACH STATEMENT (transition tables) gives every
-- row the effect the row trigger gives it.  The same orders go to two
-- tables, one with the row trigger, one with the statement trigger, for two
-- sets of members; then each member's books are compared with its twin's:
-- ledger entries (kind, points, amount, reference, reason, details, times),
-- lots, accounts (balances, statistics, tier) and tier history.  The orders
-- exercise what depends on order within a member: a first-purchase bonus,
-- tier upgrades that change the earn rate mid-statement, back-dated orders,
-- cancels, lowered amounts, reassignments, deletes and replays.
BEGIN;
SELECT plan(30);

SELECT loyalty.create_program('bulk', earn_rate => 1) AS p \gset
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0);
SELECT loyalty.define_tier(:p, 1, 'Silver', 300, earn_multiplier => 2);
SELECT loyalty.create_earning_rule(:p, 'welcome', 'bonus', bonus_points => '25', first_purchase => true);

-- twenty members per side: row member k is row_m(k), statement member k is stmt_m(k)
CREATE TEMP TABLE twins (k integer PRIMARY KEY, row_m bigint, stmt_m bigint);
INSERT INTO twins
SELECT k, loyalty.enroll(:p, 'pos', 'row-' || k), loyalty.enroll(:p, 'pos', 'stmt-' || k)
FROM generate_series(1, 20) k;

CREATE SCHEMA shop;
CREATE TABLE shop.orders_row (id bigint PRIMARY KEY, customer bigint, total numeric(12, 2) NOT NULL,
                              status text NOT NULL DEFAULT 'paid', channel text, placed_at timestamptz);
CREATE TABLE shop.orders_stmt (LIKE shop.orders_row INCLUDING ALL);
CREATE TRIGGER loyalty_row AFTER INSERT OR UPDATE OR DELETE ON shop.orders_row
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
-- (a trigger with transition tables has one event: one trigger per event)
CREATE TRIGGER loyalty_ins AFTER INSERT ON shop.orders_stmt REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
CREATE TRIGGER loyalty_upd AFTER UPDATE ON shop.orders_stmt REFERENCING OLD TABLE AS loyalty_old NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
CREATE TRIGGER loyalty_del AFTER DELETE ON shop.orders_stmt REFERENCING OLD TABLE AS loyalty_old
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');

-- 400 orders in one statement each, members interleaved and out of order:
-- ids say the statement's order, every member gets 20 of them; some are
-- cancelled, some guests', some back-dated
CREATE TEMP TABLE batch AS
SELECT g AS id, 1 + (g * 7) % 20 AS k,
       (5 + (g * 13) % 90)::numeric(12, 2) AS total,
       CASE WHEN g % 17 = 0 THEN 'cancelled' ELSE 'paid' END AS status,
       CASE WHEN g % 3 = 0 THEN 'web' END AS channel,
       now() - make_interval(days => (g * 11) % 40) AS placed_at
FROM generate_series(1, 400) g;
CREATE FUNCTION pg_temp.load(tab text, side text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$INSERT INTO shop.%I (id, customer, total, status, channel, placed_at)
                     SELECT b.id, CASE WHEN b.id %% 29 = 0 THEN NULL ELSE t.%I END, b.total, b.status, b.channel, b.placed_at
                     FROM batch b JOIN twins t USING (k) ORDER BY b.id$q$, tab, side);
END $$;
SELECT pg_temp.load('orders_row', 'row_m');
SELECT pg_temp.load('orders_stmt', 'stmt_m');

-- each member's books as its twin-independent rows
CREATE FUNCTION pg_temp.books(side text) RETURNS TABLE (k integer, what text, row_text text) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT t.k, 'ledger', (l.kind, l.points, l.held_delta, l.amount, l.channel, l.reference, l.reason,
                              l.occurred_at, l.details - 'entry_id')::text
        FROM loyalty.ledger l JOIN twins t ON t.%1$I = l.member_id
        UNION ALL
        SELECT t.k, 'lot', (lo.original, lo.remaining, lo.reversed, lo.reversed_amount, lo.vests_at, lo.expires_at)::text
        FROM loyalty.lots lo JOIN twins t ON t.%1$I = lo.member_id
        UNION ALL
        SELECT t.k, 'account', (a.status, a.tier, a.balance, a.held, a.debt, a.lifetime_earned, a.lifetime_redeemed,
                                a.first_purchase_at, a.last_purchase_at, a.purchase_count, a.purchase_days,
                                a.purchase_amount, a.next_expiry_at)::text
        FROM loyalty.accounts a JOIN twins t ON t.%1$I = a.member_id
        UNION ALL
        SELECT t.k, 'tier', (h.from_tier, h.to_tier, h.reason)::text
        FROM loyalty.tier_history h JOIN twins t ON t.%1$I = h.member_id$q$, side);
END $$;
CREATE FUNCTION pg_temp.same(label text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM (
        (SELECT * FROM pg_temp.books('row_m') EXCEPT ALL SELECT * FROM pg_temp.books('stmt_m'))
        UNION ALL
        (SELECT * FROM pg_temp.books('stmt_m') EXCEPT ALL SELECT * FROM pg_temp.books('row_m'))) d;
    RETURN CASE WHEN n = 0 THEN 'same' ELSE format('%s rows differ', n) END;
END $$;

SELECT is((SELECT count(*) FROM loyalty.ledger l JOIN twins t ON t.stmt_m = l.member_id WHERE l.kind = 'earn'),
          (SELECT count(*) FROM batch WHERE status = 'paid' AND id % 29 <> 0), 'the statement trigger earns for every paid member order');
SELECT cmp_ok((SELECT count(*) FROM loyalty.tier_history h JOIN twins t ON t.stmt_m = h.member_id), '>', 0::bigint,
              'members reach Silver during the statement');
SELECT cmp_ok((SELECT count(*) FROM loyalty.ledger l JOIN twins t ON t.stmt_m = l.member_id
               WHERE l.details::text LIKE '%welcome%'), '>', 0::bigint, 'first-purchase bonuses were paid');
SELECT is(pg_temp.same('insert'), 'same', 'after a bulk insert both sides have the same books');

-- a bulk update: lower some amounts, cancel some, reassign some, and touch some without change
CREATE FUNCTION pg_temp.change(tab text, side text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$UPDATE shop.%I o SET total = o.total - 3 WHERE o.id %% 5 = 0 AND o.total > 10$q$, tab);
    EXECUTE format($q$UPDATE shop.%I o SET status = 'refunded' WHERE o.id %% 7 = 0$q$, tab);
    EXECUTE format($q$UPDATE shop.%I o SET customer = (SELECT t.%I FROM twins t WHERE t.k = 1 + (o.id * 3) %% 20)
                     WHERE o.id %% 23 = 0$q$, tab, side);
    EXECUTE format($q$UPDATE shop.%I o SET total = o.total + 0 WHERE o.id %% 2 = 1$q$, tab);
    EXECUTE format($q$UPDATE shop.%I o SET status = 'paid' WHERE o.status = 'cancelled'$q$, tab);
END $$;
SELECT pg_temp.change('orders_row', 'row_m');
SELECT pg_temp.change('orders_stmt', 'stmt_m');
SELECT cmp_ok((SELECT count(*) FROM loyalty.ledger l JOIN twins t ON t.stmt_m = l.member_id WHERE l.kind = 'reverse'), '>', 50::bigint,
              'the bulk updates reverse in bulk');
SELECT is(pg_temp.same('update'), 'same', 'after bulk updates both sides have the same books');

-- a bulk delete
DELETE FROM shop.orders_row WHERE id % 11 = 0;
DELETE FROM shop.orders_stmt WHERE id % 11 = 0;
SELECT is(pg_temp.same('delete'), 'same', 'after a bulk delete both sides have the same books');

-- a replayed import writes nothing; one with another amount fails, naming the order
CREATE TABLE shop.orders_stmt2 (LIKE shop.orders_row INCLUDING ALL);
CREATE TRIGGER loyalty_stmt2 AFTER INSERT ON shop.orders_stmt2 REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
CREATE TEMP TABLE n AS SELECT count(*) AS entries FROM loyalty.ledger;
SELECT pg_temp.load('orders_stmt2', 'stmt_m');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT entries FROM n), 'a replayed import of the first statement writes nothing');
TRUNCATE shop.orders_stmt2;
SELECT throws_ok($$INSERT INTO shop.orders_stmt2 SELECT id + 1000, customer, total, status, channel, placed_at
                   FROM shop.orders_stmt WHERE id BETWEEN 100 AND 110
                   UNION ALL SELECT id, customer, total + 1, status, channel, placed_at FROM shop.orders_stmt WHERE id = 101$$,
                 'LY002', NULL, 'an import replaying an order with another amount fails');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT entries FROM n), '...and writes nothing of the statement');
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
SELECT matches(pg_temp.error_context($$INSERT INTO shop.orders_stmt2 SELECT id, customer, total + 1, status, channel, placed_at
                                       FROM shop.orders_stmt WHERE id = 101$$),
               'order "101" of member \d+', 'the error names the order');

-- bad input in bulk: an unknown member fails the statement, naming the order
SELECT throws_ok($$INSERT INTO shop.orders_stmt2 (id, customer, total) VALUES (5001, 99999999, 10), (5002, NULL, 10)$$,
                 'P0002', NULL, 'an unknown member fails the statement');
SELECT matches(pg_temp.error_context($$INSERT INTO shop.orders_stmt2 (id, customer, total) VALUES (5001, 99999999, 10)$$),
               'order "5001" of member 99999999', '...naming the order');

-- an empty statement, and a statement trigger without its transition table
SELECT lives_ok($$INSERT INTO shop.orders_stmt SELECT * FROM shop.orders_stmt WHERE false$$, 'an empty statement does nothing');
CREATE TABLE shop.orders_bad (LIKE shop.orders_row INCLUDING DEFAULTS);
CREATE TRIGGER loyalty_bad AFTER INSERT ON shop.orders_bad
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
SELECT throws_ok($$INSERT INTO shop.orders_bad (id, customer, total) VALUES (1, NULL, 1)$$, '39P01',
                 'loyalty.order_trigger FOR EACH STATEMENT needs the statement''s transition tables',
                 'a statement trigger without transition tables is refused');
DROP TRIGGER loyalty_bad ON shop.orders_bad;
CREATE TRIGGER loyalty_bad AFTER UPDATE ON shop.orders_bad REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
SELECT throws_ok($$UPDATE shop.orders_bad SET total = 2$$, '39P01', NULL, '...so is one on UPDATE without its OLD TABLE');

-- on_error=skip: a bulk load that must go on puts failing orders aside
CREATE TABLE shop.orders_skip (LIKE shop.orders_row INCLUDING ALL);
CREATE TRIGGER loyalty_skip AFTER INSERT ON shop.orders_skip REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', '', '', 'on_error=skip');
INSERT INTO shop.orders_skip (id, customer, total)
SELECT 7001, stmt_m, 10 FROM twins WHERE k = 5
UNION ALL SELECT 7002, 99999999, 10
UNION ALL SELECT 7003, stmt_m, 12 FROM twins WHERE k = 6;
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE reference IN ('7001', '7003')), 2::bigint,
          'on_error=skip: the good orders of the statement earn...');
SELECT results_eq($$SELECT source, reference, member, sqlstate FROM loyalty.rejected_orders$$,
                  $$VALUES ('shop.orders_skip', '7002', 99999999::bigint, 'P0002')$$,
                  '...and the failing one is recorded in loyalty.rejected_orders');

-- last_entry() after a statement: the last write of the statement.  (Its
-- members are ones no rolled-back subtransaction above updated: on an
-- assert-enabled PostgreSQL 16.6 / 17.9, updating again a row that a
-- rolled-back subtransaction locked and updated, when the new version does
-- not fit on the page, trips Assert(HEAP_XMAX_IS_LOCKED_ONLY(...)) in
-- heap_update; plain SQL does it: update a row ~30 times, lock it, in a
-- subtransaction lock and update it and roll back, lock and update it.)
INSERT INTO shop.orders_stmt (id, customer, total) SELECT 9000 + k, stmt_m, 10 FROM twins WHERE k IN (7, 12);
SELECT is((SELECT reference FROM loyalty.ledger WHERE entry_id = loyalty.last_entry()), '9012',
          'last_entry() is the entry of the statement''s last member''s order');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
-- without tiers a member's orders of one statement update its account once,
-- with the same books as one order at a time (first-purchase bonus,
-- back-dated orders, purchase statistics, the expiry bound)
SELECT loyalty.create_program('flat', earn_rate => 1, expiry_period => interval '1 year') AS q \gset
SELECT loyalty.create_earning_rule(:q, 'welcome', 'bonus', bonus_points => '10', first_purchase => true);
CREATE TEMP TABLE flat (k integer PRIMARY KEY, row_m bigint, stmt_m bigint);
INSERT INTO flat SELECT k, loyalty.enroll(:q, 'pos', 'flat-row-' || k), loyalty.enroll(:q, 'pos', 'flat-stmt-' || k)
FROM generate_series(1, 5) k;
CREATE TABLE shop.flat_row (LIKE shop.orders_row INCLUDING ALL);
CREATE TABLE shop.flat_stmt (LIKE shop.orders_row INCLUDING ALL);
CREATE TRIGGER loyalty_row AFTER INSERT ON shop.flat_row
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
CREATE TRIGGER loyalty_ins AFTER INSERT ON shop.flat_stmt REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
CREATE TABLE public.flat_updates (member_id bigint);
CREATE FUNCTION public.flat_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.flat_updates VALUES (NEW.member_id);
    RETURN NULL;
END $$;
-- the differences between the two sides' accounts and ledgers (entries name
-- the other member of a merge by id: not compared)
CREATE FUNCTION pg_temp.flat_diff() RETURNS bigint LANGUAGE sql AS $$
SELECT (SELECT count(*) FROM flat f
       JOIN loyalty.accounts r ON r.member_id = f.row_m JOIN loyalty.accounts s ON s.member_id = f.stmt_m
       WHERE (r.balance, r.lifetime_earned, r.first_purchase_at, r.last_purchase_at, r.purchase_count,
              r.purchase_days, r.purchase_amount, r.next_expiry_at)
             IS DISTINCT FROM
             (s.balance, s.lifetime_earned, s.first_purchase_at, s.last_purchase_at, s.purchase_count,
              s.purchase_days, s.purchase_amount, s.next_expiry_at))
     + (SELECT count(*) FROM (
            (SELECT f.k, l.kind, l.points, l.amount, l.occurred_at, l.details - '{source_member,merged_from,merged_into}'::text[] FROM loyalty.ledger l JOIN flat f ON f.row_m = l.member_id
             EXCEPT ALL
             SELECT f.k, l.kind, l.points, l.amount, l.occurred_at, l.details - '{source_member,merged_from,merged_into}'::text[] FROM loyalty.ledger l JOIN flat f ON f.stmt_m = l.member_id)
            UNION ALL
            (SELECT f.k, l.kind, l.points, l.amount, l.occurred_at, l.details - '{source_member,merged_from,merged_into}'::text[] FROM loyalty.ledger l JOIN flat f ON f.stmt_m = l.member_id
             EXCEPT ALL
             SELECT f.k, l.kind, l.points, l.amount, l.occurred_at, l.details - '{source_member,merged_from,merged_into}'::text[] FROM loyalty.ledger l JOIN flat f ON f.row_m = l.member_id)) x)
$$;
CREATE TRIGGER flat_count AFTER UPDATE ON loyalty.accounts FOR EACH ROW EXECUTE FUNCTION public.flat_count();
INSERT INTO shop.flat_row (id, customer, total, placed_at)
SELECT g, f.row_m, 5 + g % 7, now() - make_interval(days => (g * 37) % 300) FROM generate_series(1, 50) g JOIN flat f ON f.k = 1 + g % 5;
INSERT INTO shop.flat_stmt (id, customer, total, placed_at)
SELECT g, f.stmt_m, 5 + g % 7, now() - make_interval(days => (g * 37) % 300) FROM generate_series(1, 50) g JOIN flat f ON f.k = 1 + g % 5;
DROP TRIGGER flat_count ON loyalty.accounts;
SELECT is((SELECT count(*) FROM public.flat_updates u JOIN flat f ON f.stmt_m = u.member_id), 5::bigint,
          'the statement updated each of its 5 members'' accounts once');
SELECT is((SELECT count(*) FROM public.flat_updates u JOIN flat f ON f.row_m = u.member_id), 50::bigint,
          'the row trigger updated them once per order');
SELECT is(pg_temp.flat_diff(), 0::bigint, 'and both sides have the same accounts and ledger');

-- lowered, cancelled and deleted in bulk: each member's account is updated
-- once per statement, with the same books as one order at a time
CREATE TRIGGER loyalty_change AFTER UPDATE OR DELETE ON shop.flat_row
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
CREATE TRIGGER loyalty_upd AFTER UPDATE ON shop.flat_stmt REFERENCING OLD TABLE AS loyalty_old NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
CREATE TRIGGER loyalty_del AFTER DELETE ON shop.flat_stmt REFERENCING OLD TABLE AS loyalty_old
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status', 'channel', 'placed_at');
TRUNCATE public.flat_updates;
CREATE TRIGGER flat_count AFTER UPDATE ON loyalty.accounts FOR EACH ROW EXECUTE FUNCTION public.flat_count();
UPDATE shop.flat_row SET total = total - 2 WHERE id % 3 = 0;
UPDATE shop.flat_row SET status = 'cancelled' WHERE id % 3 = 1 AND id % 2 = 0;
DELETE FROM shop.flat_row WHERE id % 7 = 0;
UPDATE shop.flat_stmt SET total = total - 2 WHERE id % 3 = 0;
UPDATE shop.flat_stmt SET status = 'cancelled' WHERE id % 3 = 1 AND id % 2 = 0;
DELETE FROM shop.flat_stmt WHERE id % 7 = 0;
DROP TRIGGER flat_count ON loyalty.accounts;
-- (5 members in each statement, but the only order of member 4 the DELETE
-- removes, 28, was cancelled already: nothing left to reverse)
SELECT is((SELECT count(*) FROM public.flat_updates u JOIN flat f ON f.stmt_m = u.member_id), 14::bigint,
          'three statements of reversals updated each member''s account once per statement');
SELECT is((SELECT count(*) FROM loyalty.ledger l JOIN flat f ON f.stmt_m = l.member_id WHERE l.kind = 'reverse'),
          (SELECT count(*) FROM loyalty.ledger l JOIN flat f ON f.row_m = l.member_id WHERE l.kind = 'reverse'),
          'as many reversals as row by row');
SELECT is(pg_temp.flat_diff(), 0::bigint, 'and both sides still have the same accounts and ledger');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance after the bulk reversals');

-- a merged-away member's orders deleted in the same statement as its
-- survivor's: the survivor's balance moves, in either member order
SELECT loyalty.merge_members(row_m, (SELECT row_m FROM flat WHERE k = 5)),
       loyalty.merge_members(stmt_m, (SELECT stmt_m FROM flat WHERE k = 5))
FROM flat WHERE k = 1;
SELECT loyalty.merge_members((SELECT row_m FROM flat WHERE k = 3), row_m),
       loyalty.merge_members((SELECT stmt_m FROM flat WHERE k = 3), stmt_m)
FROM flat WHERE k = 2;
-- (a statement takes its orders member by member, in member id order; a
-- reversal that takes points from other lots depends on that order, so the
-- row side deletes in the same order)
DO $$
DECLARE c bigint;
BEGIN
    FOR c IN SELECT DISTINCT customer FROM shop.flat_row ORDER BY customer LOOP
        DELETE FROM shop.flat_row WHERE customer = c;
    END LOOP;
END $$;
DELETE FROM shop.flat_stmt;
SELECT is((SELECT count(*) FROM loyalty.ledger l JOIN flat f ON f.stmt_m = l.member_id WHERE l.kind = 'reverse'),
          (SELECT count(*) FROM loyalty.ledger l JOIN flat f ON f.row_m = l.member_id WHERE l.kind = 'reverse'),
          'every order of merged members reversed, as row by row');
SELECT is(pg_temp.flat_diff(), 0::bigint, 'with the same accounts and ledger');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance after reversals across merges');

SELECT * FROM finish();
ROLLBACK;
