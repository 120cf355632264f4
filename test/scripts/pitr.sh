#!/usr/bin/env bash
# Point-in-time recovery: a server archiving its WAL (archive_command copies
# each segment to a temporary directory) and a base backup of it taken after
# the chaos load's setup; then the chaos load (test/load/chaos.sql, PITR_CLIENTS
# (4) pgbench clients) in three phases of PITR_SECONDS (4), with a mark between
# phases: no client running, the time (now()), a named restore point
# (pg_create_restore_point) and the books' row counts.  The backup is restored
# twice into new data directories, with recovery_target_time at mark A and
# with recovery_target_name at mark B; each restored server must hold exactly
# the books of its mark: every member's balance equals balance_at(member,
# mark) on the original, the row counts equal those taken at the mark, and
# verify() is empty.
#
# PITR_SELFTEST=1 shows that the comparison sees a difference: the first
# restore stops half-way through phase 2 instead, and passes only when the
# check finds balances and counts that differ from those of mark A.
#
# Runs its own servers in a temporary directory (listening only on Unix
# sockets there, so their ports cannot collide with another server's); needs
# no other server.  Stops them on exit, also on failure.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECS=${PITR_SECONDS:-4}
CLIENTS=${PITR_CLIENTS:-4}
SELFTEST=${PITR_SELFTEST:-}
P1=54395
P2=54396
DB=loyalty_pitr
for tool in initdb pg_ctl pg_basebackup pgbench psql; do
    [ -x "$PGBIN/$tool" ] || { echo "SKIP: $PGBIN/$tool is missing (PostgreSQL 15 server)"; exit 77; }
done

TMP=$(mktemp -d -t loyalty-pitr.XXXXXX)
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
cleanup() {
    set +e
    for d in "$TMP"/*/; do
        [ -f "$d/postmaster.pid" ] && $RUN "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1
    done
    [ -n "${PITR_DEBUG:-}" ] && tail -n 30 "$TMP"/*.log
    rm -rf "$TMP"
}
trap cleanup EXIT
q() { local port=$1; shift; "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP" -p "$port" -U postgres -d $DB "$@"; }
start() {   # data directory, port, more server options
    $RUN "$PGBIN/pg_ctl" -D "$TMP/$1" -o "-p $2 -k $TMP -c listen_addresses='' ${3:-}" -w -t 60 -l "$TMP/$1.log" start >/dev/null
}
stop() { $RUN "$PGBIN/pg_ctl" -D "$TMP/$1" -m fast stop >/dev/null; }
# what has to match at a mark: the rows of every table of the books
counts() {
    q "$1" -F ' ' -c "
        SELECT 'ledger ' || kind, count(*), sum(points::bigint) FROM loyalty.ledger GROUP BY kind
        UNION ALL SELECT 'lots', count(*), sum(remaining::bigint) FROM loyalty.lots
        UNION ALL SELECT 'allocations', count(*), sum(points::bigint) FROM loyalty.allocations
        UNION ALL SELECT 'holds ' || status, count(*), sum(points::bigint) FROM loyalty.holds GROUP BY status
        UNION ALL SELECT 'idempotency_keys', count(*), NULL FROM loyalty.idempotency_keys
        UNION ALL SELECT 'members ' || status, count(*), NULL FROM loyalty.members GROUP BY status
        UNION ALL SELECT 'accounts', count(*), sum(balance::bigint) FROM loyalty.accounts
        ORDER BY 1"
}
# the books at a mark, the time, on the original: balance_at of every member
balances_at() { q $P1 -F ' ' -v at="$1" <<<"SELECT member_id, loyalty.balance_at(member_id, :'at') FROM loyalty.members ORDER BY 1"; }
# every member's balance now, on a restored server
balances() { q "$1" -F ' ' -c "SELECT member_id, balance::bigint FROM loyalty.accounts ORDER BY 1"; }

$RUN "$PGBIN/initdb" -D "$TMP/primary" -U postgres -A trust >/dev/null
mkdir "$TMP/archive" && chown --reference="$TMP" "$TMP/archive"
cat >>"$TMP/primary/postgresql.conf" <<EOF
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $TMP/archive/%f && cp %p $TMP/archive/%f'
EOF
start primary $P1
"$PGBIN/psql" -X -q -h "$TMP" -p $P1 -U postgres -d postgres -c "CREATE DATABASE $DB"
q $P1 -o /dev/null -v pools=0 -f "$ROOT/test/load/setup.sql"
$RUN "$PGBIN/pg_basebackup" -d "host=$TMP port=$P1 user=postgres" -D "$TMP/base" -X none -c fast

phase() {
    "$PGBIN/pgbench" -h "$TMP" -p $P1 -U postgres -n -c "$CLIENTS" -j 2 -T "$SECS" \
        -f "$ROOT/test/load/chaos.sql" $DB >"$TMP/pgbench.log" 2>&1 ||
        { cat "$TMP/pgbench.log"; echo "FAIL phase $1: a client hit an undocumented error"; exit 1; }
    echo "== phase $1: $(sed -n 's/^number of transactions actually processed: //p' "$TMP/pgbench.log") calls"
}
mark() {   # name: a quiet moment (no client runs), its time and a restore point
    sleep 0.2
    q $P1 -c "SELECT now(), pg_create_restore_point('$1')" >/dev/null
    local at
    at=$(q $P1 -c "SELECT now()")
    counts $P1 >"$TMP/counts.$1"
    echo "$at" >"$TMP/at.$1"
    sleep 0.2
    echo "== mark $1 at $at: $(awk '$1 == "ledger" { n += $3 } END { print n }' "$TMP/counts.$1") ledger rows"
}
echo "== $CLIENTS clients, three phases of ${SECS}s"
phase 1
mark A
phase 2
mark B
phase 3
# the last segment goes to the archive too
last=$(q $P1 -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 100); do
    [ -f "$TMP/archive/$last" ] && break
    sleep 0.1
done
[ -f "$TMP/archive/$last" ] || { echo "FAIL WAL segment $last was not archived"; exit 1; }
echo "== $(ls "$TMP/archive" | wc -l) WAL segments archived"

# restore NAME PORT TARGET-SETTING: the base backup, recovered from the
# archive to the target, then promoted (read-write, as after a real restore)
restore() {
    cp -a "$TMP/base" "$TMP/$1"
    cat >>"$TMP/$1/postgresql.auto.conf" <<EOF
restore_command = 'cp $TMP/archive/%f %p'
$3
recovery_target_action = 'promote'
EOF
    touch "$TMP/$1/recovery.signal"
    # archive_mode off: the restored server must not write into the archive
    # another restore reads
    local t0=$EPOCHREALTIME
    start "$1" "$2" "-c archive_mode=off"
    for _ in $(seq 1 600); do
        [ "$(q "$2" -c "SELECT pg_is_in_recovery()")" = f ] && break
        sleep 0.1
    done
    [ "$(q "$2" -c "SELECT pg_is_in_recovery()")" = f ] || { echo "FAIL $1: still in recovery after 60 s"; exit 1; }
    echo "== restored $1 ($3) in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s: $(grep -m1 -o 'recovery stopping .*' "$TMP/$1.log" || echo 'no stop logged')"
}
fail=0
# check NAME PORT MARK: the restored books against those of the mark
check() {
    local bal cnt ver
    balances_at "$(cat "$TMP/at.$3")" >"$TMP/expected.$1"
    balances "$2" >"$TMP/got.$1"
    bal=$(diff "$TMP/expected.$1" "$TMP/got.$1" | grep -c '^>' || true)
    counts "$2" >"$TMP/counts.$1"
    cnt=$(diff "$TMP/counts.$3" "$TMP/counts.$1" | grep -c '^>' || true)
    ver=$(q "$2" -c "SELECT count(*) FROM loyalty.verify()")
    echo "   $1 against mark $3: members $(wc -l <"$TMP/got.$1"), balances other than balance_at(member, mark) on the original: $bal, row counts other than at the mark: $cnt, verify() rows: $ver"
    CHECKED="$bal $cnt $ver"
    if [ -z "$SELFTEST" ] && [ "$CHECKED" != "0 0 0" ]; then
        diff "$TMP/counts.$3" "$TMP/counts.$1" | head -20; diff "$TMP/expected.$1" "$TMP/got.$1" | head -10
        fail=1
    fi
}

if [ -n "$SELFTEST" ]; then
    # half-way through phase 2: commits after mark A are restored
    halfway=$(q $P1 -v a="$(cat "$TMP/at.A")" -v b="$(cat "$TMP/at.B")" <<<"SELECT :'a'::timestamptz + (:'b'::timestamptz - :'a'::timestamptz) / 2")
    restore by_time $P2 "recovery_target_time = '$halfway'"
    check by_time $P2 A
    read -r bal cnt _ <<<"$CHECKED"
    if [ "$bal" -gt 0 ] && [ "$cnt" -gt 0 ]; then
        echo "PASS pitr self-test: a restore to half-way through phase 2 differs from mark A in $bal balances and $cnt row counts"; exit 0
    fi
    echo "FAIL pitr self-test: a restore to half-way through phase 2 looks like mark A"; exit 1
fi

restore by_time $P2 "recovery_target_time = '$(cat "$TMP/at.A")'"
check by_time $P2 A
stop by_time
restore by_name $P2 "recovery_target_name = 'B'"
check by_name $P2 B
if [ $fail = 0 ]; then
    echo "PASS pitr: restores to mark A (recovery_target_time) and mark B (recovery_target_name) hold the books of their mark: balances = balance_at, row counts equal, verify() empty"
    exit 0
fi
echo "FAIL pitr: a restored server does not hold the books of its mark"; exit 1
