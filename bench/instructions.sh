#!/bin/bash
# bench/instructions.sh: CPU instructions per call of the loyalty write path
# against the two hand-written PL/pgSQL ledgers, counted by valgrind's
# callgrind in a single-user backend.  Instruction counts do not drift with the
# machine's load or clock the way pgbench's rates do on a small shared VM;
# what they do not show is time lost to cache misses and I/O (see
# bench/README.md).
#
#   bench/instructions.sh            # about 2 minutes; needs valgrind and the extension installed
#
# It makes its own throwaway cluster (initdb in a temp directory, started only
# to load the data), then runs `postgres --single` under callgrind twice per
# workload, with INSTR_FEW and INSTR_MANY calls, each call its own statement and
# transaction (parsed and planned each time, the same for every ledger); the
# per-call count is the difference divided by the difference in calls, so
# start-up and shutdown cancel out.  A `SELECT 1` statement is counted too, and
# the "net" ratios leave out what every statement costs.
#
#   PGBIN          server binaries (default /usr/lib/postgresql/15/bin)
#   INSTR_MEMBERS  members in each ledger (default 100000)
#   INSTR_FEW      calls of the short run (default 500)
#   INSTR_MANY     calls of the long run (default 2500)
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
INSTR_MEMBERS=${INSTR_MEMBERS:-100000}
INSTR_FEW=${INSTR_FEW:-500}
INSTR_MANY=${INSTR_MANY:-2500}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "instructions.sh: $*" >&2; exit 1; }
for v in INSTR_MEMBERS INSTR_FEW INSTR_MANY; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((INSTR_MANY > INSTR_FEW)) || die "INSTR_MANY must be larger than INSTR_FEW"
command -v valgrind >/dev/null || die "valgrind not found (Debian package valgrind)"
[ -x "$PGBIN/postgres" ] || die "no server binaries in $PGBIN"

TMP=$(mktemp -d -t loyalty-instr.XXXXXX)
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
cleanup() {
    [ -f "$TMP/data/postmaster.pid" ] && $RUN "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- data: the same set-up as bench/ledger.sh ----------------------------------
$RUN "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust >/dev/null
$RUN "$PGBIN/pg_ctl" -D "$TMP/data" -w -t 60 -l "$TMP/server.log" \
    -o "-c listen_addresses= -k $TMP -c fsync=off" start >/dev/null
q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$TMP" -U postgres -d bench "$@"; }
"$PGBIN/psql" -X -q -h "$TMP" -U postgres -d postgres -c "CREATE DATABASE bench"
q -c "CREATE EXTENSION loyalty"
q -f "$HERE/plpgsql_ledger.sql"
q -f "$HERE/plpgsql_lots_ledger.sql"
# the C reference (bench/cfloor), if its library is installed
CFLOOR=0
if q -f "$HERE/cfloor/cfloor.sql" 2>/dev/null; then CFLOOR=1; fi
q -v members="$INSTR_MEMBERS" >/dev/null <<'SQL'
SELECT loyalty.create_program('bench', expiry_period => interval '2 years') AS program \gset
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :program;
SELECT count(loyalty.enroll(:program, 'bench', g::text)) FROM generate_series(1, :members) g;
SELECT count(loyalty.earn(m.member_id, 1000000, 'bench', 'seed')) FROM loyalty.members m;
INSERT INTO bench_plpgsql.accounts (member_id) SELECT g FROM generate_series(1, :members) g;
SELECT count(bench_plpgsql.earn(g, 1000000)) FROM generate_series(1, :members) g;
INSERT INTO bench_lots.accounts (member_id) SELECT g FROM generate_series(1, :members) g;
SELECT count(bench_lots.earn(g, 1000000)) FROM generate_series(1, :members) g;
SQL

base=$(q -A -t -c "SELECT min(member_id) - 1 FROM loyalty.members")
q -c "VACUUM ANALYZE" -c "CHECKPOINT"
$RUN "$PGBIN/pg_ctl" -D "$TMP/data" -w -m fast stop >/dev/null

# --- the calls: the same members and amounts for every ledger -------------------
# calls WORKLOAD N: N statements, one call each, from a fixed random sequence
calls() {
    awk -v w="$1" -v n="$2" -v members="$INSTR_MEMBERS" -v base="$base" 'BEGIN {
        srand(7);
        for (i = 0; i < n; i++) {
            m = 1 + int(rand() * members); x = rand();
            if (w == "select1")        print "SELECT 1";
            if (w == "loyalty_earn")   printf "SELECT loyalty.earn(%d, %d)\n", base + m, 1 + int(x * 200);
            if (w == "plpgsql_earn")   printf "SELECT bench_plpgsql.earn(%d, %d)\n", m, 1 + int(x * 200);
            if (w == "lots_earn")      printf "SELECT bench_lots.earn(%d, %d)\n", m, 1 + int(x * 200);
            if (w == "loyalty_redeem") printf "SELECT loyalty.redeem(%d, %s)\n", base + m, "'\''" (1 + int(x * 10)) "'\''";
            if (w == "plpgsql_redeem") printf "SELECT bench_plpgsql.redeem(%d, %d)\n", m, 1 + int(x * 10);
            if (w == "lots_redeem")    printf "SELECT bench_lots.redeem(%d, %d)\n", m, 1 + int(x * 10);
            if (w == "cfloor_earn")    printf "SELECT bench_plpgsql.cfloor_earn(%d, %d)\n", m, 1 + int(x * 200);
            if (w == "cfloor_redeem")  printf "SELECT bench_plpgsql.cfloor_redeem(%d, %d)\n", m, 1 + int(x * 10);
        } }'
}

# count WORKLOAD N: instructions of a single-user backend making N calls
count() {
    local out="$TMP/$1.$2"
    calls "$1" "$2" > "$out.sql"
    chmod 644 "$out.sql"
    $RUN valgrind --tool=callgrind --callgrind-out-file="$out.cg" \
        "$PGBIN/postgres" --single -D "$TMP/data" -c fsync=off bench < "$out.sql" > "$out.log" 2>&1 \
        || { tail -20 "$out.log" >&2; die "$1: the single-user backend failed"; }
    if grep -q 'ERROR' "$out.log"; then grep -m 3 'ERROR' "$out.log" >&2; die "$1: a call failed"; fi
    grep -o 'Collected : [0-9]*' "$out.log" | awk '{ print $3 }'
}

echo "== instructions per call (callgrind, single-user backend, each call its own transaction) =="
"$PGBIN/postgres" --version
echo "$INSTR_MEMBERS members in each ledger; runs of $INSTR_FEW and $INSTR_MANY calls"
declare -A PER
WORKLOADS="select1 loyalty_earn plpgsql_earn lots_earn loyalty_redeem plpgsql_redeem lots_redeem"
if [[ $CFLOOR == 1 ]]; then
    WORKLOADS+=" cfloor_earn cfloor_redeem"
else
    echo "note: no C reference (bench/cfloor not installed; make -C bench/cfloor && sudo make -C bench/cfloor install)"
fi
for w in $WORKLOADS; do
    few=$(count "$w" "$INSTR_FEW")
    many=$(count "$w" "$INSTR_MANY")
    PER[$w]=$(( (many - few) / (INSTR_MANY - INSTR_FEW) ))
    printf '  %-16s %9d instructions per call\n' "$w" "${PER[$w]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
for op in earn redeem; do
    echo "ratio instructions loyalty/plpgsql ($op): $(ratio "${PER[loyalty_$op]}" "${PER[plpgsql_$op]}")"
    echo "ratio instructions loyalty/lots ($op): $(ratio "${PER[loyalty_$op]}" "${PER[lots_$op]}")"
done
# net of what any statement costs (a SELECT 1 statement: parse, plan, commit)
net() { echo $(( PER[$1] - PER[select1] )); }
for op in earn redeem; do
    echo "ratio net instructions loyalty/plpgsql ($op): $(ratio "$(net loyalty_$op)" "$(net plpgsql_$op)")"
done
# the pgbench mix of bench/ledger.sh: 8 earns to 2 redemptions
mix() { echo $(( 8 * PER[${1}_earn] + 2 * PER[${1}_redeem] )); }
echo "ratio instructions loyalty/plpgsql (mix 8:2): $(ratio "$(mix loyalty)" "$(mix plpgsql)")"
echo "ratio instructions loyalty/lots (mix 8:2): $(ratio "$(mix loyalty)" "$(mix lots)")"
if [[ $CFLOOR == 1 ]]; then
    # the minimal ledger's work from C: what C alone saves, and what loyalty's extra work adds
    for op in earn redeem; do
        echo "ratio instructions cfloor/plpgsql ($op): $(ratio "${PER[cfloor_$op]}" "${PER[plpgsql_$op]}")"
        echo "ratio instructions loyalty/cfloor ($op): $(ratio "${PER[loyalty_$op]}" "${PER[cfloor_$op]}")"
    done
    echo "ratio instructions cfloor/plpgsql (mix 8:2): $(ratio "$(mix cfloor)" "$(mix plpgsql)")"
    echo "ratio instructions loyalty/cfloor (mix 8:2): $(ratio "$(mix loyalty)" "$(mix cfloor)")"
fi
