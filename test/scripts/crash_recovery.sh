#!/usr/bin/env bash
# Crash recovery: CRASH_ROUNDS (3) times, 4 clients of test/load/acked.sh
# make the chaos load's calls (each its own transaction with its own
# idempotency key, logged once acknowledged) until the postmaster is killed
# with SIGKILL at a random moment; then the server is restarted and the logs
# are checked against the books (acked_check): verify() is empty, every
# acknowledged call is there exactly once, sent again with its key it answers
# its first result and writes nothing, and every unacknowledged call sent
# again ends applied once or refused.
# Runs its own cluster (it has to kill it); needs no other server.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${CRASH_ROUNDS:-3}
TMP=$(mktemp -d -t loyalty-crash.XXXXXX)
PORT=${CRASH_PORT:-54392}
DB=loyalty_crash
# shellcheck source=test/load/acked.sh
. "$ROOT/test/load/acked.sh"
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
cleanup() {
    set +e
    $RUN "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
[ -n "${CRASH_DEBUG:-}" ] && trap 'cat "$TMP/server.log"; cleanup' EXIT
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP" -p $PORT -U postgres -d postgres "$@"; }
start() { $RUN "$PGBIN/pg_ctl" -D "$TMP/data" -o "-p $PORT -k $TMP -c listen_addresses=''" -w -t 60 -l "$TMP/server.log" start >/dev/null; }

$RUN "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust >/dev/null
start
q -c "CREATE DATABASE $DB"
q -d $DB -o /dev/null -v pools=0 -f "$ROOT/test/load/setup.sql"
CONN="host=$TMP port=$PORT user=postgres dbname=$DB"

fail=0
for r in $(seq 1 "$ROUNDS"); do
    mkdir "$TMP/r$r"
    pids=()
    for w in 1 2 3 4; do
        ACKED_GIVE_UP=3 acked_client $w "r$r" "$CONN" "$TMP/r$r" 2>"$TMP/r$r/client.$w.err" &
        pids+=($!)
    done
    sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 1 + rand() * 2 }')"
    kill -9 "$(head -1 "$TMP/data/postmaster.pid")"
    for p in "${pids[@]}"; do
        wait "$p" || { echo "FAIL round $r: a client stopped on an error that is neither a documented refusal nor a lost connection"; cat "$TMP/r$r"/client.*.err; exit 1; }
    done
    # the children of the killed postmaster exit on their own; wait for them
    for _ in $(seq 1 50); do pgrep -u postgres -f "$TMP/data" >/dev/null 2>&1 || break; sleep 0.1; done
    # the killed postmaster may linger as a zombie (no init to reap it here),
    # which would make its lock files look alive
    rm -f "$TMP/data/postmaster.pid" "$TMP/.s.PGSQL.$PORT.lock" "$TMP/.s.PGSQL.$PORT"
    start
    echo "round $r: $(cat "$TMP/r$r"/acks.[0-9]* | wc -l) calls acknowledged before SIGKILL; after restart:"
    acked_check "$CONN" "$TMP/r$r" || fail=1
done
if [ $fail = 0 ]; then echo "PASS crash recovery: $ROUNDS rounds, nothing acknowledged lost or doubled, verify() empty"; else echo "FAIL crash recovery"; fi
exit $fail
