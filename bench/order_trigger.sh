#!/bin/bash
# bench/order_trigger.sh: COPY of orders into an application table with
# loyalty.order_trigger, against the same COPY without a trigger and with a
# PL/pgSQL trigger doing the same job (earn per order, idempotent by order
# reference), and against plain SQL writing the rows one run wrote (the
# floor of any implementation).  See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/order_trigger.sh
#   BENCH_ORDERS=100000 pg_virtualenv -t -v 15 bench/order_trigger.sh   # quicker
set -euo pipefail

BENCH_ORDERS=${BENCH_ORDERS:-1000000}
BENCH_MEMBERS=${BENCH_MEMBERS:-100000}
BENCH_DB=${BENCH_DB:-loyalty_bench_orders}

BENCH_NAME=order_trigger.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup BENCH_ORDERS BENCH_MEMBERS

echo "== loyalty order trigger benchmark: COPY of $BENCH_ORDERS orders over $BENCH_MEMBERS members =="
q1 "SELECT version()"
q1 "SELECT format('server: fsync=%s synchronous_commit=%s shared_buffers=%s', current_setting('fsync'), current_setting('synchronous_commit'), current_setting('shared_buffers'))"

q -v members="$BENCH_MEMBERS" <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('bench', expiry_period => interval '2 years') AS program \gset
-- no outbox events: neither reference writes any
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :program;
SELECT count(loyalty.enroll(:program, 'bench', g::text)) FROM generate_series(1, :members) g \gset

CREATE SCHEMA shop;
CREATE TABLE shop.orders_plain (id bigint PRIMARY KEY, customer bigint, total numeric(12,2) NOT NULL, status text NOT NULL);
CREATE TABLE shop.orders_c (LIKE shop.orders_plain INCLUDING ALL);
CREATE TABLE shop.orders_plpgsql (LIKE shop.orders_plain INCLUDING ALL);
CREATE TABLE shop.orders_stmt (LIKE shop.orders_plain INCLUDING ALL);
CREATE TABLE shop.orders_staged (LIKE shop.orders_plain INCLUDING ALL);

CREATE TRIGGER loyalty_c AFTER INSERT OR UPDATE OR DELETE ON shop.orders_c
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
CREATE TRIGGER loyalty_stmt AFTER INSERT ON shop.orders_stmt REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
CREATE TRIGGER loyalty_stmt_upd AFTER UPDATE ON shop.orders_stmt
    REFERENCING OLD TABLE AS loyalty_old NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');

-- What a user would write instead: the same earn per order, keyed by the
-- order reference, from PL/pgSQL (insert path only: the one COPY measures).
CREATE FUNCTION shop.orders_loyalty() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.customer IS NOT NULL AND NEW.total > 0
       AND NEW.status NOT IN ('refunded', 'cancelled', 'canceled') THEN
        PERFORM loyalty.earn(NEW.customer, NEW.total, NULL, NEW.id::text, 'order:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER loyalty_plpgsql AFTER INSERT ON shop.orders_plpgsql
    FOR EACH ROW EXECUTE FUNCTION shop.orders_loyalty();
-- and its refunds: an order marked refunded gives back what it earned
CREATE FUNCTION shop.orders_loyalty_refund() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.status = 'refunded' AND OLD.status <> 'refunded' AND NEW.customer IS NOT NULL AND NEW.total > 0 THEN
        PERFORM loyalty.refund(NEW.customer, NEW.id::text, idempotency_key => 'refund:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER loyalty_plpgsql_refund AFTER UPDATE ON shop.orders_plpgsql
    FOR EACH ROW EXECUTE FUNCTION shop.orders_loyalty_refund();
SQL
base=$(q1 "SELECT min(member_id) - 1 FROM loyalty.members")

# seven order files with disjoint ids (the runs must not replay each other)
for run in 0 1 2 3 4 5 6; do
    q -c "\\copy (SELECT $run * $BENCH_ORDERS + g, $base + 1 + g % $BENCH_MEMBERS, (1 + g % 200)::numeric(12,2), 'paid' FROM generate_series(1, $BENCH_ORDERS) g) TO '$TMP/orders$run.tsv'"
done
q -c "VACUUM ANALYZE" -c "CHECKPOINT"

load() {
    local table=$1 file=$2 t0 t1
    q -c "CHECKPOINT"
    t0=$(now)
    q -c "\\copy shop.$table FROM '$file'"
    t1=$(now)
    secs "$t0" "$t1"
}

T_PLAIN=$(load orders_plain "$TMP/orders0.tsv")
echo "  COPY without trigger        ${T_PLAIN}s"
# The ledger grows with each run, so the three trigger runs go in both
# orders (PL/pgSQL, row, statement, statement, row, PL/pgSQL) and each is
# charged its mean.
T_PLPGSQL1=$(load orders_plpgsql "$TMP/orders1.tsv")
echo "  COPY with PL/pgSQL trigger  ${T_PLPGSQL1}s (first)"
T_C1=$(load orders_c "$TMP/orders0.tsv")
echo "  COPY with order_trigger     ${T_C1}s (second)"
T_S1=$(load orders_stmt "$TMP/orders4.tsv")
echo "  COPY with order_trigger FOR EACH STATEMENT ${T_S1}s (third)"
# no trigger on TRUNCATE: the ledger keeps its entries
q -c "TRUNCATE shop.orders_c, shop.orders_plpgsql, shop.orders_stmt"
T_S2=$(load orders_stmt "$TMP/orders5.tsv")
echo "  COPY with order_trigger FOR EACH STATEMENT ${T_S2}s (fourth)"
T_C2=$(load orders_c "$TMP/orders2.tsv")
echo "  COPY with order_trigger     ${T_C2}s (fifth)"
T_PLPGSQL2=$(load orders_plpgsql "$TMP/orders3.tsv")
echo "  COPY with PL/pgSQL trigger  ${T_PLPGSQL2}s (sixth)"
# a backfill: the orders staged without a trigger, then one earn_batch call
q -c "\\copy shop.orders_staged FROM '$TMP/orders6.tsv'" -c "VACUUM ANALYZE shop.orders_staged" -c "CHECKPOINT"
t0=$(now)
q -c "SELECT * FROM loyalty.earn_batch((SELECT array_agg(customer ORDER BY id) FROM shop.orders_staged),
        (SELECT array_agg(total ORDER BY id) FROM shop.orders_staged), (SELECT array_agg(id::text ORDER BY id) FROM shop.orders_staged))" >/dev/null
T_B=$(secs "$t0" "$(now)")
echo "  earn_batch over staged orders ${T_B}s (seventh)"
T_C=$(awk -v a="$T_C1" -v b="$T_C2" 'BEGIN { printf "%.2f", (a + b) / 2 }')
T_S=$(awk -v a="$T_S1" -v b="$T_S2" 'BEGIN { printf "%.2f", (a + b) / 2 }')
T_PLPGSQL=$(awk -v a="$T_PLPGSQL1" -v b="$T_PLPGSQL2" 'BEGIN { printf "%.2f", (a + b) / 2 }')

earned=$(q1 "SELECT count(*) FROM loyalty.ledger WHERE kind = 'earn'")
[[ $earned == $((7 * BENCH_ORDERS)) ]] || die "expected $((7 * BENCH_ORDERS)) earn entries, found $earned"
bad=$(q1 "SELECT count(*) FROM loyalty.verify()")
echo "earn entries: $earned; loyalty.verify() rows: $bad"
[[ $bad == 0 ]] || die "the books do not balance"

# The floor: the rows the fourth run wrote (its orders' earn entries, lots
# and keys, and one update per member's account) written by plain SQL into
# tables of the same definitions and indexes, from staged copies.
q -o /dev/null <<'SQL'
CREATE SCHEMA floor;
CREATE TABLE floor.ledger (LIKE loyalty.ledger INCLUDING ALL);
CREATE TABLE floor.lots (LIKE loyalty.lots INCLUDING ALL);
CREATE TABLE floor.keys (LIKE loyalty.idempotency_keys INCLUDING ALL);
CREATE TABLE floor.accounts (LIKE loyalty.accounts INCLUDING ALL) WITH (fillfactor = 80);
INSERT INTO floor.accounts SELECT * FROM loyalty.accounts;
CREATE TABLE floor.s_ledger AS
SELECT l.* FROM shop.orders_stmt o JOIN loyalty.ledger l ON l.member_id = o.customer AND l.reference = o.id::text
WHERE l.kind = 'earn';
CREATE TABLE floor.s_lots AS
SELECT l.member_id, l.lot_id, l.entry_id, l.original, l.remaining, l.reversed, l.reversed_amount, l.vests_at,
       l.expires_at, l.created_at
FROM floor.s_ledger e JOIN loyalty.lots l ON l.member_id = e.member_id AND l.lot_id = e.entry_id;
CREATE TABLE floor.s_keys AS
SELECT k.* FROM floor.s_ledger e
JOIN loyalty.idempotency_keys k ON k.member_id = e.member_id AND k.idempotency_key = 'order:' || e.reference;
VACUUM ANALYZE;
SQL
q -c "CHECKPOINT"
t0=$(now)
q -o /dev/null <<'SQL'
BEGIN;
INSERT INTO floor.ledger OVERRIDING SYSTEM VALUE SELECT * FROM floor.s_ledger;
INSERT INTO floor.lots (member_id, lot_id, entry_id, original, remaining, reversed, reversed_amount, vests_at,
                        expires_at, created_at)
SELECT * FROM floor.s_lots;
INSERT INTO floor.keys SELECT * FROM floor.s_keys;
UPDATE floor.accounts a
SET balance = (a.balance::bigint + s.p)::loyalty.points, lifetime_earned = (a.lifetime_earned::bigint + s.p)::loyalty.points,
    purchase_count = a.purchase_count + s.n, purchase_amount = a.purchase_amount + s.amount,
    first_purchase_at = least(a.first_purchase_at, s.first), last_purchase_at = greatest(a.last_purchase_at, s.last),
    updated_at = now()
FROM (SELECT member_id, sum(points::bigint)::bigint AS p, count(*) AS n, sum(amount) AS amount,
             min(occurred_at) AS first, max(occurred_at) AS last
      FROM floor.s_ledger GROUP BY member_id) s
WHERE a.member_id = s.member_id;
COMMIT;
SQL
T_FLOOR=$(secs "$t0" "$(now)")
floor_rows=$(q1 "SELECT (SELECT count(*) FROM floor.ledger) || ' entries, ' || (SELECT count(*) FROM floor.lots) || ' lots, ' || (SELECT count(*) FROM floor.keys) || ' keys'")
[[ $(q1 "SELECT count(*) FROM floor.ledger") == "$BENCH_ORDERS" ]] || die "the floor did not find the fourth run's entries"
echo "  the same rows by plain SQL  ${T_FLOOR}s ($floor_rows, the accounts updated once each)"

# Refunds in bulk: one UPDATE marks every tenth order of each table refunded
# (the ledger as the loads left it: no redemptions, so each reversal takes
# its points from the order's own lot).
refund() {
    local table=$1 t0
    q -c "VACUUM ANALYZE shop.$table" -c "CHECKPOINT"
    t0=$(now)
    q -c "UPDATE shop.$table SET status = 'refunded' WHERE id % 10 = 0"
    secs "$t0" "$(now)"
}
R_PLAIN=$(refund orders_plain)
echo "  UPDATE without trigger      ${R_PLAIN}s"
R_S=$(refund orders_stmt)
echo "  UPDATE with order_trigger FOR EACH STATEMENT ${R_S}s"
R_C=$(refund orders_c)
echo "  UPDATE with order_trigger   ${R_C}s"
R_PLPGSQL=$(refund orders_plpgsql)
echo "  UPDATE with PL/pgSQL trigger ${R_PLPGSQL}s"
refunds=$((BENCH_ORDERS / 10))
reversed=$(q1 "SELECT count(*) FROM loyalty.ledger WHERE kind = 'reverse'")
[[ $reversed == $((3 * refunds)) ]] || die "expected $((3 * refunds)) reversals, found $reversed"
bad=$(q1 "SELECT count(*) FROM loyalty.verify()")
echo "reversals: $reversed; loyalty.verify() rows: $bad"
[[ $bad == 0 ]] || die "the books do not balance"

# The refunds' floor: the rows the statement's refunds wrote (reversal
# entries and keys, the lots' new remainders, one update per member's
# account) written by plain SQL into the floor's tables, which hold the
# statement run's earns.
q -o /dev/null <<'SQL'
CREATE TABLE floor.r_ledger AS
SELECT l.* FROM shop.orders_stmt o JOIN loyalty.ledger l ON l.member_id = o.customer AND l.reference = o.id::text
WHERE o.status = 'refunded' AND l.kind = 'reverse';
CREATE TABLE floor.r_lots AS
SELECT lo.member_id, lo.lot_id, lo.remaining, lo.reversed, lo.reversed_amount
FROM floor.r_ledger r JOIN loyalty.lots lo ON lo.member_id = r.member_id AND lo.lot_id = r.source_entry;
CREATE TABLE floor.r_keys AS
SELECT k.* FROM floor.r_ledger r
JOIN loyalty.idempotency_keys k ON k.member_id = r.member_id AND k.entry_id = r.entry_id;
VACUUM ANALYZE;
SQL
q -c "CHECKPOINT"
t0=$(now)
q -o /dev/null <<'SQL'
BEGIN;
INSERT INTO floor.ledger OVERRIDING SYSTEM VALUE SELECT * FROM floor.r_ledger;
INSERT INTO floor.keys SELECT * FROM floor.r_keys;
UPDATE floor.lots l SET remaining = r.remaining, reversed = r.reversed, reversed_amount = r.reversed_amount
FROM floor.r_lots r WHERE l.member_id = r.member_id AND l.lot_id = r.lot_id;
UPDATE floor.accounts a
SET balance = (a.balance::bigint + s.p)::loyalty.points, lifetime_earned = (a.lifetime_earned::bigint + s.p)::loyalty.points,
    purchase_count = a.purchase_count - s.n, purchase_amount = a.purchase_amount - s.amount, updated_at = now()
FROM (SELECT member_id, sum(points::bigint)::bigint AS p, count(*) AS n, sum(amount) AS amount
      FROM floor.r_ledger GROUP BY member_id) s
WHERE a.member_id = s.member_id;
COMMIT;
SQL
R_FLOOR=$(secs "$t0" "$(now)")
[[ $(q1 "SELECT count(*) FROM floor.r_ledger") == "$refunds" ]] || die "the refunds' floor did not find the statement's reversals"
[[ $(q1 "SELECT count(*) FROM floor.r_lots") == "$refunds" ]] || die "the refunds' floor did not find the reversed lots"
echo "  the same refund rows by plain SQL ${R_FLOOR}s ($refunds entries, keys and lots, the accounts updated once each)"

awk -v p="$R_PLAIN" -v c="$R_C" -v st="$R_S" -v s="$R_PLPGSQL" -v f="$R_FLOOR" 'BEGIN {
    printf "ratio refunds: statement order_trigger/same rows by plain SQL (time): %.2f\n", st / f;
    printf "ratio refunds: statement order_trigger/no trigger (time): %.2f\n", st / p;
    printf "ratio refunds: statement/row order_trigger (time): %.3f\n", st / c;
    printf "ratio refunds: statement order_trigger/plpgsql trigger (time): %.3f\n", st / s;
    printf "ratio refunds: order_trigger/plpgsql trigger (time): %.3f\n", c / s;
    printf "refunds per second: statement order_trigger %.0f, order_trigger %.0f, plpgsql trigger %.0f\n", '"$refunds"' / st, '"$refunds"' / c, '"$refunds"' / s }'

awk -v c="$T_C" -v p="$T_PLAIN" -v s="$T_PLPGSQL" -v st="$T_S" -v b="$T_B" -v f="$T_FLOOR" 'BEGIN {
    printf "ratio same rows by plain SQL/no trigger (time): %.2f\n", f / p;
    printf "ratio statement order_trigger/same rows by plain SQL (time): %.2f\n", st / f;
    printf "ratio order_trigger/no trigger (time): %.2f\n", c / p;
    printf "ratio order_trigger/plpgsql trigger (time): %.3f\n", c / s;
    printf "ratio statement order_trigger/no trigger (time): %.2f\n", st / p;
    printf "ratio statement order_trigger/plpgsql trigger (time): %.3f\n", st / s;
    printf "ratio statement/row order_trigger (time): %.3f\n", st / c;
    printf "ratio earn_batch/no trigger (time): %.2f\n", b / p;
    printf "orders per second: no trigger %.0f, plpgsql trigger %.0f, order_trigger %.0f, statement order_trigger %.0f, earn_batch %.0f\n", '"$BENCH_ORDERS"' / p, '"$BENCH_ORDERS"' / s, '"$BENCH_ORDERS"' / c, '"$BENCH_ORDERS"' / st, '"$BENCH_ORDERS"' / b }'
