#!/usr/bin/env bash
# Failover: a primary and a streaming physical standby (pg_basebackup -R, a
# replication slot) with synchronous_standby_names naming the standby and
# synchronous_commit = remote_apply.  FAILOVER_CLIENTS (8) clients of
# test/load/acked.sh make the chaos load's calls against the primary, each
# call with its own idempotency key and logged once acknowledged.  After
# FAILOVER_SECONDS (8) the standby pauses its replay until every client
# waits at commit (so that it holds commits no client was answered for), then
# the primary's processes all get SIGKILL and the standby is promoted
# (pg_ctl promote).  The clients, whose connection string names both servers
# with target_session_attrs=read-write, send their unanswered call again with
# the same key and go on against the new primary for as long again.  Then, on
# the new primary (acked_check): every acknowledged call is there exactly
# once, none is doubled, every acknowledged call sent again answers as the
# first time and writes nothing, verify() is empty.
#
# FAILOVER_SELFTEST=async shows that the check sees a loss: asynchronous
# replication, and the standby's WAL sender stopped (SIGSTOP) for the last
# 1.5 s before the crash, so that the primary acknowledges commits the standby
# never gets; it passes only when the check finds lost acknowledged calls.
#
# Runs its own two servers in a temporary directory (listening only on Unix
# sockets there, so their ports cannot collide with another server's); needs
# no other server.  Stops both on exit, also on failure.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECS=${FAILOVER_SECONDS:-8}
CLIENTS=${FAILOVER_CLIENTS:-8}
SELFTEST=${FAILOVER_SELFTEST:-}
P1=54393
P2=54394
DB=loyalty_failover
for tool in initdb pg_ctl pg_basebackup psql; do
    [ -x "$PGBIN/$tool" ] || { echo "SKIP: $PGBIN/$tool is missing (PostgreSQL 15 server)"; exit 77; }
done
# shellcheck source=test/load/acked.sh
. "$ROOT/test/load/acked.sh"

TMP=$(mktemp -d -t loyalty-failover.XXXXXX)
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
CLIENT_PIDS=()
cleanup() {
    set +e
    touch "$TMP/load/stop" 2>/dev/null
    for p in "${CLIENT_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    for d in primary standby; do
        [ -f "$TMP/$d/postmaster.pid" ] && $RUN "$PGBIN/pg_ctl" -D "$TMP/$d" -m immediate stop >/dev/null 2>&1
    done
    [ -n "${FAILOVER_DEBUG:-}" ] && tail -n 30 "$TMP"/*.log
    rm -rf "$TMP"
}
trap cleanup EXIT
q() { local port=$1; shift; "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP" -p "$port" -U postgres "$@"; }
start() {   # data directory, port
    $RUN "$PGBIN/pg_ctl" -D "$TMP/$1" -o "-p $2 -k $TMP -c listen_addresses=''" -w -t 60 -l "$TMP/$1.log" start >/dev/null
}
now_us() { echo "${EPOCHREALTIME/./}"; }

# the primary, with the chaos load's members
$RUN "$PGBIN/initdb" -D "$TMP/primary" -U postgres -A trust >/dev/null
start primary $P1
q $P1 -d postgres -o /dev/null -c "SELECT pg_create_physical_replication_slot('standby1')" -c "CREATE DATABASE $DB"
q $P1 -d $DB -o /dev/null -v pools=0 -f "$ROOT/test/load/setup.sql"

# the standby: a base backup that writes its primary_conninfo and slot (-R)
$RUN "$PGBIN/pg_basebackup" -d "host=$TMP port=$P1 user=postgres application_name=standby1" \
    -D "$TMP/standby" -R -S standby1 -X stream -c fast
start standby $P2
for _ in $(seq 1 100); do
    [ "$(q $P1 -d postgres -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'")" = 1 ] && break
    sleep 0.1
done
if [ "$SELFTEST" = async ]; then
    echo "== self-test: asynchronous replication (synchronous_standby_names empty, synchronous_commit = on)"
else
    # set on the primary only, after the base backup: a promoted standby with
    # synchronous_standby_names set would wait for a standby it does not have
    q $P1 -d postgres -o /dev/null -c "ALTER SYSTEM SET synchronous_standby_names = 'standby1'" \
        -c "ALTER SYSTEM SET synchronous_commit = 'remote_apply'" -c "SELECT pg_reload_conf()"
fi
want="standby1 streaming $([ "$SELFTEST" = async ] && echo "async on" || echo "sync remote_apply")"
for _ in $(seq 1 100); do
    state=$(q $P1 -d postgres -F ' ' -c "SELECT application_name, state, sync_state, current_setting('synchronous_commit') FROM pg_stat_replication")
    [ "$state" = "$want" ] && break
    sleep 0.1
done
echo "== replication: $state"
[ "$state" = "$want" ] || { echo "FAIL the standby is not '$want' but '$state'"; exit 1; }

# the load, against whichever server accepts writes
CONN="host=$TMP,$TMP port=$P1,$P2 user=postgres dbname=$DB target_session_attrs=read-write connect_timeout=2"
mkdir "$TMP/load"
for c in $(seq 1 "$CLIENTS"); do
    acked_client "$c" f "$CONN" "$TMP/load" 2>"$TMP/load/client.$c.err" &
    CLIENT_PIDS+=($!)
done
echo "== $CLIENTS clients, ${SECS}s on the primary, then the crash and ${SECS}s on the promoted standby"
sleep "$SECS"

if [ "$SELFTEST" = async ]; then
    kill -STOP "$(q $P1 -d postgres -c "SELECT pid FROM pg_stat_replication")"; sleep 1.5
else
    # the standby stops applying what it receives until every client waits
    # for it at commit (at most 5 s): at the crash the standby then holds
    # commits for which no client got an answer, which a retry with the same
    # key must find instead of applying again (a plain crash rarely hits
    # that window); promotion ends the pause and applies them
    q $P2 -d postgres -o /dev/null -c "SELECT pg_wal_replay_pause()"
    for _ in $(seq 1 50); do
        [ "$(q $P1 -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")" -ge "$CLIENTS" ] && break
        sleep 0.1
    done
fi
# the crash: the postmaster and every child at once, as a lost machine
pm=$(head -1 "$TMP/primary/postmaster.pid")
crash_us=$(now_us)
crash_at=$(date -u -d "@${crash_us:0:-6}.${crash_us: -6}" +%Y-%m-%dT%H:%M:%S.%6NZ)
kill -9 "$pm" $(pgrep -P "$pm") 2>/dev/null || true
$RUN "$PGBIN/pg_ctl" -D "$TMP/standby" promote -w -t 60 >/dev/null || { echo "FAIL pg_ctl promote"; exit 1; }
promoted_us=$(now_us)
# nothing of the old primary runs; its pid file must not make the clean-up
# signal whatever process gets that pid next
rm -f "$TMP/primary/postmaster.pid"
[ "$(q $P2 -d postgres -c "SELECT pg_is_in_recovery()")" = f ] || { echo "FAIL the standby is still in recovery"; exit 1; }
sleep "$SECS"
touch "$TMP/load/stop"
failed_clients=0
for p in "${CLIENT_PIDS[@]}"; do wait "$p" || failed_clients=$((failed_clients + 1)); done
CLIENT_PIDS=()
if [ $failed_clients -gt 0 ]; then
    cat "$TMP"/load/client.*.err
    echo "FAIL $failed_clients clients stopped on an error that is neither a documented refusal nor a lost connection"; exit 1
fi
# acknowledged by the old primary: before the crash; the first write of the
# new one: the first call acknowledged after more than one sending (every
# client's call after the crash is; before it none is)
before=$(cat "$TMP"/load/acks.[0-9]* | awk -F, -v c="$crash_us" '$4 <= c' | wc -l)
total=$(cat "$TMP"/load/acks.[0-9]* | wc -l)
resumed_us=$(cat "$TMP"/load/acks.[0-9]* | awk -F, '$3 > 1 && (m == "" || $4 < m) { m = $4 } END { if (m != "") printf "%.0f\n", m }')
promotion=$(awk -v a="$crash_us" -v b="$promoted_us" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
resumed=$(awk -v a="$crash_us" -v b="${resumed_us:-0}" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
echo "== $before calls acknowledged by the old primary, $((total - before)) by the new one; promotion took ${promotion}s (SIGKILL to pg_ctl promote -w done), first acknowledged write ${resumed}s after the SIGKILL"

echo "== check on the new primary"
ok=1
acked_check "host=$TMP port=$P2 user=postgres dbname=$DB" "$TMP/load" "$crash_at" || ok=0
fig() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$ACKED_FIGURES"; }
summary="acknowledged $(fig acked), lost $(fig lost), doubled $(fig doubled), verify rows $(fig verify), promotion ${promotion}s, retries answered from their key (committed, unanswered at the crash) $(fig retried_found); ${SECONDS}s in all"
if [ "$SELFTEST" = async ]; then
    if [ "$(fig lost)" -gt 0 ] 2>/dev/null; then
        echo "PASS failover self-test: under asynchronous replication the check finds what the crash lost ($summary)"; exit 0
    fi
    echo "FAIL failover self-test: asynchronous replication lost nothing the check could see ($summary)"; exit 1
fi
# the case the pause made: calls committed on the standby, unanswered
if [ "$(fig retried_found)" = 0 ]; then
    echo "FAIL failover: no call was on the standby unanswered at the crash, so no retry was answered from its key ($summary)"; exit 1
fi
if [ $ok = 1 ]; then echo "PASS failover: $summary"; exit 0; fi
echo "FAIL failover: $summary"; exit 1
