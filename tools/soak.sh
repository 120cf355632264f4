#!/usr/bin/env bash
# The long checks, outside the test command (tools/test.sh runs their short
# versions): install what is missing, build, install, then in a throwaway
# cluster
#   - the chaos load, SOAK_CHAOS_SECONDS (600) at 16 clients, every write kind,
#     and again with household pools;
#   - SOAK_CRASH_ROUNDS (20) rounds of SIGKILL under load, each followed by
#     the replay of every acknowledged call and verify();
#   - random SQL (sqlsmith, 100,000 queries), generated input (100,000 cases),
#     failover and point-in-time recovery under a longer load;
#   - with LOYALTY_PG_BIN set, the whole suite on that instrumented build
#     (test/scripts/instrumented.sh).
# Prints each part's figures and one line "soak: N parts passed, M failed".
# About 70 minutes on 2 cores.
#
#   tools/soak.sh
#   SOAK_CHAOS_SECONDS=60 SOAK_CRASH_ROUNDS=3 tools/soak.sh     # a quick look
source "$(dirname "$0")/common.sh"
ensure_packages
build_and_install
CHAOS=${SOAK_CHAOS_SECONDS:-600}
ROUNDS=${SOAK_CRASH_ROUNDS:-20}
say "soak in a throwaway PostgreSQL $PGVER cluster: chaos ${CHAOS}s, $ROUNDS crash rounds"

# shellcheck disable=SC2016
in_throwaway_cluster bash -c '
cd "$1"; chaos=$2; rounds=$3
passed=0; failed=0; lines=()
part() {   # name, command...: run one part, keep its last lines
    local name=$1; shift
    local t0=$(date +%s) log; log=$(mktemp)
    echo; echo "== $name"
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 77 ]; then lines+=("skip   $name: $(grep -m1 ^SKIP "$log")")
    elif [ "$rc" -eq 0 ]; then passed=$((passed + 1)); lines+=("ok     $name ($(( $(date +%s) - t0 ))s)")
    else failed=$((failed + 1)); lines+=("FAILED $name ($(( $(date +%s) - t0 ))s)"); fi
    rm -f "$log"
}
part "chaos load, ${chaos}s" env CHAOS_SECONDS="$chaos" bash test/scripts/chaos_load.sh
part "chaos load with household pools, ${chaos}s" env CHAOS_SECONDS="$chaos" bash test/scripts/chaos_pools.sh
part "crash recovery, $rounds rounds" env CRASH_ROUNDS="$rounds" bash test/scripts/crash_recovery.sh
part "sqlsmith, 100,000 queries" env SQLSMITH_QUERIES=100000 bash test/scripts/sqlsmith.sh
fuzz() {    # the generated-input file of the suite, at the soak size, in a database of its own
    dropdb --if-exists loyalty_fuzz_soak && createdb loyalty_fuzz_soak &&
    psql -qX -d loyalty_fuzz_soak -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION loyalty" &&
    FUZZ_CASES=100000 pg_prove -d loyalty_fuzz_soak test/pgtap/fuzz_generated.sql; local rc=$?
    dropdb --if-exists loyalty_fuzz_soak; return $rc
}
part "generated input, 100,000 cases" fuzz
part "failover under load, 60s at 16 clients" env FAILOVER_SECONDS=60 FAILOVER_CLIENTS=16 bash test/scripts/failover.sh
part "point-in-time recovery, 3 phases of 30s at 16 clients" env PITR_SECONDS=30 PITR_CLIENTS=16 bash test/scripts/pitr.sh
[ -n "${LOYALTY_PG_BIN:-}" ] && part "the suite on $LOYALTY_PG_BIN" bash test/scripts/instrumented.sh
echo; printf "%s\n" "${lines[@]}"
echo "soak: $passed parts passed, $failed failed"
[ "$failed" -eq 0 ]
' soak "$ROOT" "$CHAOS" "$ROUNDS"
