#!/bin/bash
# bench/scale.sh: how the loyalty write path, reads and analytics grow with
# the data.  Generates a program of SCALE_MEMBERS members and
# SCALE_LEDGER_ROWS ledger rows in the database (set-based SQL, consistent
# with loyalty.verify()), measures earn/redeem/balance_at/history latency
# (pgbench, p50/p99 from the per-transaction log) and the main views' times,
# first at a tenth of the size, then at full size, and prints full/tenth ratios.
# See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/scale.sh
#   SCALE_MEMBERS=100000 SCALE_LEDGER_ROWS=2000000 pg_virtualenv -t -v 15 bench/scale.sh   # quicker
#
# Runs against the server given by the standard PG* variables; creates its own
# database and drops it at the end.  The tenth runs first, in the same database
# (the extension is dropped and created again between the two sizes).
set -euo pipefail

SCALE_MEMBERS=${SCALE_MEMBERS:-1000000}          # members at full size
SCALE_LEDGER_ROWS=${SCALE_LEDGER_ROWS:-20000000} # ledger rows at full size
SCALE_DAYS=${SCALE_DAYS:-730}                    # history spread over this many days
SCALE_SECONDS=${SCALE_SECONDS:-20}               # each pgbench write run (earn, redeem)
SCALE_READ_SECONDS=${SCALE_READ_SECONDS:-10}     # each pgbench read run (balance_at, history)
SCALE_CLIENTS=${SCALE_CLIENTS:-2}                # pgbench -c and -j
SCALE_VERIFY=${SCALE_VERIFY:-1}                  # 0: skip loyalty.verify() at full size
SCALE_DAY_ROWS=${SCALE_DAY_ROWS:-100000}         # a day's new ledger rows for the rollups' refresh
BENCH_DB=${BENCH_DB:-loyalty_bench_scale}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=scale.sh
source "$HERE/lib.sh"

[[ $SCALE_VERIFY == 0 || $SCALE_VERIFY == 1 ]] || die "SCALE_VERIFY must be 0 or 1, got '$SCALE_VERIFY'"
command -v pgbench >/dev/null || die "pgbench not found"
# (checked again by bench_setup, but the arithmetic below needs them first)
for v in SCALE_MEMBERS SCALE_LEDGER_ROWS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
TENTH_MEMBERS=$((SCALE_MEMBERS / 10))
TENTH_ROWS=$((SCALE_LEDGER_ROWS / 10))
((TENTH_MEMBERS >= 10)) || die "SCALE_MEMBERS must be at least 100, got $SCALE_MEMBERS"
((TENTH_ROWS >= TENTH_MEMBERS)) || die "SCALE_LEDGER_ROWS must be at least SCALE_MEMBERS (every member buys once)"
bench_setup SCALE_MEMBERS SCALE_LEDGER_ROWS SCALE_DAYS SCALE_SECONDS SCALE_READ_SECONDS SCALE_CLIENTS SCALE_DAY_ROWS

echo "== loyalty scale benchmark: $SCALE_MEMBERS members / $SCALE_LEDGER_ROWS ledger rows against a tenth =="
q1 "SELECT version()"
q1 "SELECT format('server: fsync=%s synchronous_commit=%s shared_buffers=%s work_mem=%s max_wal_size=%s',
                  current_setting('fsync'), current_setting('synchronous_commit'), current_setting('shared_buffers'),
                  current_setting('work_mem'), current_setting('max_wal_size'))"
echo "pgbench: -c $SCALE_CLIENTS -j $SCALE_CLIENTS -M prepared, ${SCALE_SECONDS}s per write script," \
     "${SCALE_READ_SECONDS}s per read script, members drawn uniformly"

# --- generation -------------------------------------------------------------------

# --- measurements -------------------------------------------------------------------
declare -A VAL      # VAL[metric,size]
METRICS=()          # metric names in print order
UNITS=()

record() {          # record METRIC UNIT SIZE VALUE
    local i found=0
    for i in "${METRICS[@]}"; do [[ $i == "$1" ]] && found=1; done
    if [[ $found == 0 ]]; then METRICS+=("$1"); UNITS+=("$2"); fi
    VAL[$1,$3]=$4
}

# bench SIZE NAME SECONDS SCRIPT: a pgbench run of one script on random members;
# records NAME p50 and p99 (ms, from the per-transaction log) and tps
bench() {
    local size=$1 name=$2 secs=$3 script=$4 out="$TMP/$2-$1.out" rc=0
    q -c "CHECKPOINT"
    rm -f "$TMP/log-$name-$size".*
    pgbench -n -c "$SCALE_CLIENTS" -j "$SCALE_CLIENTS" -M prepared -T "$secs" -D base=0 -D members="$MEMBERS" \
        -f "$script" --log --log-prefix="$TMP/log-$name-$size" "$BENCH_DB" >"$out" 2>&1 || rc=$?
    local tps failed aborted
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    aborted=$(grep -c 'aborted in command\|Run was aborted' "$out" || true)
    if [[ $rc != 0 || -z $tps || $aborted != 0 || ${failed:-0} != 0 ]]; then
        cat "$out" >&2
        die "pgbench run $name ($size) failed (exit $rc)"
    fi
    # per-transaction log: client transaction latency_us script epoch us
    read -r n p50 p99 < <(cat "$TMP/log-$name-$size".* | awk '{ print $3 }' | sort -n |
        awk '{ v[NR] = $1 } END { i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999);
                                  printf "%d %.3f %.3f\n", NR, v[i50] / 1000, v[i99] / 1000 }')
    rm -f "$TMP/log-$name-$size".*
    record "$name p50" ms "$size" "$p50"
    record "$name p99" ms "$size" "$p99"
    tps=$(printf '%.1f' "$tps")
    record "$name tps" tps "$size" "$tps"
    printf '  %-12s %8d transactions  p50 %8.3f ms  p99 %8.3f ms  tps %9.1f\n' "$name" "$n" "$p50" "$p99" "$tps"
}

# timed SIZE NAME SQL: one run of a statement; records its time in seconds
timed() {
    local size=$1 name=$2 ms
    ms=$(q -c '\timing on' -c "$3" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
    [[ -n $ms ]] || die "no time for $name"
    ms=$(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')
    record "$name" s "$size" "$ms"
    printf '  %-22s %9.3f s\n' "$name" "$ms"
}

# a view's rows, every column computed (the whole-row reference), none sent
view() { timed "$1" "$2" "SELECT count(v) FROM (SELECT * FROM loyalty.$2 OFFSET 0) v"; }
# the same view's former definition on the raw tables (bench/raw_views.sql)
raw() { timed "$1" "$2 (raw)" "SELECT count(v) FROM (SELECT * FROM public.raw_$2 OFFSET 0) v"; }

cat >"$TMP/balance_at.sql" <<'SQL'
\set m random(1, :members)
SELECT loyalty.balance_at(:m, now() - interval '1 year');
SQL
cat >"$TMP/history.sql" <<'SQL'
\set m random(1, :members)
SELECT * FROM loyalty.history(:m);
SQL

# measure SIZE MEMBERS ROWS
measure() {
    local size=$1 t0 rows
    MEMBERS=$2
    echo
    echo "== $size: $2 members, $3 ledger rows =="
    q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS loyalty CASCADE" -c "CREATE EXTENSION loyalty"
    t0=$(now)
    generate "$2" "$3" "$SCALE_DAYS"
    record "generate + vacuum" s "$size" "$(secs "$t0" "$(now)")"
    rows=$(q1 "SELECT count(*) FROM loyalty.ledger")
    [[ $rows == "$3" ]] || die "generated $rows ledger rows, expected $3"
    q1 "SELECT format('  generated in %ss: %s members, ledger %s (%s earn, %s redeem), %s lots (%s open), %s allocations; database %s',
                      '${VAL[generate + vacuum,$size]}',
                      (SELECT count(*) FROM loyalty.members), (SELECT count(*) FROM loyalty.ledger),
                      (SELECT count(*) FROM loyalty.ledger WHERE kind = 'earn'), (SELECT count(*) FROM loyalty.ledger WHERE kind = 'redeem'),
                      (SELECT count(*) FROM loyalty.lots), (SELECT count(*) FROM loyalty.lots WHERE remaining::bigint > 0),
                      (SELECT count(*) FROM loyalty.allocations), pg_size_pretty(pg_database_size(current_database())))"

    # the BI views' former definitions on the raw tables, timed beside the views on the rollups
    q -o /dev/null -f "$HERE/raw_views.sql"
    echo " rollups:"
    timed "$size" "rollups: first build" "CALL loyalty.refresh_rollups()"

    echo " pgbench (random members):"
    # earn with the program's tier policy (each earn checks for an upgrade),
    # then without it (as in ledger.sh: the program has no tiers)
    bench "$size" earn+tier "$SCALE_SECONDS" "$HERE/loyalty_earn.sql"
    q -c "UPDATE loyalty.programs SET tier_metric = NULL"
    bench "$size" earn "$SCALE_SECONDS" "$HERE/loyalty_earn.sql"
    q -c "UPDATE loyalty.programs SET tier_metric = 'spend'"
    bench "$size" redeem "$SCALE_SECONDS" "$HERE/loyalty_redeem.sql"
    bench "$size" balance_at "$SCALE_READ_SECONDS" "$TMP/balance_at.sql"
    bench "$size" history "$SCALE_READ_SECONDS" "$TMP/history.sql"

    echo " rollups: refreshes"
    q1 "SELECT format('  %s ledger rows and %s members since the first build (pgbench)',
                      (SELECT count(*) FROM loyalty.ledger WHERE entry_id > (SELECT last_entry FROM loyalty.rollup_state)),
                      (SELECT count(*) FROM loyalty.members WHERE member_id > (SELECT last_member FROM loyalty.rollup_state)))"
    timed "$size" "rollups: refresh pgbench" "CALL loyalty.refresh_rollups()"
    # a day's purchases (earn_batch, channels in turn) and a twentieth as many redemptions
    q -o /dev/null -c "SELECT loyalty.earn_batch(array_agg(m ORDER BY g), array_agg((5 + g % 95)::numeric ORDER BY g),
                                                 array_agg('day-' || g ORDER BY g), NULL,
                                                 array_agg((ARRAY['pos', 'web', 'app'])[1 + g % 3] ORDER BY g))
                       FROM (SELECT g, 1 + (hashint8(g) & 2147483647) % $MEMBERS AS m
                             FROM generate_series(1, $SCALE_DAY_ROWS * 20 / 21) g) x" \
                    -c "SELECT count(loyalty.redeem(a.member_id, 1)) FROM (SELECT member_id FROM loyalty.accounts
                        WHERE balance::bigint > 10 ORDER BY hashint8(member_id) LIMIT $SCALE_DAY_ROWS / 21) a"
    q1 "SELECT format('  a day: %s new ledger rows', (SELECT count(*) FROM loyalty.ledger
                      WHERE entry_id > (SELECT last_entry FROM loyalty.rollup_state)))"
    timed "$size" "rollups: refresh a day" "CALL loyalty.refresh_rollups()"

    echo " views and analytics (one run each; raw: the former definition in the same run):"
    view "$size" kpi_summary
    raw "$size" kpi_summary
    view "$size" kpi_monthly
    raw "$size" kpi_monthly
    view "$size" tier_distribution
    raw "$size" tier_distribution
    view "$size" member_mix
    raw "$size" member_mix
    view "$size" channel_distribution
    raw "$size" channel_distribution
    view "$size" member_rfm
    raw "$size" member_rfm
    view "$size" segment_summary
    view "$size" cohort_retention
    raw "$size" cohort_retention
    # not fit_models / churn_risk: the BG/NBD fit does not identify a model on
    # this synthetic history (evenly spaced purchases), after minutes of search
    if [[ $size == tenth || $SCALE_VERIFY == 1 ]]; then
        timed "$size" "verify()" "SELECT count(*) FROM loyalty.verify()"
        local broken
        broken=$(q1 "SELECT count(*) FROM loyalty.verify()")
        echo "  loyalty.verify() rows: $broken"
        if [[ $broken != 0 ]]; then
            q -c "SELECT * FROM loyalty.verify() LIMIT 20" >&2 || true
            die "the $size data breaks the ledger invariants"
        fi
    fi
}

measure tenth "$TENTH_MEMBERS" "$TENTH_ROWS"
measure full "$SCALE_MEMBERS" "$SCALE_LEDGER_ROWS"

# --- results ------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
echo
echo "== full ($SCALE_MEMBERS members, $SCALE_LEDGER_ROWS rows) against tenth ($TENTH_MEMBERS, $TENTH_ROWS) =="
printf '%-26s %-4s %12s %12s %11s\n' measurement unit tenth full full/tenth
for i in "${!METRICS[@]}"; do
    m=${METRICS[$i]}
    [[ -n ${VAL[$m,full]:-} ]] || continue
    printf '%-26s %-4s %12s %12s %11s\n' "$m" "${UNITS[$i]}" "${VAL[$m,tenth]}" "${VAL[$m,full]}" \
        "$(ratio "${VAL[$m,full]}" "${VAL[$m,tenth]}")"
done
echo
for m in "${METRICS[@]}"; do
    [[ -n ${VAL[$m,full]:-} ]] || continue
    echo "ratio $m full/tenth: $(ratio "${VAL[$m,full]}" "${VAL[$m,tenth]}")"
done
