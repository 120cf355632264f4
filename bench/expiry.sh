#!/bin/bash
# bench/expiry.sh: CALL loyalty.expire_points over BENCH_MEMBERS members with
# BENCH_LOTS lots each, against plain SQL doing the same bookkeeping on copies
# of the tables (an expire entry per member, an allocation per lot, the lots
# emptied, the accounts' balance, lifetime_expired and next_expiry_at); prints
# the ratio.  See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/expiry.sh                      # 1M members, 10M lots
#   BENCH_MEMBERS=100000 pg_virtualenv -t -v 15 bench/expiry.sh # quicker
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-1000000}
BENCH_LOTS=${BENCH_LOTS:-10}
BENCH_BATCH=${BENCH_BATCH:-10000}
BENCH_DB=${BENCH_DB:-loyalty_bench_expiry}

BENCH_NAME=expiry.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup BENCH_MEMBERS BENCH_LOTS BENCH_BATCH
echo "== loyalty expiry benchmark: $BENCH_MEMBERS members x $BENCH_LOTS lots, batches of $BENCH_BATCH =="
q1 "SELECT version()"

t0=$(now)
# The data is written straight into the tables (as a restore would), in a
# state loyalty.verify() accepts: every lot its earn entry, credited over the
# last 700 days, expiring a year after; about half of them have expired.
q -o /dev/null -v members="$BENCH_MEMBERS" -v lots="$BENCH_LOTS" <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('bench', expiry_period => interval '1 year') AS p \gset
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :p;
ALTER TABLE loyalty.ledger DISABLE TRIGGER USER;
INSERT INTO loyalty.members (member_id, program_id, joined_at, source_channel)
OVERRIDING SYSTEM VALUE SELECT g, :p, now() - interval '2 years', 'bench' FROM generate_series(1, :members) g;
INSERT INTO loyalty.identities (program_id, channel, external_id, member_id)
SELECT :p, 'bench', g::text, g FROM generate_series(1, :members) g;
CREATE TEMP TABLE buys AS
SELECT m AS member_id, m * 100 + k AS entry_id, 10 + (m * 7 + k * 13) % 90 AS pts,
       now() - make_interval(days => ((m * 31 + k * 97) % 700)) AS at
FROM generate_series(1, :members) m, generate_series(1, :lots) k;
INSERT INTO loyalty.ledger (member_id, entry_id, program_id, kind, points, amount, reference, created_at, occurred_at)
OVERRIDING SYSTEM VALUE
SELECT member_id, entry_id, :p, 'earn', pts::bigint::loyalty.points, pts, 'b' || entry_id, at, at FROM buys;
INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at, expires_at, created_at)
SELECT member_id, entry_id, entry_id, pts::bigint::loyalty.points, pts::bigint::loyalty.points, at,
       at + interval '1 year', at FROM buys;
INSERT INTO loyalty.accounts (member_id, program_id, balance, lifetime_earned, first_purchase_at, last_purchase_at,
                              purchase_count, purchase_days, purchase_amount, next_expiry_at)
SELECT member_id, :p, sum(pts)::bigint::loyalty.points, sum(pts)::bigint::loyalty.points, min(at), max(at),
       count(*), count(DISTINCT at::date), sum(pts), min(at) + interval '1 year'
FROM buys GROUP BY member_id;
ALTER TABLE loyalty.ledger ENABLE TRIGGER USER;
SELECT setval('loyalty.ledger_entry_id_seq', (SELECT max(entry_id) FROM loyalty.ledger));
SELECT setval('loyalty.members_member_id_seq', :members);
-- the reference's copies: the same columns, defaults, constraints and indexes
CREATE SCHEMA bare;
CREATE TABLE bare.ledger (LIKE loyalty.ledger INCLUDING ALL);
CREATE TABLE bare.lots (LIKE loyalty.lots INCLUDING ALL);
CREATE TABLE bare.allocations (LIKE loyalty.allocations INCLUDING ALL);
CREATE TABLE bare.accounts (LIKE loyalty.accounts INCLUDING ALL) WITH (fillfactor = 80);
INSERT INTO bare.ledger OVERRIDING SYSTEM VALUE SELECT * FROM loyalty.ledger;
SELECT setval(pg_get_serial_sequence('bare.ledger', 'entry_id'), (SELECT max(entry_id) FROM loyalty.ledger));
INSERT INTO bare.lots (member_id, lot_id, entry_id, original, remaining, reversed, reversed_amount, vests_at,
                       expires_at, created_at)
SELECT member_id, lot_id, entry_id, original, remaining, reversed, reversed_amount, vests_at, expires_at, created_at
FROM loyalty.lots;
INSERT INTO bare.accounts SELECT * FROM loyalty.accounts;
SQL
q -c "VACUUM ANALYZE" -c "CHECKPOINT"
nlots=$(q1 "SELECT count(*) FROM loyalty.lots")
nexp=$(q1 "SELECT count(*) FROM loyalty.lots WHERE expires_at <= now()")
echo "setup: $(secs "$t0" "$(now)")s ($BENCH_MEMBERS members, $nlots lots, $nexp of them expired)"
[[ $(q1 "SELECT count(*) FROM loyalty.verify()") == 0 ]] || die "generated data does not verify"

# the reference: the same bookkeeping in set-based statements, one transaction
t0=$(now)
q <<'SQL'
BEGIN;
CREATE TEMP TABLE exp ON COMMIT DROP AS
SELECT member_id, lot_id, remaining FROM bare.lots WHERE is_open AND expires_at <= now();
CREATE TEMP TABLE ent ON COMMIT DROP AS
SELECT member_id, nextval(pg_get_serial_sequence('bare.ledger', 'entry_id')) AS entry_id, pts
FROM (SELECT member_id, sum(remaining::bigint)::bigint AS pts FROM exp GROUP BY member_id ORDER BY member_id) s;
INSERT INTO bare.ledger (member_id, entry_id, program_id, kind, points, reason, actor, occurred_at)
OVERRIDING SYSTEM VALUE
SELECT member_id, entry_id, 1, 'expire', (-pts)::loyalty.points, 'points expired', session_user, now() FROM ent;
INSERT INTO bare.allocations (member_id, entry_id, lot_id, points, returned)
SELECT e.member_id, n.entry_id, e.lot_id, e.remaining, '0' FROM exp e JOIN ent n USING (member_id);
UPDATE bare.lots l SET remaining = '0' FROM exp e WHERE l.member_id = e.member_id AND l.lot_id = e.lot_id;
UPDATE bare.accounts a SET balance = (a.balance::bigint - n.pts)::loyalty.points,
       lifetime_expired = (a.lifetime_expired::bigint + n.pts)::loyalty.points, updated_at = now(),
       next_expiry_at = (SELECT min(l.expires_at) FROM bare.lots l WHERE l.member_id = a.member_id AND l.is_open)
FROM ent n WHERE a.member_id = n.member_id;
COMMIT;
SQL
T_SQL=$(secs "$t0" "$(now)")
echo "  plain SQL                  ${T_SQL}s"
q -c "CHECKPOINT"

t0=$(now)
q -c "CALL loyalty.expire_points(now(), $BENCH_BATCH)" 2>&1 | tail -1
T_EXP=$(secs "$t0" "$(now)")
echo "  loyalty.expire_points      ${T_EXP}s"

# both did the same
diff=$(q1 "SELECT count(*) FROM loyalty.accounts a JOIN bare.accounts b USING (member_id)
           WHERE (a.balance, a.lifetime_expired, a.next_expiry_at) IS DISTINCT FROM (b.balance, b.lifetime_expired, b.next_expiry_at)")
e1=$(q1 "SELECT count(*) || ' entries, ' || coalesce(-sum(points::bigint), 0) || ' points' FROM loyalty.ledger WHERE kind = 'expire'")
e2=$(q1 "SELECT count(*) || ' entries, ' || coalesce(-sum(points::bigint), 0) || ' points' FROM bare.ledger WHERE kind = 'expire'")
a1=$(q1 "SELECT count(*) FROM loyalty.allocations")
a2=$(q1 "SELECT count(*) FROM bare.allocations")
echo "expired: loyalty $e1, $a1 allocations; plain SQL $e2, $a2 allocations; accounts that differ: $diff"
[[ $diff == 0 && $e1 == "$e2" && $a1 == "$a2" ]] || die "expire_points and the plain SQL disagree"
[[ $(q1 "SELECT count(*) FROM loyalty.verify()") == 0 ]] || die "verify() finds violations after expiry"
awk -v r="$T_EXP" -v s="$T_SQL" -v n="$nexp" 'BEGIN {
    printf "ratio expire_points/plain SQL (time): %.2f\n", r / s;
    printf "expired lots per second: expire_points %.0f, plain SQL %.0f\n", n / r, n / s }'
