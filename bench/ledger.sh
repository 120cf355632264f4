#!/bin/bash
# bench/ledger.sh: pgbench benchmark of the loyalty write path (earn/redeem mix)
# against pgbench's TPC-B, SELECT 1 and two hand-written PL/pgSQL ledgers (a
# minimal one, and one keeping lots as loyalty does), each with
# synchronous_commit on and off.  When bench/cfloor is installed, the
# interleaved runs also time the minimal ledger's own work done from C (what
# C alone buys).  See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/ledger.sh
#
# Runs against the server given by the standard PG* variables; creates its own
# database and drops it at the end (BENCH_KEEP=1 keeps it).
set -euo pipefail

BENCH_SECONDS=${BENCH_SECONDS:-20}      # duration of each pgbench run
BENCH_ROUNDS=${BENCH_ROUNDS:-3}         # loyalty/PL/pgSQL pairs per sync mode (median reported)
BENCH_CLIENTS=${BENCH_CLIENTS:-2}       # pgbench -c and -j
BENCH_MEMBERS=${BENCH_MEMBERS:-100000}  # members in each ledger
BENCH_SCALE=${BENCH_SCALE:-10}          # pgbench -i scale for TPC-B
BENCH_DB=${BENCH_DB:-loyalty_bench}
BENCH_KEEP=${BENCH_KEEP:-0}
# earn/redeem mix as pgbench weights
BENCH_EARN_WEIGHT=${BENCH_EARN_WEIGHT:-8}
BENCH_REDEEM_WEIGHT=${BENCH_REDEEM_WEIGHT:-2}
# initial purchase per member: 1 point per unit, so every member starts with
# this many points and 1..10-point redemptions never hit LY001
SEED_AMOUNT=1000000

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "ledger.sh: $*" >&2; exit 1; }

for v in BENCH_SECONDS BENCH_ROUNDS BENCH_CLIENTS BENCH_MEMBERS BENCH_SCALE BENCH_EARN_WEIGHT BENCH_REDEEM_WEIGHT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $BENCH_DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "BENCH_DB must be a plain lower-case identifier, got '$BENCH_DB'"
command -v psql >/dev/null || die "psql not found"
command -v pgbench >/dev/null || die "pgbench not found"

# maintenance database to create/drop the benchmark database from
ADMIN_DB=${PGDATABASE:-postgres}
[[ $ADMIN_DB == "$BENCH_DB" ]] && ADMIN_DB=postgres

TMP=$(mktemp -d -t loyalty-bench.XXXXXX)
CREATED=0

cleanup() {
    local rc=$?
    set +e
    if [[ $CREATED == 1 ]]; then
        if [[ $BENCH_KEEP == 1 ]]; then
            echo "kept database $BENCH_DB (BENCH_KEEP=1)"
        else
            psql -X -q -d "$ADMIN_DB" -v ON_ERROR_STOP=1 -v db="$BENCH_DB" >/dev/null 2>&1 <<'SQL'
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
SQL
            if [[ $? == 0 ]]; then echo "dropped database $BENCH_DB"; else echo "could not drop database $BENCH_DB" >&2; fi
        fi
    fi
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# psql against the benchmark database, stopping at the first error
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$BENCH_DB" "$@"; }
# one value
q1() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$BENCH_DB" -c "$1"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- database -----------------------------------------------------------------
exists=$(psql -X -A -t -v ON_ERROR_STOP=1 -d "$ADMIN_DB" -v db="$BENCH_DB" <<'SQL'
SELECT count(*) FROM pg_database WHERE datname = :'db';
SQL
)
[[ $exists == 0 ]] || die "database $BENCH_DB already exists; drop it or set BENCH_DB (this script only drops what it created)"
avail=$(psql -X -A -t -v ON_ERROR_STOP=1 -d "$ADMIN_DB" -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'loyalty'")
[[ $avail == 1 ]] || die "extension loyalty is not installed on this server (make && make install)"

psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_DB" -v db="$BENCH_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
CREATED=1

echo "== loyalty ledger benchmark =="
q1 "SELECT version()"
q -A -t <<'SQL'
SELECT format('server: fsync=%s synchronous_commit=%s shared_buffers=%s max_wal_size=%s wal_level=%s',
              current_setting('fsync'), current_setting('synchronous_commit'),
              current_setting('shared_buffers'), current_setting('max_wal_size'),
              current_setting('wal_level'));
SQL
echo "runs: ${BENCH_SECONDS}s each, $BENCH_ROUNDS rounds of the three ledgers per sync mode, rotated (medians), -c $BENCH_CLIENTS -j $BENCH_CLIENTS -M prepared;" \
     "$BENCH_MEMBERS members; mix earn@$BENCH_EARN_WEIGHT redeem@$BENCH_REDEEM_WEIGHT; TPC-B scale $BENCH_SCALE"
if [[ $(q1 "SELECT current_setting('fsync')") == off ]]; then
    echo "WARNING: fsync=off on this server (pg_virtualenv's default): a commit never waits for the disk," \
         "so synchronous_commit on vs off is no disk-flush comparison (off can even be slower: async commits" \
         "keep waking the WAL writer). Use pg_virtualenv -o fsync=on for a meaningful comparison."
fi

# --- setup ----------------------------------------------------------------------
t0=$(now)
q -c "CREATE EXTENSION loyalty"
q -f "$HERE/plpgsql_ledger.sql"
q -f "$HERE/plpgsql_lots_ledger.sql"
# the C reference, if its library is installed (make -C bench/cfloor install)
CFLOOR=0
if q -f "$HERE/cfloor/cfloor.sql" 2>"$TMP/cfloor.err"; then
    CFLOOR=1
else
    echo "note: no C reference (bench/cfloor not installed: $(head -1 "$TMP/cfloor.err"));" \
         "make -C bench/cfloor && sudo make -C bench/cfloor install adds it to the interleaved runs"
fi

# loyalty: one program, members enrolled set-based, one purchase each
q -v members="$BENCH_MEMBERS" -v seed="$SEED_AMOUNT" <<'SQL'
SELECT loyalty.create_program('bench', expiry_period => interval '2 years') AS program \gset
-- no outbox events: the PL/pgSQL ledger writes none (with them, an earn also
-- writes its points.earned row and NOTIFY)
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :program;
SELECT count(loyalty.enroll(:program, 'bench', g::text)) AS enrolled
FROM generate_series(1, :members) g \gset
SELECT count(loyalty.earn(m.member_id, :seed, 'bench', 'seed'))
FROM loyalty.members m WHERE m.program_id = :program \gset
SQL
read -r base nmembers span < <(q1 "SELECT min(member_id) - 1, count(*), max(member_id) - min(member_id) + 1 FROM loyalty.members" | tr '|' ' ')
[[ $nmembers == "$BENCH_MEMBERS" && $span == "$BENCH_MEMBERS" ]] \
    || die "expected $BENCH_MEMBERS consecutive loyalty member ids, got $nmembers over a span of $span"

# PL/pgSQL ledger: the same members, one purchase each through its earn()
q -v members="$BENCH_MEMBERS" -v seed="$SEED_AMOUNT" <<'SQL'
INSERT INTO bench_plpgsql.accounts (member_id) SELECT g FROM generate_series(1, :members) g;
SELECT count(bench_plpgsql.earn(g, :seed)) FROM generate_series(1, :members) g \gset
INSERT INTO bench_lots.accounts (member_id) SELECT g FROM generate_series(1, :members) g;
SELECT count(bench_lots.earn(g, :seed)) FROM generate_series(1, :members) g \gset
SQL

# TPC-B tables, initialised once
pgbench -i -q -s "$BENCH_SCALE" "$BENCH_DB" >"$TMP/init.log" 2>&1 || { cat "$TMP/init.log" >&2; die "pgbench -i failed"; }

# Each ledger's seed was one statement, so every account row was updated
# twice in one transaction: those updates cannot stay on their page (the
# version they replace is not dead yet), and the accounts tables come out of
# the setup half again as large as the same rows updated one call at a time,
# as they are in service (loyalty's accounts: 34 MB instead of 23 MB).
# Rewriting the tables measures the ledgers in that steady state (it moved
# loyalty/plpgsql from 0.86 to 0.93 in the interleaved runs: the wider row
# suffered more).
q -c "VACUUM (FULL, ANALYZE)" -c "CHECKPOINT"
echo "setup: $(elapsed "$t0")s ($BENCH_MEMBERS members in each of the three ledgers seeded, pgbench -i -s $BENCH_SCALE)"

# --- runs -----------------------------------------------------------------------
declare -A TPS LAT WAL
RESULTS=()

# run NAME SYNC pgbench-args...
run() {
    local name=$1 sync=$2 out="$TMP/$1-$2.out" rc=0
    shift 2
    q -c "CHECKPOINT"
    # WAL written during the run, per transaction (the server's other writers,
    # autovacuum and the checkpointer, are counted too; they are small here)
    local lsn0
    lsn0=$(q1 "SELECT pg_current_wal_lsn()")
    PGOPTIONS="${PGOPTIONS:-} -c synchronous_commit=$sync" \
        pgbench -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" -M prepared -T "$BENCH_SECONDS" "$@" "$BENCH_DB" \
        >"$out" 2>&1 || rc=$?
    local tps lat failed aborted ntx
    ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    [[ ${ntx:-0} -gt 0 ]] && WAL[$name,$sync]=$(q1 "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') / $ntx)")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    aborted=$(grep -c 'aborted in command\|Run was aborted' "$out" || true)
    if [[ $rc != 0 || -z $tps || -z $lat || $aborted != 0 || ${failed:-0} != 0 ]]; then
        cat "$out" >&2
        die "pgbench run $name (synchronous_commit=$sync) failed (exit $rc)"
    fi
    TPS[$name,$sync]=$tps
    LAT[$name,$sync]=$lat
    RESULTS+=("$name,$sync")
    printf '  %-8s sync=%-3s tps %10.1f  latency %7.3f ms  WAL %6s bytes/tx\n' "$name" "$sync" "$tps" "$lat" "${WAL[$name,$sync]:-?}"
}

MIX_LOYALTY=(-n -D base="$base" -D members="$BENCH_MEMBERS"
             -f "$HERE/loyalty_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/loyalty_redeem.sql@$BENCH_REDEEM_WEIGHT")
MIX_PLPGSQL=(-n -D members="$BENCH_MEMBERS"
             -f "$HERE/plpgsql_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/plpgsql_redeem.sql@$BENCH_REDEEM_WEIGHT")
MIX_LOTS=(-n -D members="$BENCH_MEMBERS"
          -f "$HERE/lots_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/lots_redeem.sql@$BENCH_REDEEM_WEIGHT")

# interleaved SYNC: the three ledgers' scripts in ONE pgbench run, picked at
# random per transaction by weight, so that every ledger meets the same
# machine at the same moment (this VM's speed drifts by 10-30% from one
# minute to the next, which separate runs take as a difference between the
# ledgers).  pgbench reports each script's average latency; a ledger's figure
# is its mix (earn and redeem latencies weighted like the mix), and the ratio
# is plpgsql's latency over loyalty's: above 1 the extension takes less time.
declare -A ILAT
interleaved() {
    local sync=$1 out="$TMP/interleaved-$1.out" rc=0 ledgers="loyalty loyaltysql plpgsql lots"
    local -a cfloor=()
    if [[ $CFLOOR == 1 ]]; then
        cfloor=(-f "$HERE/cfloor_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/cfloor_redeem.sql@$BENCH_REDEEM_WEIGHT")
        ledgers+=" cfloor"
    fi
    q -c "CHECKPOINT"
    PGOPTIONS="${PGOPTIONS:-} -c synchronous_commit=$sync" \
        pgbench -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" -M prepared -T "$BENCH_SECONDS" -n \
        -D base="$base" -D members="$BENCH_MEMBERS" \
        -f "$HERE/loyalty_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/loyalty_redeem.sql@$BENCH_REDEEM_WEIGHT" \
        -f "$HERE/loyaltysql_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/loyaltysql_redeem.sql@$BENCH_REDEEM_WEIGHT" \
        -f "$HERE/plpgsql_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/plpgsql_redeem.sql@$BENCH_REDEEM_WEIGHT" \
        -f "$HERE/lots_earn.sql@$BENCH_EARN_WEIGHT" -f "$HERE/lots_redeem.sql@$BENCH_REDEEM_WEIGHT" \
        "${cfloor[@]}" "$BENCH_DB" >"$out" 2>&1 || rc=$?
    local failed aborted
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    aborted=$(grep -c 'aborted in command\|Run was aborted' "$out" || true)
    if [[ $rc != 0 || $aborted != 0 || ${failed:-0} != 0 ]]; then
        cat "$out" >&2
        die "interleaved pgbench run (synchronous_commit=$sync) failed (exit $rc)"
    fi
    # "SQL script N: .../loyalty_earn.sql" ... " - latency average = 0.123 ms"
    local script lat
    while read -r script lat; do
        ILAT[$script,$sync]=$lat
    done < <(awk '/^SQL script [0-9]+:/ { n = $NF; sub(/.*\//, "", n); sub(/\.sql$/, "", n) }
                  /^ - latency average = / && n != "" { print n, $5; n = "" }' "$out")
    local w op
    for w in $ledgers; do
        for op in earn redeem; do
            [[ -n ${ILAT[${w}_$op,$sync]:-} ]] || { cat "$out" >&2; die "no latency of ${w}_$op in the interleaved run"; }
        done
    done
    for w in $ledgers; do
        ILAT[$w,$sync]=$(awk -v e="${ILAT[${w}_earn,$sync]}" -v r="${ILAT[${w}_redeem,$sync]}" \
            -v we="$BENCH_EARN_WEIGHT" -v wr="$BENCH_REDEEM_WEIGHT" 'BEGIN { printf "%.4f", (we * e + wr * r) / (we + wr) }')
    done
    printf '  interleaved sync=%-3s latency ms: loyalty %s (earn %s, redeem %s), plpgsql %s (%s, %s), lots %s (%s, %s)\n' "$sync" \
        "${ILAT[loyalty,$sync]}" "${ILAT[loyalty_earn,$sync]}" "${ILAT[loyalty_redeem,$sync]}" \
        "${ILAT[plpgsql,$sync]}" "${ILAT[plpgsql_earn,$sync]}" "${ILAT[plpgsql_redeem,$sync]}" \
        "${ILAT[lots,$sync]}" "${ILAT[lots_earn,$sync]}" "${ILAT[lots_redeem,$sync]}"
    printf '  interleaved sync=%-3s latency ms: loyalty through the SQL store %s (earn %s, redeem %s)\n' "$sync" \
        "${ILAT[loyaltysql,$sync]}" "${ILAT[loyaltysql_earn,$sync]}" "${ILAT[loyaltysql_redeem,$sync]}"
    if [[ $CFLOOR == 1 ]]; then
        printf '  interleaved sync=%-3s latency ms: cfloor %s (earn %s, redeem %s)\n' "$sync" \
            "${ILAT[cfloor,$sync]}" "${ILAT[cfloor_earn,$sync]}" "${ILAT[cfloor_redeem,$sync]}"
    fi
}

t0=$(now)
# median of the numbers given
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A ROUND_RATIOS ROUND_RATIOS_LOTS
for sync in on off; do
    run select1 "$sync" -n -f "$HERE/select1.sql"
    run tpcb "$sync"            # built-in TPC-B-like script; vacuums its tables first
    # The ledgers in rounds, each round in a rotated order (the machine's
    # speed drifts between runs; a round shares the conditions of its
    # moment); the median of each ledger is its figure.
    declare -A T=() L=() W=()
    for r in $(seq 1 "$BENCH_ROUNDS"); do
        case $(( r % 3 )) in
            1) order="loyalty plpgsql lots" ;;
            2) order="plpgsql lots loyalty" ;;
            0) order="lots loyalty plpgsql" ;;
        esac
        for w in $order; do
            case $w in
                loyalty) run loyalty "$sync" "${MIX_LOYALTY[@]}" ;;
                plpgsql) run plpgsql "$sync" "${MIX_PLPGSQL[@]}" ;;
                lots) run lots "$sync" "${MIX_LOTS[@]}" ;;
            esac
            T[$w]+="${TPS[$w,$sync]} "; L[$w]+="${LAT[$w,$sync]} "; W[$w]+="${WAL[$w,$sync]:-0} "
        done
        ROUND_RATIOS[$sync]+="$(awk -v a="${TPS[loyalty,$sync]}" -v b="${TPS[plpgsql,$sync]}" 'BEGIN { printf "%.3f ", a / b }')"
        ROUND_RATIOS_LOTS[$sync]+="$(awk -v a="${TPS[loyalty,$sync]}" -v b="${TPS[lots,$sync]}" 'BEGIN { printf "%.3f ", a / b }')"
    done
    interleaved "$sync"
    for w in loyalty plpgsql lots; do
        # shellcheck disable=SC2086
        TPS[$w,$sync]=$(median ${T[$w]})
        # shellcheck disable=SC2086
        LAT[$w,$sync]=$(median ${L[$w]})
        # shellcheck disable=SC2086
        WAL[$w,$sync]=$(median ${W[$w]})
    done
done
# one line per workload in the table below
RESULTS=(select1,on tpcb,on loyalty,on plpgsql,on lots,on select1,off tpcb,off loyalty,off plpgsql,off lots,off)
echo "runs: $(elapsed "$t0")s"

# --- results --------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "n/a" }'; }

echo
printf '%-9s %-5s %11s %12s %10s %10s %15s %13s %9s\n' workload sync tps "latency ms" "/SELECT 1" "/TPC-B" "loyalty/plpgsql" "loyalty/lots" "WAL B/tx"
for key in "${RESULTS[@]}"; do
    name=${key%,*}; sync=${key#*,}
    lp="" ll=""
    if [[ $name == loyalty ]]; then
        lp=$(ratio "${TPS[loyalty,$sync]}" "${TPS[plpgsql,$sync]}")
        ll=$(ratio "${TPS[loyalty,$sync]}" "${TPS[lots,$sync]}")
    fi
    printf '%-9s %-5s %11.1f %12.3f %10s %10s %15s %13s %9s\n' "$name" "$sync" "${TPS[$key]}" "${LAT[$key]}" \
        "$(ratio "${TPS[$key]}" "${TPS[select1,$sync]}")" "$(ratio "${TPS[$key]}" "${TPS[tpcb,$sync]}")" "$lp" "$ll" "${WAL[$key]:-?}"
done
echo
for sync in on off; do
    echo "rounds loyalty/plpgsql (sync=$sync), in run order: ${ROUND_RATIOS[$sync]}"
    echo "rounds loyalty/lots (sync=$sync), in run order: ${ROUND_RATIOS_LOTS[$sync]}"
done
for sync in on off; do
    echo "ratio loyalty/plpgsql (sync=$sync): $(ratio "${TPS[loyalty,$sync]}" "${TPS[plpgsql,$sync]}")"
    echo "ratio loyalty/lots (sync=$sync): $(ratio "${TPS[loyalty,$sync]}" "${TPS[lots,$sync]}")"
    echo "ratio loyalty/tpcb (sync=$sync): $(ratio "${TPS[loyalty,$sync]}" "${TPS[tpcb,$sync]}")"
    echo "ratio loyalty/select1 (sync=$sync): $(ratio "${TPS[loyalty,$sync]}" "${TPS[select1,$sync]}")"
    echo "ratio plpgsql/tpcb (sync=$sync): $(ratio "${TPS[plpgsql,$sync]}" "${TPS[tpcb,$sync]}")"
    # what each transaction leaves in the WAL (full-page images after the
    # run's CHECKPOINT included): the cost a replica or archive pays
    echo "ratio WAL bytes per transaction loyalty/plpgsql (sync=$sync): $(ratio "${WAL[loyalty,$sync]:-0}" "${WAL[plpgsql,$sync]:-0}") (${WAL[loyalty,$sync]:-?} against ${WAL[plpgsql,$sync]:-?})"
done
for sync in on off; do
    # latency of the reference over loyalty's: the speed ratio, as tps ratios are
    for op in earn redeem; do
        echo "ratio interleaved loyalty/plpgsql $op (sync=$sync): $(ratio "${ILAT[plpgsql_$op,$sync]}" "${ILAT[loyalty_$op,$sync]}")"
    done
    echo "ratio interleaved loyalty/plpgsql (sync=$sync): $(ratio "${ILAT[plpgsql,$sync]}" "${ILAT[loyalty,$sync]}")"
    echo "ratio interleaved loyalty/lots (sync=$sync): $(ratio "${ILAT[lots,$sync]}" "${ILAT[loyalty,$sync]}")"
    # the SQL store: what loyalty does for any table a DBA may have altered
    echo "ratio interleaved loyaltysql/plpgsql (sync=$sync): $(ratio "${ILAT[plpgsql,$sync]}" "${ILAT[loyaltysql,$sync]}")"
    echo "ratio interleaved loyaltysql/lots (sync=$sync): $(ratio "${ILAT[lots,$sync]}" "${ILAT[loyaltysql,$sync]}")"
    echo "ratio interleaved loyalty/loyaltysql (sync=$sync): $(ratio "${ILAT[loyaltysql,$sync]}" "${ILAT[loyalty,$sync]}")"
    if [[ $CFLOOR == 1 ]]; then
        # the minimal ledger's work from C against the same in PL/pgSQL: what
        # C alone buys; and loyalty, doing more, against that C
        for op in earn redeem; do
            echo "ratio interleaved cfloor/plpgsql $op (sync=$sync): $(ratio "${ILAT[plpgsql_$op,$sync]}" "${ILAT[cfloor_$op,$sync]}")"
        done
        echo "ratio interleaved cfloor/plpgsql (sync=$sync): $(ratio "${ILAT[plpgsql,$sync]}" "${ILAT[cfloor,$sync]}")"
        echo "ratio interleaved loyalty/cfloor (sync=$sync): $(ratio "${ILAT[cfloor,$sync]}" "${ILAT[loyalty,$sync]}")"
    fi
done
for name in select1 tpcb loyalty plpgsql lots; do
    echo "ratio $name sync off/on: $(ratio "${TPS[$name,off]}" "${TPS[$name,on]}")"
done

# --- integrity ------------------------------------------------------------------
echo
echo "ledger rows: $(q1 "SELECT string_agg(kind || ' ' || n, ', ' ORDER BY kind) FROM (SELECT kind, count(*) n FROM loyalty.ledger GROUP BY kind) s") (loyalty);" \
     "$(q1 "SELECT count(*) FILTER (WHERE delta > 0) || ' credits, ' || count(*) FILTER (WHERE delta < 0) || ' debits' FROM bench_plpgsql.ledger") (plpgsql)"
broken=$(q1 "SELECT count(*) FROM loyalty.verify()")
echo "loyalty.verify() rows: $broken"
pl_broken=$(q1 "SELECT count(*) FROM bench_plpgsql.accounts a LEFT JOIN (SELECT member_id, sum(delta) s FROM bench_plpgsql.ledger GROUP BY member_id) l USING (member_id) WHERE a.balance <> coalesce(l.s, 0) OR a.balance < 0")
echo "plpgsql balance <> sum(ledger) rows: $pl_broken"
lots_broken=$(q1 "SELECT count(*) FROM bench_lots.accounts a
    LEFT JOIN (SELECT member_id, sum(points) s FROM bench_lots.ledger GROUP BY member_id) l USING (member_id)
    LEFT JOIN (SELECT member_id, sum(remaining) r FROM bench_lots.lots GROUP BY member_id) o USING (member_id)
    WHERE a.balance <> coalesce(l.s, 0) OR a.balance <> coalesce(o.r, 0) OR a.balance < 0")
echo "lots ledger balance <> sum(ledger) or sum(lots) rows: $lots_broken"
if [[ $broken != 0 || $pl_broken != 0 || $lots_broken != 0 ]]; then
    q -c "SELECT * FROM loyalty.verify() LIMIT 20" >&2 || true
    die "ledger invariants broken after the benchmark: the results are worthless"
fi
echo "OK"
