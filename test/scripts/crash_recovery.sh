#!/usr/bin/env bash
# Crash recovery: CRASH_ROUNDS (3) times, 4 clients make keyed earns and
# redemptions (each its own transaction, logged once acknowledged) until the
# postmaster is killed with SIGKILL at a random moment; then the server is
# restarted and we check that the books balance (verify()), that every
# acknowledged call is in the ledger exactly once, and that replaying every
# acknowledged call with its key returns the first result and writes nothing.
# Runs its own cluster (it has to kill it); needs no other server.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROUNDS=${CRASH_ROUNDS:-3}
TMP=$(mktemp -d -t loyalty-crash.XXXXXX)
PORT=54392
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
q -o /dev/null <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('crash') AS p \gset
SELECT count(loyalty.enroll(:p, 'pos', g::text)) FROM generate_series(1, 50) g;
SELECT count(loyalty.earn(m.member_id, 1000)) FROM loyalty.members m;
CREATE TABLE acks (key text PRIMARY KEY, op text, member bigint, arg bigint, result bigint);
SQL

worker() {   # worker id, round: calls until the server is gone
    local w=$1 r=$2 i=0 fails=0 m amt out key
    while [ $fails -lt 3 ]; do
        i=$((i + 1)); m=$((1 + RANDOM % 50)); amt=$((1 + RANDOM % 20)); key="r$r-w$w-$i"
        if [ $((RANDOM % 3)) -eq 0 ]; then
            out=$(q -c "SELECT loyalty.redeem($m, '$amt', idempotency_key => '$key')" 2>/dev/null) || { fails=$((fails + 1)); continue; }
            echo "$key,redeem,$m,$amt,$out"
        else
            out=$(q -c "SELECT loyalty.earn($m, $amt, idempotency_key => '$key')" 2>/dev/null) || { fails=$((fails + 1)); continue; }
            echo "$key,earn,$m,$amt,$out"
        fi
    done
}

fail=0
for r in $(seq 1 "$ROUNDS"); do
    for w in 1 2 3 4; do worker $w $r >"$TMP/acks.$r.$w" & done
    sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 1 + rand() * 2 }')"
    kill -9 "$(head -1 "$TMP/data/postmaster.pid")"
    wait
    # the children of the killed postmaster exit on their own; wait for them
    for _ in $(seq 1 50); do pgrep -u postgres -f "$TMP/data" >/dev/null 2>&1 || break; sleep 0.1; done
    # the killed postmaster may linger as a zombie (no init to reap it here),
    # which would make its lock files look alive
    rm -f "$TMP/data/postmaster.pid" "$TMP/.s.PGSQL.$PORT.lock" "$TMP/.s.PGSQL.$PORT"
    start
    cat "$TMP"/acks.$r.* > "$TMP/round.csv"
    n=$(wc -l < "$TMP/round.csv")
    q -c "\\copy acks FROM '$TMP/round.csv' WITH (FORMAT csv)"
    bad=$(q -c "SELECT count(*) FROM loyalty.verify()")
    missing=$(q -c "SELECT count(*) FROM acks a WHERE a.key LIKE 'r$r-%' AND (SELECT count(*) FROM loyalty.ledger l WHERE l.member_id = a.member AND l.idempotency_key = a.key) <> 1")
    before=$(q -c "SELECT count(*) FROM loyalty.ledger")
    differ=$(q -c "SELECT count(*) FROM acks a WHERE a.key LIKE 'r$r-%' AND a.result <> CASE a.op
                       WHEN 'earn' THEN loyalty.earn(a.member, a.arg, idempotency_key => a.key)::bigint
                       ELSE loyalty.redeem(a.member, a.arg::loyalty.points, idempotency_key => a.key) END")
    after=$(q -c "SELECT count(*) FROM loyalty.ledger")
    echo "round $r: $n acknowledged calls before SIGKILL; after restart: verify() rows $bad, acknowledged calls missing or doubled $missing, replays with another result $differ, ledger rows written by replays $((after - before))"
    if [ "$n" -eq 0 ] || [ "$bad" != 0 ] || [ "$missing" != 0 ] || [ "$differ" != 0 ] || [ "$after" != "$before" ]; then fail=1; fi
done
exit $fail
