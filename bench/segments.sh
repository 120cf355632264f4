#!/bin/bash
# bench/segments.sh: CALL loyalty.refresh_segments() for one program of
# BENCH_MEMBERS members against one plain SQL UPDATE storing the same
# segments and bands (member_rfm, churn_risk) on the same accounts.  Both run
# twice: once when every member's values change (the first refresh), once
# when none do (a nightly refresh of a quiet program).  The reference runs in
# a transaction that is rolled back, and the table is vacuumed after each run,
# so both start from the same rows.  See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/segments.sh
#   BENCH_MEMBERS=100000 BENCH_ROWS=500000 pg_virtualenv -t -v 15 bench/segments.sh   # quicker
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-1000000}
BENCH_ROWS=${BENCH_ROWS:-5000000}          # ledger rows (earns and redemptions)
BENCH_BATCH=${BENCH_BATCH:-5000}           # refresh_segments batch_size
BENCH_DB=${BENCH_DB:-loyalty_bench_segments}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=segments.sh
source "$HERE/lib.sh"
bench_setup BENCH_MEMBERS BENCH_ROWS BENCH_BATCH
((BENCH_ROWS >= BENCH_MEMBERS)) || die "BENCH_ROWS must be at least BENCH_MEMBERS (every member buys once)"

echo "== loyalty refresh_segments benchmark: $BENCH_MEMBERS members, $BENCH_ROWS ledger rows, batches of $BENCH_BATCH =="
q1 "SELECT version()"
q -c "CREATE EXTENSION loyalty"
t0=$(now)
generate "$BENCH_MEMBERS" "$BENCH_ROWS" 730
echo "  generated in $(secs "$t0" "$(now)") s"
# a model, so members have a churn-risk band: the published CDNOW estimates
# (generated purchases are too regular to identify one)
q -c "INSERT INTO loyalty.models (program_id, calibration_end, time_unit, bgnbd)
      VALUES (1, current_date, 'week', ROW(0.243, 4.414, 0.793, 2.426, NULL, NULL))"

# the same segments, bands and days, as one statement
REFERENCE="WITH x AS MATERIALIZED (
    SELECT a.member_id, r.segment, c.risk_band
    FROM loyalty.accounts a
    LEFT JOIN loyalty.member_rfm r ON r.member_id = a.member_id AND r.program_id = 1
    LEFT JOIN loyalty.churn_risk c ON c.member_id = a.member_id AND c.program_id = 1 AND a.status <> 'closed'
    WHERE a.program_id = 1 AND a.status <> 'pool'
      AND (a.segment IS DISTINCT FROM r.segment OR a.risk_band IS DISTINCT FROM c.risk_band))
UPDATE loyalty.accounts a
SET segment = x.segment, risk_band = x.risk_band,
    segment_since = CASE WHEN x.segment IS NULL THEN NULL
                         WHEN a.segment IS NOT DISTINCT FROM x.segment THEN a.segment_since ELSE current_date END
FROM x WHERE a.member_id = x.member_id"

# ms STATEMENT...: the total time of the statements, in seconds
timed() {
    q -c '\timing on' "$@" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' |
        awk '{ s += $1 } END { printf "%.2f", s / 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

run() {          # run LABEL: reference (rolled back), then the procedure
    local ref ours changed
    ref=$(timed -c "BEGIN" -c "$REFERENCE" -c "ROLLBACK")
    q -c "VACUUM loyalty.accounts"
    ours=$(timed -c "SET client_min_messages = warning" -c "CALL loyalty.refresh_segments(1, $BENCH_BATCH)")
    q -c "VACUUM loyalty.accounts"
    changed=$(q1 "SELECT count(*) FROM loyalty.accounts WHERE segment_since IS NOT NULL")
    printf '  %-34s plain SQL %8.2f s   refresh_segments %8.2f s   ratio %s   (%s members with a segment)\n' \
        "$1" "$ref" "$ours" "$(ratio "$ours" "$ref")" "$changed"
}
run "first refresh (every member changes)"
run "second refresh (nothing changes)"
q1 "SELECT format('  stored: %s segments, %s bands; verify(): %s violations',
                  count(segment), count(risk_band), (SELECT count(*) FROM loyalty.verify()))
    FROM loyalty.accounts"
