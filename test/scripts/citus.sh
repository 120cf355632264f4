#!/usr/bin/env bash
# Scale-out on Citus (issue 8): a throwaway 1-coordinator + 2-worker Citus
# cluster on loopback (initdb/pg_ctl in a temp dir), loyalty installed and
# distributed with loyalty.distribute(), then:
#   - distribute() without Citus fails with 55000 and changes nothing;
#   - the tables are reference / distributed (co-located) as documented;
#   - the write path through delegated top-level calls on members of both
#     workers (earn, idempotent replay, redeem, hold + capture, hold +
#     release, reverse, award, adjust), reads (balance, balance_at, history),
#     and a multi-statement transaction (routed from the coordinator);
#   - nothing written into the coordinator's shell tables, verify() clean;
#   - test/pgtap-citus/*.sql with pg_prove against the coordinator.
# Exits 77 with "SKIP: ..." when Citus is not installed for $PGBIN.
#
#   PGBIN        server binaries (default /usr/lib/postgresql/15/bin)
#   CITUS_PORT   first of three ports to use (default: three free ports from 54390)
set -uo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

if [ ! -e "$PGBIN/../lib/citus.so" ] && [ ! -e "$("$PGBIN/pg_config" --pkglibdir 2>/dev/null)/citus.so" ]; then
    echo "SKIP: Citus is not installed (no citus.so for $PGBIN)"
    exit 77
fi

# three free loopback ports
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -n "${CITUS_PORT:-}" ]; then
    PORT0=$CITUS_PORT
else
    PORT0=54390
    while ! { port_free $PORT0 && port_free $((PORT0 + 1)) && port_free $((PORT0 + 2)); }; do
        PORT0=$((PORT0 + 3))
        [ $PORT0 -gt 54990 ] && { echo "citus.sh: no free ports" >&2; exit 1; }
    done
fi

TMP=$(mktemp -d -t loyalty-citus.XXXXXX)
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
NODES="c w1 w2"
cleanup() {
    for n in $NODES; do
        [ -f "$TMP/$n/postmaster.pid" ] && $RUN "$PGBIN/pg_ctl" -D "$TMP/$n" -m immediate stop >/dev/null 2>&1
    done
    [ "${failed:-0}" != 0 ] && [ -n "${CITUS_DEBUG:-}" ] && tail -n 20 "$TMP"/*.log 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
port() { case $1 in c) echo $PORT0 ;; w1) echo $((PORT0 + 1)) ;; w2) echo $((PORT0 + 2)) ;; esac; }
qn() { local p=$1; shift; "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U postgres -d postgres "$@"; }
q() { qn "$PORT0" "$@"; }

OPTS="-c shared_preload_libraries=citus -c max_prepared_transactions=50 -c max_connections=60 -c fsync=off"
for n in $NODES; do
    $RUN "$PGBIN/initdb" -D "$TMP/$n" -U postgres -A trust >/dev/null || exit 1
    $RUN "$PGBIN/pg_ctl" -D "$TMP/$n" -w -t 60 -l "$TMP/$n.log" \
        -o "-p $(port $n) -k $TMP -c listen_addresses=127.0.0.1 $OPTS" start >/dev/null || { failed=1; exit 1; }
done
for n in $NODES; do qn "$(port $n)" -c "CREATE EXTENSION citus" || { failed=1; exit 1; }; done

failed=0
ok()  { echo "ok   $1"; }
bad() { echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/       /'; failed=1; }
check() { local out; if out=$(q -c "$2" 2>&1) && [ "$out" = t ]; then ok "$1"; else bad "$1" "$out"; fi; }

# --- without Citus: a database of the coordinator without the extension ----
q -c "CREATE DATABASE nocitus"
qn "$PORT0" -d nocitus -c "CREATE EXTENSION loyalty"
before=$(qn "$PORT0" -d nocitus -c "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
out=$("$PGBIN/psql" -X -q -A -t -h 127.0.0.1 -p "$PORT0" -U postgres -d nocitus \
      -c '\set VERBOSITY verbose' -c "SELECT count(*) FROM loyalty.distribute()" 2>&1)
after=$(qn "$PORT0" -d nocitus -c "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
if echo "$out" | grep -q 'ERROR: *55000' && [ "$before" = "$after" ]; then
    ok "without Citus distribute() fails with 55000 and changes nothing"
else bad "without Citus distribute() fails with 55000 and changes nothing" "$out"; fi

# --- the cluster --------------------------------------------------------------
q -o /dev/null <<SQL || { failed=1; exit 1; }
SELECT citus_set_coordinator_host('127.0.0.1', $PORT0);
SELECT citus_add_node('127.0.0.1', $((PORT0 + 1)));
SELECT citus_add_node('127.0.0.1', $((PORT0 + 2)));
CREATE EXTENSION loyalty;
SQL
echo "   $(q -c "SELECT citus_version()" | cut -d' ' -f1-2), loyalty $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'loyalty'")"
if out=$(q -c "SELECT count(*) FROM loyalty.distribute(shard_count => 8)" 2>&1); then
    ok "loyalty.distribute() on the coordinator ($out steps)"
else bad "loyalty.distribute() on the coordinator" "$out"; exit 1; fi
check "catalog tables are reference tables" \
    "SELECT count(*) = 5 FROM pg_dist_partition WHERE partmethod = 'n' AND logicalrelid::text IN
     ('loyalty.programs', 'loyalty.tiers', 'loyalty.earning_rules', 'loyalty.rewards', 'loyalty.event_kinds')"
check "per-member tables are distributed by member_id, co-located" \
    "SELECT count(*) >= 12 AND count(DISTINCT colocationid) = 1
            AND bool_and(column_to_column_name(logicalrelid, partkey) = 'member_id')
     FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
     WHERE c.relnamespace = 'loyalty'::regnamespace AND p.partmethod = 'h'
       AND c.relname NOT IN ('identities', 'referral_codes')"
check "no loyalty table is left local" \
    "SELECT count(*) = 0 FROM pg_class c WHERE c.relnamespace = 'loyalty'::regnamespace
       AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.oid NOT IN (SELECT logicalrelid FROM pg_dist_partition)"
check "the write API is registered as distributed functions (by member)" \
    "SELECT count(*) = 8 FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass
       AND o.distribution_argument_index = 0
       AND o.objid::regproc::text IN ('loyalty.earn', 'loyalty.award', 'loyalty.redeem', 'loyalty.hold',
           'loyalty.reverse', 'loyalty.adjust', 'loyalty.balance', 'loyalty.history')"
if out=$(q -c "SELECT count(*) FROM loyalty.distribute()" 2>&1); then bad "a second distribute() is refused" "$out"
else ok "a second distribute() is refused"; fi

# --- members on both workers, top-level (delegated) calls --------------------
N=12
P=$(q -c "SELECT loyalty.create_program('citus', expiry_period => interval '1 year')")
for i in $(seq 1 $N); do echo "SELECT loyalty.enroll($P, 'pos', 'card-$i');"; done >"$TMP/enroll.sql"
if q -f "$TMP/enroll.sql" >"$TMP/members" 2>"$TMP/err"; then ok "enroll $N members"; else bad "enroll" "$(cat "$TMP/err")"; fi
check "members are on both workers" \
    "SELECT count(DISTINCT n.nodeport) = 2 FROM loyalty.members m
     JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('loyalty.members', m.member_id)
     JOIN pg_dist_node n USING (groupid)"

# one script per member, every statement top-level (each is delegated)
for m in $(cat "$TMP/members"); do
    cat <<SQL
SELECT loyalty.earn($m, 100);
SELECT entry_id AS e FROM loyalty.ledger WHERE member_id = $m AND kind = 'earn' \gset
SELECT loyalty.earn($m, 50, idempotency_key => 'k-$m');
SELECT loyalty.earn($m, 50, idempotency_key => 'k-$m');
SELECT loyalty.redeem($m, '30');
SELECT loyalty.hold($m, '20') AS h \gset
SELECT loyalty.capture(:h, '15');
SELECT loyalty.hold($m, '10') AS h \gset
SELECT loyalty.release(:h);
SELECT loyalty.reverse($m, :e, points => '10');
SELECT loyalty.award($m, '5', 'goodwill');
SELECT loyalty.adjust($m, '-1', 'correction');
SELECT count(*) FROM loyalty.balance($m);
SELECT loyalty.balance_at($m, now());
SELECT count(*) FROM loyalty.history($m);
SQL
done >"$TMP/writes.sql"
t0=$(date +%s%N)
if q -o /dev/null -f "$TMP/writes.sql" 2>"$TMP/err"; then
    t1=$(date +%s%N)
    ok "earn, replay, redeem, hold/capture, hold/release, reverse, award, adjust, balance, balance_at, history on $N members ($(( (t1 - t0) / 15 / N / 1000 )) us per call)"
else bad "the write path on $N members" "$(head -20 "$TMP/err")"; fi
M1=$(head -1 "$TMP/members")
check "the idempotent replay wrote nothing twice" \
    "SELECT count(*) = $N FROM loyalty.ledger WHERE idempotency_key IS NOT NULL"
check "balances are as written (100 + 50 - 30 - 15 - 10 + 5 - 1 = 99 each)" \
    "SELECT bool_and(balance::bigint = 99) AND count(*) = $N FROM loyalty.accounts"
check "balance() agrees with the account" \
    "SELECT (b).available::bigint = 99 AND (b).held::bigint = 0 FROM (SELECT loyalty.balance($M1) b) x"
if out=$(q -c "BEGIN; SELECT loyalty.earn($M1, 10); SELECT loyalty.redeem($M1, '4'); COMMIT;" 2>&1); then
    ok "a multi-statement transaction (routed from the coordinator)"
else bad "a multi-statement transaction (routed from the coordinator)" "$out"; fi
check "after it: balance 105" "SELECT balance::bigint = 105 FROM loyalty.accounts WHERE member_id = $M1"
if out=$(q -c "SELECT loyalty.redeem($M1, '1000')" 2>&1); then bad "an overdraft is refused (LY001)" "$out"
else echo "$out" | grep -q 'insufficient points' && ok "an overdraft is refused on the worker" || bad "an overdraft is refused" "$out"; fi

# --- the books ----------------------------------------------------------------
check "loyalty.verify() returns no rows" "SELECT count(*) = 0 FROM loyalty.verify()"
check "nothing was written into the coordinator's shell tables" \
    "SELECT sum(pg_relation_size(('loyalty.' || t)::regclass)) = 0
     FROM unnest(ARRAY['ledger', 'lots', 'accounts', 'idempotency_keys', 'allocations', 'holds']) t"
check "ids from the workers' ranges are distinct" \
    "SELECT count(*) = count(DISTINCT entry_id) FROM loyalty.ledger"

# --- timing: delegated calls in one session, against the same calls on one node
timed() {   # label, database, sql file, calls
    local t0 t1
    t0=$(date +%s%N)
    if qn "$PORT0" -d "$2" -o /dev/null -f "$3" 2>"$TMP/err"; then
        t1=$(date +%s%N)
        echo "   $1: $(( (t1 - t0) / $4 / 1000 )) us per call"
    else bad "$1" "$(head -5 "$TMP/err")"; fi
}
CALLS=${CITUS_CALLS:-200}
mapfile -t M <"$TMP/members"
for i in $(seq 1 "$CALLS"); do echo "SELECT loyalty.earn(${M[$((i % N))]}, 10);"; done >"$TMP/earn.sql"
for i in $(seq 1 "$CALLS"); do echo "SELECT loyalty.redeem(${M[$((i % N))]}, '1');"; done >"$TMP/redeem.sql"
# balance() is slow under Citus (about 0.4 s a call, see README): fewer calls
for i in $(seq 1 $((CALLS / 10))); do echo "SELECT count(*) FROM loyalty.balance(${M[$((i % N))]});"; done >"$TMP/balance.sql"
for i in $(seq 1 $((CALLS / 4))); do echo "SELECT loyalty.capture(loyalty.hold(${M[$((i % N))]}, '1'));"; done >"$TMP/hold.sql"
timed "Citus, delegated earn" postgres "$TMP/earn.sql" "$CALLS"
timed "Citus, delegated redeem" postgres "$TMP/redeem.sql" "$CALLS"
timed "Citus, delegated balance" postgres "$TMP/balance.sql" $((CALLS / 10))
timed "Citus, hold (delegated) + capture (coordinator)" postgres "$TMP/hold.sql" $((CALLS / 4))
qn "$PORT0" -d nocitus -o /dev/null -c "SELECT loyalty.create_program('one node')" \
    -c "SELECT loyalty.enroll(1, 'pos', 'card-' || g) FROM generate_series(1, $N) g"
mapfile -t L < <(qn "$PORT0" -d nocitus -c "SELECT member_id FROM loyalty.members ORDER BY 1")
for i in $(seq 1 "$CALLS"); do echo "SELECT loyalty.earn(${L[$((i % N))]}, 10);"; done >"$TMP/earn1.sql"
timed "one node (same server, no Citus tables), earn" nocitus "$TMP/earn1.sql" "$CALLS"

# --- pgTAP ----------------------------------------------------------------------
if command -v pg_prove >/dev/null && [ -d "$ROOT/test/pgtap-citus" ]; then
    q -c "CREATE EXTENSION IF NOT EXISTS pgtap" >/dev/null 2>&1 ||
        bad "CREATE EXTENSION pgtap on the coordinator"
    for f in "$ROOT"/test/pgtap-citus/*.sql; do
        if PGHOST=127.0.0.1 PGPORT=$PORT0 PGUSER=postgres PGDATABASE=postgres \
            timeout 120 pg_prove -q "$f" >"$TMP/tap.out" 2>&1; then ok "pg_prove $(basename "$f")"
        else bad "pg_prove $(basename "$f")" "$(tail -30 "$TMP/tap.out")"; fi
    done
    check "loyalty.verify() still returns no rows" "SELECT count(*) = 0 FROM loyalty.verify()"
else
    echo "   (pg_prove or test/pgtap-citus missing: pgTAP files not run)"
fi

if [ $failed = 0 ]; then echo "citus.sh: all checks passed"; else echo "citus.sh: FAILED"; fi
exit $failed
