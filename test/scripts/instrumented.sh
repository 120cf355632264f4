#!/usr/bin/env bash
# The whole suite (pg_regress, isolation, pgTAP; both store modes) on an
# instrumented PostgreSQL build: LOYALTY_PG_BIN names its bin directory.
# What the build is, is read from its pg_config:
#   - AddressSanitizer/UndefinedBehaviorSanitizer (CFLAGS with -fsanitize):
#     the extension is compiled with the same flags (PGXS takes them), the
#     server runs with ASAN_OPTIONS/UBSAN_OPTIONS writing reports to files;
#   - -DUSE_VALGRIND (assertions, valgrind client requests): the server runs
#     under valgrind memcheck (slow: hours for the whole suite; set
#     LOYALTY_REGRESS / LOYALTY_ISOLATION / LOYALTY_PGTAP to a subset, see
#     pg_versions.sh; LOYALTY_VALGRIND_ORIGINS=no drops --track-origins);
#   - --enable-cassert alone: assertions only.
# Then the chaos load and the crash rounds run on the build too
# (LOYALTY_INSTRUMENTED_SCRIPTS, default "chaos_load crash_recovery"; not
# under valgrind).  Every report is classified: one with a frame in the extension's code
# (loyalty.so, src/*.c) fails the run; reports wholly inside PostgreSQL are
# listed.  A crash or failed assertion fails the run too (pg_versions.sh).
#
#   LOYALTY_PG_BIN=/opt/loyalty-pg/15-asan/bin test/scripts/instrumented.sh
#   LOYALTY_PG_BIN=/opt/loyalty-pg/15-valgrind/bin LOYALTY_STORE_MODES=on test/scripts/instrumented.sh
#
# How to make such builds: doc/operations.md, "Instrumented builds".  Without
# LOYALTY_PG_BIN (as in tools/test.sh) it skips (exit 77).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

if [ -z "${LOYALTY_PG_BIN:-}" ]; then
    echo "SKIP: LOYALTY_PG_BIN is not set (a PostgreSQL build with assertions, valgrind or sanitizers; see doc/operations.md)"
    exit 77
fi
BIN=$LOYALTY_PG_BIN
# a sanitizer build's own programs (pg_config, initdb) leak at exit by design:
# LeakSanitizer would fail them before the build's kind is even known
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
if [ ! -x "$BIN/pg_config" ] || [ ! -x "$BIN/postgres" ]; then
    echo "SKIP: no PostgreSQL build in $BIN"
    exit 77
fi
CONFIGURE=$("$BIN/pg_config" --configure)
CFLAGS=$("$BIN/pg_config" --cflags)
case "$CFLAGS $CONFIGURE" in
    *-fsanitize=*) KIND=sanitizers ;;
    *USE_VALGRIND*) KIND=valgrind ;;
    *) KIND=plain ;;
esac
case "$CONFIGURE" in *enable-cassert*) ASSERTS=yes ;; *) ASSERTS=no ;; esac
REPORTS=$(mktemp -d -t loyalty-instrumented.XXXXXX)
chmod 777 "$REPORTS"
echo "== $("$BIN/pg_config" --version) in $BIN: $KIND, assertions $ASSERTS; reports in $REPORTS"

case $KIND in
    sanitizers)
        # PostgreSQL frees at exit by dropping memory contexts: leaks are not
        # reports; a sanitizer error ends the process (the run sees a crash)
        export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:print_stacktrace=1:disable_coredump=1:log_path=$REPORTS/asan"
        export UBSAN_OPTIONS="print_stacktrace=1:log_path=$REPORTS/ubsan"
        ;;
    valgrind)
        command -v valgrind >/dev/null || { echo "SKIP: valgrind is not installed"; exit 77; }
        SUPP=${LOYALTY_VALGRIND_SUPP:-$("$BIN/pg_config" --sharedir)/valgrind.supp}
        [ -f "$SUPP" ] || { echo "FAILED: no valgrind suppressions at $SUPP (PostgreSQL's src/tools/valgrind.supp)"; exit 1; }
        # origins make memcheck about twice as slow again: a long run may turn
        # them off (LOYALTY_VALGRIND_ORIGINS=no) and rerun a test that reports
        export LOYALTY_PG_SERVER_WRAPPER="valgrind --quiet --trace-children=yes --track-origins=${LOYALTY_VALGRIND_ORIGINS:-yes}
            --num-callers=40 --leak-check=no --gen-suppressions=all
            --suppressions=$SUPP --log-file=$REPORTS/valgrind.%p"
        ;;
esac

export LOYALTY_PG_VERSIONS=inst LOYALTY_PGinst_BIN=$BIN
export LOYALTY_STORE_MODES=${LOYALTY_STORE_MODES:-on off}
bash "$ROOT/test/scripts/pg_versions.sh"
rc=$?

# The chaos load and the crash rounds on the same build (not under valgrind,
# whose wrapper these scripts' own pg_ctl does not know): the extension
# pg_versions.sh built and installed there, a cluster of its own.
SCRIPTS=${LOYALTY_INSTRUMENTED_SCRIPTS-chaos_load crash_recovery}
if [ "$KIND" != valgrind ] && [ -n "$SCRIPTS" ]; then
    D=$(mktemp -d -t loyalty-instrumented-cluster.XXXXXX)
    IPORT=${LOYALTY_INSTRUMENTED_PORT:-54431}
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$D"; AS=(runuser -u postgres --); else AS=(); fi
    "${AS[@]}" "$BIN/initdb" -D "$D/data" -U postgres -A trust >/dev/null &&
        "${AS[@]}" "$BIN/pg_ctl" -D "$D/data" -l "$D/log" -w -t 120 \
            -o "-p $IPORT -k $D -c listen_addresses= -c max_prepared_transactions=10" start >/dev/null || rc=1
    for s in $SCRIPTS; do
        echo "== $s on $BIN"
        PGHOST=$D PGPORT=$IPORT PGUSER=postgres PGBIN=$BIN PATH="$BIN:$PATH" CRASH_PORT=$((IPORT + 1)) \
            bash "$ROOT/test/scripts/$s.sh" || { echo "FAILED $s"; rc=1; }
    done
    "${AS[@]}" "$BIN/pg_ctl" -D "$D/data" -m fast stop >/dev/null
    if grep -E "TRAP:|terminated by signal" "$D/log"; then echo "FAILED: a crash or failed assertion in the server log"; rc=1; fi
    rm -rf "$D"
fi

# Every report (a file with an error in it: valgrind's own warnings about
# debug information are not reports), classified by whether a frame is ours.
REPORT_RE='^==[0-9]+== +(Invalid|Conditional jump|Use of uninitialised|Syscall param|Source and destination|Mismatched|Argument|Process terminating)|ERROR: AddressSanitizer|runtime error:'
ours=0
theirs=0
for f in "$REPORTS"/*; do
    [ -s "$f" ] && grep -qE "$REPORT_RE" "$f" || continue
    if grep -qE 'loyalty\.so|/src/[a-z_]+\.c:' "$f"; then
        ours=$((ours + 1))
        echo "== a report in the extension's code ($f):"
        grep -vE 'evaluate_Dwarf3_Expr' "$f" | head -60
    else
        theirs=$((theirs + 1))
        echo "== a report inside PostgreSQL ($f): $(grep -m1 -E "$REPORT_RE" "$f")"
    fi
done
echo "instrumented ($KIND): reports in the extension $ours, inside PostgreSQL $theirs, suite exit $rc"
[ "$rc" -eq 0 ] && [ "$ours" -eq 0 ]
