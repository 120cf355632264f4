#!/usr/bin/env bash
# PostgreSQL 16 and 17: for each version V whose server binaries exist
# (LOYALTY_PG16_BIN / LOYALTY_PG17_BIN, default /opt/loyalty-pg/V/bin), copy
# the repository's files (tracked, and untracked ones that are not ignored)
# into a temp dir, build them warning-free with that version's pg_config
# (EXTRA_CFLAGS=-Werror, as tools/common.sh does for 15), install into that
# prefix, and run in a throwaway cluster of that version (initdb + pg_ctl in a
# temp dir, on a free loopback port, its socket in the temp dir) what
# tools/run-suites.sh runs on 15: pg_regress (sql/, expected/), the isolation
# specs (specs/) and test/pgtap/*.sql with pg_prove in a database with
# pgtap and loyalty.  Prints a summary per version.
#
# When -Werror fails, the version fails; the build is retried without it so
# that the tests still run and their results are printed.
#
#   LOYALTY_PG16_BIN, LOYALTY_PG17_BIN   server binaries of each version
#   LOYALTY_STORE_MODES   e.g. "on off": the isolation and pgTAP parts run
#                         once per value with PGOPTIONS="-c loyalty.fast_store=VALUE"
#                         (default: once, without PGOPTIONS)
#   LOYALTY_PG_VERSIONS   the builds to run, each with its LOYALTY_PG<label>_BIN
#                         (default "16 17"; test/scripts/instrumented.sh runs one
#                         labelled "inst")
#   LOYALTY_PG_SERVER_WRAPPER   a command the server runs under (valgrind), started
#                         without pg_ctl and waited for with pg_isready
#   LOYALTY_REGRESS, LOYALTY_ISOLATION, LOYALTY_PGTAP   when set, only these
#                         tests (names as for make installcheck; pgTAP file names
#                         without the directory), e.g. for a slow instrumented run
#
# The prefixes must be writable by the user running this (root is; as root
# the clusters run as user postgres).  Exits 77 with "SKIP: ..." when neither
# version is there.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

VERSIONS=()
MISSING=()
for V in ${LOYALTY_PG_VERSIONS:-16 17}; do
    var=LOYALTY_PG${V}_BIN
    BIN=${!var:-/opt/loyalty-pg/$V/bin}
    if [ -x "$BIN/postgres" ] && [ -x "$BIN/pg_ctl" ] && [ -x "$BIN/pg_config" ]; then
        VERSIONS+=("$V")
    else
        MISSING+=("   PostgreSQL $V: no server binaries in $BIN (not run)")
    fi
done
if [ ${#VERSIONS[@]} -eq 0 ]; then
    echo "SKIP: no PostgreSQL 16 or 17 build (set LOYALTY_PG16_BIN / LOYALTY_PG17_BIN)"
    printf '%s\n' "${MISSING[@]}"
    exit 77
fi
[ ${#MISSING[@]} -gt 0 ] && printf '%s\n' "${MISSING[@]}"

# Free loopback ports below the kernel's ephemeral range (as test/scripts/citus.sh
# picks them, but from another stretch): a port counts as free when no socket
# of any state has it as its local port.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
NEXT_PORT=$((EPHEMERAL_LOW > 30000 ? EPHEMERAL_LOW - 2000 : 21000))
port_free() {
    if [ -r /proc/net/tcp ]; then
        local f files=()
        for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && files+=("$f"); done
        ! awk -v p="$(printf %04X "$1")" 'FNR > 1 { split($2, a, ":"); if (a[2] == p) f = 1 } END { exit !f }' \
            "${files[@]}"
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
free_port() {
    local last=$((NEXT_PORT + 900))
    while ! port_free $NEXT_PORT; do
        NEXT_PORT=$((NEXT_PORT + 1))
        [ $NEXT_PORT -gt $last ] && return 1
    done
    echo $NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
}

TMP=$(mktemp -d -t loyalty-pgver.XXXXXX)
chmod 755 "$TMP"
if [ "$(id -u)" -eq 0 ]; then RUN="runuser -u postgres --"; OWNER=postgres; else RUN=""; OWNER=$(id -un); fi
STARTED=()   # "bin data" of every cluster started
cleanup() {
    local c
    for c in "${STARTED[@]}"; do
        set -- $c
        [ -f "$2/postmaster.pid" ] && $RUN "$1/pg_ctl" -D "$2" -m immediate stop >/dev/null 2>&1
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
ORIG_PATH=$PATH

# The repository's files: tracked (as in the work tree) and untracked but not
# ignored; without git, everything but .git and build outputs.
copy_tree() {   # destination
    mkdir -p "$1"
    if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
            tar --null -T - -cf -) | tar -xf - -C "$1"
    else
        (cd "$ROOT" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
            --exclude=./results --exclude=./output_iso --exclude=./.run -cf - .) | tar -xf - -C "$1"
    fi
}

# Count the tests of a pg_regress-style run, as run-suites.sh does, in both
# output formats: "test NAME ... ok|FAILED" (15) and, from 16 on, TAP lines
# "ok N - NAME  12 ms" / "not ok N - NAME  12 ms" ("+" for a parallel group).
OK_RE='(\.\.\. ok( |$))|(^ok +[0-9]+ +[-+] )'
BAD_RE='(\.\.\. FAILED)|(^not ok +[0-9]+ +[-+] )'
count_regress() {   # output file, label
    local out=$1 ok bad
    ok=$(grep -cE "$OK_RE" "$out" || true)
    bad=$(grep -cE "$BAD_RE" "$out" || true)
    passed=$((passed + ok))
    failed=$((failed + bad))
    if [ "$bad" -gt 0 ]; then
        failures+=("$2:$(grep -E "$BAD_RE" "$out" |
            sed -E 's/^test +([^ ]+) .*/\1/; s/^not ok +[0-9]+ +[-+] +([^ ]+).*/\1/' | paste -sd, -)")
    fi
}

MODES=(${LOYALTY_STORE_MODES:-})
[ ${#MODES[@]} -eq 0 ] && MODES=("")
SUMMARY=()
total_failed=0

for V in "${VERSIONS[@]}"; do
    var=LOYALTY_PG${V}_BIN
    BIN=${!var:-/opt/loyalty-pg/$V/bin}
    PG_CONFIG=$BIN/pg_config
    export PG_CONFIG
    export PATH="$BIN:$ORIG_PATH"
    passed=0
    failed=0
    failures=()
    t0=$(date +%s)
    VERSION=$("$PG_CONFIG" --version)
    echo
    echo "=== $VERSION ($BIN)"
    W=$TMP/$V
    SRC=$W/src
    LOG=$W/log
    mkdir -p "$LOG"
    copy_tree "$SRC"

    # --- build (-Werror), install --------------------------------------------
    werror=ok
    if ! make -C "$SRC" -k -s -j2 PG_CONFIG="$PG_CONFIG" EXTRA_CFLAGS=-Werror >"$LOG/build.out" 2>&1; then
        werror=FAILED
        failed=$((failed + 1)); failures+=("build(-Werror)")
        echo "FAILED build with -Werror:"
        grep -E ': (error|warning|note):|Error [0-9]' "$LOG/build.out" || tail -40 "$LOG/build.out"
        make -C "$SRC" -s clean >/dev/null 2>&1
        if ! make -C "$SRC" -k -s -j2 PG_CONFIG="$PG_CONFIG" >"$LOG/build2.out" 2>&1; then
            echo "FAILED build without -Werror too, its errors:"
            grep -E ': error:' "$LOG/build2.out" || tail -40 "$LOG/build2.out"
            SUMMARY+=("$V ($VERSION): build FAILED, no tests run")
            total_failed=$((total_failed + failed))
            continue
        fi
        echo "   (built without -Werror to run the tests)"
    else
        echo "ok     build (-Wall -Wextra -Werror)"
        grep -E ': (warning|note):' "$LOG/build.out"
    fi
    not_writable=""
    for d in "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --sharedir)/extension"; do
        [ -w "$d" ] || not_writable="$not_writable $d"
    done
    if [ -n "$not_writable" ]; then
        echo "FAILED install: not writable by $(id -un):$not_writable"
        failed=$((failed + 1)); failures+=("install")
        SUMMARY+=("$V ($VERSION): install FAILED (prefix not writable by $(id -un)), no tests run")
        total_failed=$((total_failed + failed))
        continue
    fi
    if ! make -C "$SRC" -s install PG_CONFIG="$PG_CONFIG" >"$LOG/install.out" 2>&1; then
        echo "FAILED make install:"; tail -20 "$LOG/install.out"
        failed=$((failed + 1)); failures+=("install")
        SUMMARY+=("$V ($VERSION): install FAILED, no tests run")
        total_failed=$((total_failed + failed))
        continue
    fi

    # --- a throwaway cluster -------------------------------------------------
    mkdir -p "$W/cluster"
    [ "$(id -u)" -eq 0 ] && chown postgres "$W/cluster"
    if ! $RUN "$BIN/initdb" -D "$W/cluster/data" -U postgres -A trust >"$LOG/initdb.out" 2>&1; then
        echo "FAILED initdb:"; tail -20 "$LOG/initdb.out"
        failed=$((failed + 1)); failures+=("initdb")
        SUMMARY+=("$V ($VERSION): initdb FAILED, no tests run")
        total_failed=$((total_failed + failed))
        continue
    fi
    STARTED+=("$BIN $W/cluster/data")
    started=""
    for try in 1 2 3; do
        PORT=$(free_port) || break
        opts=(-p "$PORT" -k "$W/cluster" -c listen_addresses=127.0.0.1 -c max_prepared_transactions=10
              -c "shared_preload_libraries=" -c fsync=off)
        if [ -n "${LOYALTY_PG_SERVER_WRAPPER:-}" ]; then
            # pg_ctl cannot put the server under another program: start it
            # directly and wait (a server under valgrind starts slowly)
            touch "$W/cluster/server.log"; [ "$(id -u)" -eq 0 ] && chown postgres "$W/cluster/server.log"
            $RUN $LOYALTY_PG_SERVER_WRAPPER "$BIN/postgres" -D "$W/cluster/data" "${opts[@]}" \
                >>"$W/cluster/server.log" 2>&1 &
            for _ in $(seq 1 300); do
                "$BIN/pg_isready" -q -h "$W/cluster" -p "$PORT" && { started=1; break; }
                sleep 1
            done
            [ -n "$started" ] && break
        elif $RUN "$BIN/pg_ctl" -D "$W/cluster/data" -w -t 60 -l "$W/cluster/server.log" \
            -o "$(printf '%q ' "${opts[@]}")" start >/dev/null 2>&1; then
            started=1; break
        fi
    done
    if [ -z "$started" ]; then
        echo "FAILED to start the cluster:"; tail -20 "$W/cluster/server.log"
        failed=$((failed + 1)); failures+=("server-start")
        SUMMARY+=("$V ($VERSION): server did not start, no tests run")
        total_failed=$((total_failed + failed))
        continue
    fi
    unset PGSERVICE PGSERVICEFILE PGPASSWORD PGPASSFILE PGSSLMODE PGOPTIONS PGTZ PGDATESTYLE
    export PGHOST=$W/cluster PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
    echo "   cluster on port $PORT, socket in $PGHOST"

    # --- pg_regress (as run-suites.sh) ---------------------------------------
    echo "== pg_regress (sql/, expected/)"
    (cd "$SRC" && make -s installcheck ${LOYALTY_REGRESS+REGRESS="$LOYALTY_REGRESS"} ISOLATION= PG_CONFIG="$PG_CONFIG") >"$LOG/regress.out" 2>&1
    rc=$?
    cat "$LOG/regress.out"
    count_regress "$LOG/regress.out" regress
    [ $rc -ne 0 ] && [ -f "$SRC/regression.diffs" ] && cp "$SRC/regression.diffs" "$LOG/regress.diffs" && head -200 "$SRC/regression.diffs"
    [ $rc -ne 0 ] && ! grep -qE "$BAD_RE" "$LOG/regress.out" && { failed=$((failed + 1)); failures+=("pg_regress-run"); }

    for mode in "${MODES[@]}"; do
        if [ -n "$mode" ]; then
            export PGOPTIONS="-c loyalty.fast_store=$mode"
            tag="[fast_store=$mode]"
        else
            unset PGOPTIONS
            tag=""
        fi

        # --- isolation (as run-suites.sh) ------------------------------------
        if ls "$SRC"/specs/*.spec >/dev/null 2>&1; then
            echo "== isolation (specs/)${tag:+ $tag}"
            rm -rf "$SRC/output_iso"
            (cd "$SRC" && make -s installcheck REGRESS= ${LOYALTY_ISOLATION+ISOLATION="$LOYALTY_ISOLATION"} PG_CONFIG="$PG_CONFIG") >"$LOG/isolation$mode.out" 2>&1
            rc=$?
            cat "$LOG/isolation$mode.out"
            count_regress "$LOG/isolation$mode.out" "isolation$tag"
            [ $rc -ne 0 ] && [ -f "$SRC/output_iso/regression.diffs" ] && head -200 "$SRC/output_iso/regression.diffs"
            [ $rc -ne 0 ] && ! grep -qE "$BAD_RE" "$LOG/isolation$mode.out" && { failed=$((failed + 1)); failures+=("isolation-run$tag"); }
        fi

        # --- pgTAP (as run-suites.sh) ----------------------------------------
        if ls "$SRC"/test/pgtap/*.sql >/dev/null 2>&1; then
            echo "== pgTAP (test/pgtap/)${tag:+ $tag}"
            if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/pgtap.control" ]; then
                echo "FAILED pgTAP is not installed for $VERSION"
                failed=$((failed + 1)); failures+=("pgtap-missing"); continue
            fi
            dropdb --if-exists loyalty_tap >/dev/null 2>&1
            if ! createdb loyalty_tap || ! psql -qX -d loyalty_tap -v ON_ERROR_STOP=1 \
                -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION loyalty'; then
                failed=$((failed + 1)); failures+=("pgtap-setup$tag"); continue
            fi
            files=("$SRC"/test/pgtap/*.sql)
            [ -n "${LOYALTY_PGTAP+x}" ] && { files=(); for t in $LOYALTY_PGTAP; do files+=("$SRC/test/pgtap/$t"); done; }
            for f in "${files[@]}"; do
                rel=test/pgtap/$(basename "$f")
                if (cd "$SRC" && pg_prove -d loyalty_tap "$rel") >"$LOG/$(basename "$f")$mode.tap" 2>&1; then
                    passed=$((passed + 1)); echo "ok     $rel"
                else
                    failed=$((failed + 1)); failures+=("$rel$tag"); echo "FAILED $rel"; cat "$LOG/$(basename "$f")$mode.tap"
                fi
            done
        fi
    done
    unset PGOPTIONS

    # a crash (assertion, signal) is in the server's log, which goes with the temp dir
    if grep -qE '^TRAP:|terminated by signal|PANIC:' "$W/cluster/server.log"; then
        echo "== the server crashed (its log):"
        grep -E -A2 '^TRAP:|terminated by signal|PANIC:' "$W/cluster/server.log" | head -40
        failed=$((failed + 1)); failures+=("server-crash")
    fi
    $RUN "$BIN/pg_ctl" -D "$W/cluster/data" -m fast -w stop >/dev/null 2>&1
    line="$V ($VERSION): -Werror build $werror, $passed passed, $failed failed, $(( $(date +%s) - t0 ))s"
    [ ${#failures[@]} -gt 0 ] && line="$line; failed: ${failures[*]}"
    SUMMARY+=("$line")
    total_failed=$((total_failed + failed))
done

echo
echo "=== summary"
printf '%s\n' "${SUMMARY[@]}"
[ "$total_failed" -eq 0 ]
