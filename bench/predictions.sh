#!/bin/bash
# bench/predictions.sh: one member's prediction (churn_risk for one member)
# and the whole member_predictions view for a program of BENCH_MEMBERS
# members, against the reference the views were built on before: the
# program's whole purchase summary (purchase_summary) filtered to the
# member.  See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/predictions.sh
#   BENCH_MEMBERS=100000 BENCH_ROWS=1000000 pg_virtualenv -t -v 15 bench/predictions.sh   # quicker
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-1000000}
BENCH_ROWS=${BENCH_ROWS:-5000000}
BENCH_LOOKUPS=${BENCH_LOOKUPS:-20}          # members looked up one by one
BENCH_DB=${BENCH_DB:-loyalty_bench_predictions}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=predictions.sh
source "$HERE/lib.sh"
bench_setup BENCH_MEMBERS BENCH_ROWS BENCH_LOOKUPS
((BENCH_ROWS >= BENCH_MEMBERS)) || die "BENCH_ROWS must be at least BENCH_MEMBERS (every member buys once)"

echo "== loyalty predictions benchmark: $BENCH_MEMBERS members, $BENCH_ROWS ledger rows =="
q1 "SELECT version()"
q -c "CREATE EXTENSION loyalty"
t0=$(now)
generate "$BENCH_MEMBERS" "$BENCH_ROWS" 730
echo "  generated in $(secs "$t0" "$(now)") s"
# the published CDNOW estimates (generated purchases are too regular to identify a model)
q -c "INSERT INTO loyalty.models (program_id, calibration_end, time_unit, bgnbd, gamma_gamma)
      VALUES (1, current_date, 'week', ROW(0.243, 4.414, 0.793, 2.426, NULL, NULL), ROW(6.25, 3.74, 15.44, NULL, NULL))"
q -c "ANALYZE"

# members spread over the program, the same for both
members=$(q1 "SELECT string_agg(member_id::text, ' ') FROM (SELECT member_id FROM loyalty.members
              ORDER BY member_id LIMIT $BENCH_LOOKUPS OFFSET 0) m")
read -r lo hi < <(q1 "SELECT min(member_id), max(member_id) FROM loyalty.members" | tr '|' ' ')
members=$(awk -v lo="$lo" -v hi="$hi" -v n="$BENCH_LOOKUPS" 'BEGIN { for (i = 0; i < n; i++) printf "%d ", lo + int((hi - lo) * (i + 0.5) / n) }')

one() {  # $1: SQL with :m; prints the mean ms over the members
    local total=0 t
    for m in $members; do
        t=$(psql -X -q -A -t -d "$BENCH_DB" -v m="$m" <<SQL | awk '/^Time:/ { print $2 }'
\timing on
$1
SQL
)
        total=$(awk -v a="$total" -v b="$t" 'BEGIN { print a + b }')
    done
    awk -v t="$total" -v n="$BENCH_LOOKUPS" 'BEGIN { printf "%.3f", t / n }'
}
OUT="-o /dev/null"
ref=$(one "SELECT s.* FROM loyalty.models m, LATERAL loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit) s WHERE s.member_id = :m;")
new=$(one "SELECT * FROM loyalty.churn_risk WHERE member_id = :m;")
echo "  one member: churn_risk ${new} ms; the program's purchase summary filtered to the member ${ref} ms (mean of $BENCH_LOOKUPS members)"
awk -v a="$new" -v b="$ref" 'BEGIN { printf "ratio one member churn_risk/purchase summary filtered (time): %.4f\n", a / b }'

t0=$(now)
n=$(q1 "SELECT count(clv_year) FROM loyalty.member_predictions")
t1=$(now)
q1 "SELECT count(*) FROM loyalty.purchase_summary(1, current_date, 'week')" >/dev/null
t2=$(now)
echo "  whole view: member_predictions $(secs "$t0" "$t1") s ($n members); purchase_summary alone $(secs "$t1" "$t2") s"
awk -v a="$(secs "$t0" "$t1")" -v b="$(secs "$t1" "$t2")" 'BEGIN { printf "ratio member_predictions/purchase_summary (time): %.2f\n", a / b }'
