#!/bin/bash
# bench/analytics.sh: the analytics against their plain-SQL references, in
# one session, printing ratios (time of ours / time of the reference):
#   1. loyalty.rfm() over BENCH_ORDERS orders of a user table, against the
#      scan + GROUP BY floor (count and sum only) and the canonical NTILE SQL;
#   2. the member RFM view over BENCH_MEMBERS members whose accounts carry
#      those orders' statistics, against the canonical SQL over the orders;
#   3. the BG/NBD fit on CDNOW and on BENCH_FIT_MEMBERS synthetic members,
#      against a plain scan of the same member summaries.
#
#   pg_virtualenv -t -v 15 bench/analytics.sh
#   BENCH_ORDERS=500000 BENCH_MEMBERS=50000 BENCH_FIT_MEMBERS=100000 pg_virtualenv -t -v 15 bench/analytics.sh
set -euo pipefail
BENCH_ORDERS=${BENCH_ORDERS:-5000000}
BENCH_MEMBERS=${BENCH_MEMBERS:-500000}
BENCH_FIT_MEMBERS=${BENCH_FIT_MEMBERS:-1000000}
BENCH_DB=${BENCH_DB:-loyalty_bench_analytics}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CDNOW=${LOYALTY_DATA:-$HERE/data}/cdnow   # shipped in data/; read by psql (\copy)

BENCH_NAME=analytics.sh
source "$HERE/bench/lib.sh"
bench_setup BENCH_ORDERS BENCH_MEMBERS BENCH_FIT_MEMBERS
# seconds taken by one statement (the best of 3 runs, so caching is even)
timed() {
    local best=
    for _ in 1 2 3; do
        local t
        t=$(q -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
        best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
    done
    awk -v ms="$best" 'BEGIN { printf "%.3f", ms / 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== loyalty analytics benchmark: $BENCH_ORDERS orders, $BENCH_MEMBERS members, fit on $BENCH_FIT_MEMBERS members =="
q -A -t -c "SELECT version()"
q -o /dev/null -v orders="$BENCH_ORDERS" -v members="$BENCH_MEMBERS" -v fit="$BENCH_FIT_MEMBERS" <<'SQL'
CREATE EXTENSION loyalty;
CREATE TABLE orders (member bigint, bought_at timestamptz, amount numeric(12, 2));
INSERT INTO orders
SELECT 1 + (g * 7919) % :members, timestamptz '2025-01-01' + make_interval(mins => ((g * 104729) % 600000)::int),
       ((g * 31) % 20000) / 100.0 + 1
FROM generate_series(1::bigint, :orders) g;
-- the same purchases as loyalty members with their account statistics
SELECT loyalty.create_program('bench') AS p \gset
INSERT INTO loyalty.members (member_id, program_id, joined_at) OVERRIDING SYSTEM VALUE
SELECT g, :p, '2025-01-01' FROM generate_series(1, :members) g;
INSERT INTO loyalty.accounts (member_id, program_id, first_purchase_at, last_purchase_at, purchase_count, purchase_days, purchase_amount)
SELECT member, :p, min(bought_at), max(bought_at), count(*), count(DISTINCT bought_at::date), sum(amount)
FROM orders GROUP BY member;
VACUUM ANALYZE;
SQL

# 1. the aggregate on a user table
T_FLOOR=$(timed "SELECT count(*) FROM (SELECT member, count(*), sum(amount), max(bought_at) FROM orders GROUP BY member) x")
T_AGG=$(timed "SELECT count(*) FROM (SELECT member, loyalty.rfm(bought_at, amount) FROM orders GROUP BY member) x")
T_NTILE=$(timed "SELECT count(*) FROM (SELECT member, ntile(5) OVER (ORDER BY max(bought_at)), ntile(5) OVER (ORDER BY count(*)), ntile(5) OVER (ORDER BY sum(amount)) FROM orders GROUP BY member) x")
echo "  scan + GROUP BY (count, sum, max)     ${T_FLOOR}s"
echo "  loyalty.rfm() GROUP BY member         ${T_AGG}s"
echo "  canonical SQL (GROUP BY + 3 x NTILE)  ${T_NTILE}s"
# 2. the member view (no purchase rescanned) against the canonical SQL
T_VIEW=$(timed "SELECT count(*) FROM (SELECT * FROM loyalty.member_rfm OFFSET 0) x WHERE segment IS NOT NULL")
echo "  loyalty.member_rfm (all columns)      ${T_VIEW}s"
# 3. the fits
if [[ -r $CDNOW/cdnow_customers_summary_with_transactions.csv ]]; then
    q -c "CREATE TABLE cdnow (id int, x float8, t_x float8, \"T\" float8, zbar float8)" \
      -c "\\copy cdnow FROM '$CDNOW/cdnow_customers_summary_with_transactions.csv' WITH (FORMAT csv, HEADER)"
    T_CDNOW=$(timed "SELECT loyalty.bgnbd_fit(x, t_x, \"T\") FROM cdnow")
    T_CDNOW_SCAN=$(timed "SELECT sum(x), sum(t_x), sum(\"T\") FROM cdnow")
    echo "  BG/NBD fit on CDNOW (2357 customers)  ${T_CDNOW}s (plain scan ${T_CDNOW_SCAN}s)"
fi
# Synthetic members: the CDNOW summaries resampled (so the fit must give the
# CDNOW estimates back), each joined a random 0..6 days later (T shorter;
# t_x unchanged), which spreads them over 7 times more distinct summaries.
[[ -n ${T_CDNOW:-} ]] || die "the synthetic fit resamples CDNOW: $CDNOW not found"
q -o /dev/null -v fit="$BENCH_FIT_MEMBERS" <<'SQL'
CREATE TABLE summaries AS
SELECT c.x, c.t_x, greatest(c."T" - d / 7.0, c.t_x) AS "T"
FROM (SELECT g, 1 + floor(random() * 2357)::int AS k, floor(random() * 7) AS d FROM generate_series(1, :fit) g) r
JOIN (SELECT row_number() OVER (ORDER BY id) AS k, * FROM cdnow) c USING (k);
VACUUM ANALYZE summaries;
SQL
T_FIT=$(timed "SELECT loyalty.bgnbd_fit(x, t_x, \"T\") FROM summaries")
T_SCAN=$(timed "SELECT sum(x), sum(t_x), sum(\"T\") FROM summaries")
echo "  BG/NBD fit on $BENCH_FIT_MEMBERS members       ${T_FIT}s"
echo "  plain scan of the same summaries      ${T_SCAN}s"
q -A -t -c "SELECT 'fitted: ' || loyalty.bgnbd_fit(x, t_x, \"T\")::text FROM summaries"

echo "ratio rfm aggregate/GROUP BY floor: $(ratio "$T_AGG" "$T_FLOOR")"
echo "ratio rfm aggregate/canonical NTILE SQL: $(ratio "$T_AGG" "$T_NTILE")"
echo "ratio member_rfm view/canonical NTILE SQL: $(ratio "$T_VIEW" "$T_NTILE")"
[[ -n ${T_CDNOW:-} ]] && echo "ratio BG/NBD fit CDNOW/plain scan: $(ratio "$T_CDNOW" "$T_CDNOW_SCAN")"
echo "ratio BG/NBD fit $BENCH_FIT_MEMBERS/plain scan: $(ratio "$T_FIT" "$T_SCAN")"
