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
#   - expiry: back-dated lots on both workers, expire_points() from the
#     coordinator in batches, the accounts' expiry bounds, notify_expiring();
#   - rule and tier changes after distribute() (every copy of programs bumped,
#     the workers' rule caches follow), tiers on the worker, reward vouchers,
#     referrals and merges across workers, two concurrent event consumers,
#     the BI views;
#   - tier reviews: review_tiers() in batches of 3 and review_member_tier() on
#     members of both workers in every state, compared with the same data in
#     a database without Citus;
#   - calls over a set outside a transaction block, as operations.md
#     recommends: over generate_series and a local staging table,
#     earn_batch over the array_agg of loyalty.members, import_orders from a
#     distributed and from a local table;
#   - test/pgtap-citus/*.sql with pg_prove against the coordinator.
# Exits 77 with "SKIP: ..." when Citus is not installed for $PGBIN.
#
#   PGBIN        server binaries (default /usr/lib/postgresql/15/bin)
#   CITUS_PORT   first of three ports to use (default: three free ports just below the
#                kernel's ephemeral port range)
set -uo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

if [ ! -e "$PGBIN/../lib/citus.so" ] && [ ! -e "$("$PGBIN/pg_config" --pkglibdir 2>/dev/null)/citus.so" ]; then
    echo "SKIP: Citus is not installed (no citus.so for $PGBIN)"
    exit 77
fi

# Three free loopback ports, below the kernel's ephemeral range: a port in
# that range can be a client socket's local port (psql, pgbench, libpq of
# an earlier test), which no connect probe sees but which makes the
# server's bind fail with "Address already in use".  A port counts as free
# when no socket of any state has it as its local port.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
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
if [ -n "${CITUS_PORT:-}" ]; then
    PORT0=$CITUS_PORT
else
    PORT0=$((EPHEMERAL_LOW > 30000 ? EPHEMERAL_LOW - 3000 : 20000))
    LAST=$((PORT0 + 900))
    while ! { port_free $PORT0 && port_free $((PORT0 + 1)) && port_free $((PORT0 + 2)); }; do
        PORT0=$((PORT0 + 3))
        [ $PORT0 -gt $LAST ] && { echo "citus.sh: no free ports" >&2; exit 1; }
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
        -o "-p $(port $n) -k $TMP -c listen_addresses=127.0.0.1 $OPTS" start >/dev/null \
        || { echo "citus.sh: node $n (port $(port $n)) did not start:" >&2; tail -n 20 "$TMP/$n.log" >&2; failed=1; exit 1; }
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
check "the account rollups: per member distributed with the members, per program reference tables" \
    "SELECT count(*) = 7
            AND bool_and(CASE WHEN logicalrelid::text IN ('loyalty.rollup_account_sums', 'loyalty.rollup_account_days',
                                                          'loyalty.rollup_rfm_counts', 'loyalty.rollup_member_mix')
                              THEN partmethod = 'n'
                              ELSE partmethod = 'h' AND column_to_column_name(logicalrelid, partkey) = 'member_id'
                                   AND colocationid = (SELECT colocationid FROM pg_dist_partition
                                                       WHERE logicalrelid = 'loyalty.members'::regclass) END)
     FROM pg_dist_partition WHERE logicalrelid::text IN ('loyalty.rollup_accounts', 'loyalty.rollup_vesting',
         'loyalty.account_changes', 'loyalty.rollup_account_sums', 'loyalty.rollup_account_days',
         'loyalty.rollup_rfm_counts', 'loyalty.rollup_member_mix')"
check "no loyalty table is left local" \
    "SELECT count(*) = 0 FROM pg_class c WHERE c.relnamespace = 'loyalty'::regnamespace
       AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.oid NOT IN (SELECT logicalrelid FROM pg_dist_partition)"
# earn in both its forms (numeric and double precision amounts)
check "the write API is registered as distributed functions (by member)" \
    "SELECT count(*) = 9 FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass
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
for i in $(seq 1 "$CALLS"); do echo "SELECT count(*) FROM loyalty.balance(${M[$((i % N))]});"; done >"$TMP/balance.sql"
for i in $(seq 1 $((CALLS / 4))); do echo "SELECT loyalty.capture(loyalty.hold(${M[$((i % N))]}, '1'));"; done >"$TMP/hold.sql"
timed "Citus, delegated earn" postgres "$TMP/earn.sql" "$CALLS"
timed "Citus, delegated redeem" postgres "$TMP/redeem.sql" "$CALLS"
timed "Citus, balance" postgres "$TMP/balance.sql" "$CALLS"
timed "Citus, hold (delegated) + capture (coordinator)" postgres "$TMP/hold.sql" $((CALLS / 4))
qn "$PORT0" -d nocitus -o /dev/null -c "SELECT loyalty.create_program('one node')" \
    -c "SELECT loyalty.enroll(1, 'pos', 'card-' || g) FROM generate_series(1, $N) g"
mapfile -t L < <(qn "$PORT0" -d nocitus -c "SELECT member_id FROM loyalty.members ORDER BY 1")
for i in $(seq 1 "$CALLS"); do echo "SELECT loyalty.earn(${L[$((i % N))]}, 10);"; done >"$TMP/earn1.sql"
timed "one node (same server, no Citus tables), earn" nocitus "$TMP/earn1.sql" "$CALLS"

# --- catalog changes after distribute() ---------------------------------------
# the rules-version trigger fires on every node's copy of earning_rules and
# tiers (reference tables) and bumps that node's copy of programs
W1=$((PORT0 + 1)); W2=$((PORT0 + 2))
node_of() {   # member -> port of the worker holding it
    q -c "SELECT n.nodeport FROM pg_dist_placement pl JOIN pg_dist_node n USING (groupid)
          WHERE pl.shardid = get_shard_id_for_distribution_column('loyalty.members', $1::bigint)"
}
fresh_on() {  # external-id prefix, port -> a new member of program $P on that worker
    local i m
    for i in $(seq 1 60); do
        m=$(q -c "SELECT loyalty.enroll($P, 'pos', '$1-$i')") || return 1
        [ "$(node_of "$m")" = "$2" ] && { echo "$m"; return 0; }
    done
    return 1
}
versions() {  # program's rules_version on every placement of programs, as "v v v"
    q -c "SELECT string_agg(result, ' ' ORDER BY nodeport) FROM run_command_on_placements('loyalty.programs',
          'SELECT rules_version FROM %s WHERE program_id = $P')"
}
EA=$(fresh_on rules-a $W1); EB=$(fresh_on rules-b $W2)
v0=$(versions)
# one session: its connections to the workers (and their rules caches) stay
if out=$(q 2>&1 <<SQL
SELECT loyalty.earn($EA, 10);
SELECT loyalty.earn($EB, 10);
SELECT loyalty.create_earning_rule($P, 'double', 'multiply', multiplier => 2) AS r \gset
SELECT loyalty.earn($EA, 10);
SELECT loyalty.earn($EB, 10);
SELECT loyalty.set_earning_rule_active(:r, false);
SELECT loyalty.earn($EA, 10);
SELECT loyalty.earn($EB, 10);
SQL
) &&
   [ "$(echo "$out" | grep -v '^$' | tr '\n' ' ')" = "10 10 20 20 10 10 " ]; then
    ok "create_earning_rule() and set_earning_rule_active() after distribute(); earns on both workers follow at once (10, x2, off)"
else bad "create_earning_rule() and set_earning_rule_active() after distribute()" "$out"; fi
if out=$(q -c "SELECT loyalty.set_tier_policy($P, 'spend')" -c "SELECT loyalty.define_tier($P, 1, 'Silver', 100)" \
           -c "SELECT loyalty.define_tier($P, 2, 'Gold', 1000000, earn_multiplier => 2)" \
           -c "UPDATE loyalty.tiers SET threshold = 40 WHERE program_id = $P AND rank = 1" 2>&1); then
    ok "define_tier() and a direct UPDATE of loyalty.tiers after distribute()"
else bad "define_tier() and a direct UPDATE of loyalty.tiers after distribute()" "$out"; fi
v1=$(versions)
if [ "$(echo "$v0" | wc -w)" = 3 ] && [ "$v1" = "$(for v in $v0; do printf '%s ' $((v + 5)); done | sed 's/ $//')" ]; then
    ok "each of the 5 changes bumped rules_version once on every copy of programs ($v0 -> $v1)"
else bad "rules_version bumped once per change on every copy of programs" "before: $v0, after: $v1"; fi
q -o /dev/null -c "SELECT loyalty.earn($EA, 10)" -c "SELECT loyalty.earn($EB, 10)"
check "their next earn (40 spent) qualifies both members for Silver (tier_after_write on the worker)" \
    "SELECT count(*) = 0 FROM loyalty.accounts WHERE member_id IN ($EA, $EB) AND (tier IS NULL OR tier::text <> '1:Silver')"
if out=$(q -c "SELECT tier::text || ' ' || value FROM loyalty.evaluate_tier($EB)" 2>&1) && [ "$out" = "1:Silver 40" ]; then
    ok "evaluate_tier() (delegated)"
else bad "evaluate_tier() (delegated)" "$out"; fi

# --- rewards: vouchers ------------------------------------------------------------
RW=$(q -c "SELECT loyalty.create_reward($P, 'PEN', 'Pen', '5')")
RS=$(q -c "SELECT loyalty.create_reward($P, 'MUG', 'Mug', '5', stock => 10)")
if out=$(q -c "SELECT voucher FROM loyalty.redeem_reward($EA, $RW, 'rk-1')" -c "SELECT voucher FROM loyalty.redeem_reward($EA, $RW, 'rk-1')" \
           -c "SELECT loyalty.redeem_reward($EB, $RS)" 2>&1) &&
   [ "$(echo "$out" | sed -n 1p)" = "$(echo "$out" | sed -n 2p)" ] &&
   echo "$out" | head -1 | grep -Eq "^$(printf '%X' "$EA")-[0-9A-F]{16}$"; then
    ok "redeem_reward() on both workers (delegated): the voucher starts with the member id, a replay returns it"
else bad "redeem_reward() on both workers" "$out"; fi
check "the stocked reward lost one unit (a reference table written from a worker)" \
    "SELECT stock = 9 FROM loyalty.rewards WHERE reward_id = $RS"

# --- coupons: top-level calls are delegated to the member's worker -------------------
q -o /dev/null -c "SELECT loyalty.create_coupon_campaign($P, 'shard-once', 'amount_off', 5, code => 'SHONCE', uses_per_member => 1)"
if out=$(q -c "SELECT loyalty.redeem_coupon($EA, 'SHONCE', 20, reference => 'sh-1', idempotency_key => 'sh-k1') > 0" \
           -c "SELECT loyalty.redeem_coupon($EA, 'SHONCE', 20, reference => 'sh-1', idempotency_key => 'sh-k1') > 0" \
           -c "SELECT loyalty.validate_coupon($EA, 'SHONCE', 20) ->> 'reason'" \
           -c "SELECT loyalty.capture_coupon($EB, loyalty.redeem_coupon($EB, 'SHONCE', 20, reference => 'sh-2'))" 2>&1) &&
   [ "$(echo $out)" = "t t member_limit 0" ]; then
    ok "redeem_coupon(), its replay, validate_coupon() and capture_coupon() on both workers (delegated)"
else bad "redeem_coupon() and capture_coupon() on both workers (delegated)" "$out"; fi

# --- referrals ----------------------------------------------------------------------
q -o /dev/null -c "SELECT loyalty.set_referral_rules($P, '50', '20')"
RA=$(fresh_on ref-a $W1); RB=$(fresh_on ref-b $W2); RC=$(fresh_on ref-c $W1)
CA=$(q -c "SELECT loyalty.referral_code($RA)"); CB=$(q -c "SELECT loyalty.referral_code($RB)"); CC=$(q -c "SELECT loyalty.referral_code($RC)")
if out=$(q -c "SELECT loyalty.refer($RB, '$CA')" -c "SELECT loyalty.refer($RC, '$CB')" 2>&1) &&
   [ "$(echo "$out" | tr '\n' ' ')" = "$RA $RB " ]; then
    ok "refer() across workers (delegated): A refers B, B refers C"
else bad "refer() across workers" "$out"; fi
if out=$(q -c "SELECT loyalty.refer($RA, '$CC')" 2>&1); then bad "a referral loop over two workers is refused" "$out"
elif echo "$out" | grep -q "member $RA is in the referral chain of member $RC"; then
    ok "a referral loop over two workers is refused (C's chain: B, then A)"
else bad "a referral loop over two workers is refused" "$out"; fi
q -o /dev/null -c "SELECT loyalty.earn($RB, 100)"
check "B's first purchase paid both bonuses (B on one worker, A on the other)" \
    "SELECT (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = $RA) = 50
        AND (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = $RB) = 120"

# --- household pools: an earn delegated to the earner's worker feeds a pool on the other
q -o /dev/null -c "SELECT loyalty.set_household_rules($P, pool_share => 0.5)"
HP=""
for i in $(seq 1 20); do
    HA=$(fresh_on pool-a-$i $W1)
    HH=$(q -c "SELECT loyalty.start_household($HA)")
    HP=$(q -c "SELECT pool_member FROM loyalty.households WHERE household_id = $HH")
    [ "$(node_of "$HP")" = "$W2" ] && break
    HP=""
done
if [ -z "$HP" ]; then bad "a household whose pool is on the other worker" "none in 20 tries"
elif out=$(q -c "SELECT loyalty.earn($HA, 100, reference => 'pool-1')" -c "SELECT loyalty.refund($HA, 'pool-1', 50)" 2>&1) &&
     [ "$(echo "$out" | tr '\n' ' ')" = "100 50 " ]; then
    ok "earn() and refund() delegated to the earner's worker, the pool on the other"
else bad "earn() and refund() with the pool on the other worker" "$out"; fi
[ -n "$HP" ] && check "the pool got half the earn and gave half of that back" \
    "SELECT (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = $HP) = 25
        AND (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = $HA) = 50"
q -o /dev/null -c "SELECT loyalty.set_household_rules($P)"

# --- coupons: redeem_coupon delegated to the member's worker; codes are a reference table
q -o /dev/null -c "SELECT loyalty.create_coupon_campaign($P, 'citus-once', 'bonus_points', 5, code => 'CITUSONE', uses_per_code => 1)"
CA=$(fresh_on coupon-a $W1); CB=$(fresh_on coupon-b $W2)
if out=$(R=$(q -c "SELECT loyalty.redeem_coupon($CA, 'citusone')") && q -c "SELECT loyalty.capture_coupon($CA, $R)" 2>&1) &&
   [ "$out" = 5 ]; then
    ok "redeem_coupon() and capture_coupon() on a worker: 5 points"
else bad "redeem_coupon() and capture_coupon() on a worker" "$out"; fi
if out=$(q -c "SELECT loyalty.redeem_coupon($CB, 'CITUSONE')" 2>&1); then bad "the single-use code is used up on the other worker" "$out"
elif echo "$out" | grep -q "coupon cannot be used: used up"; then ok "the single-use code is used up, seen from the other worker"
else bad "the single-use code is used up on the other worker" "$out"; fi

# --- merge_members across workers ---------------------------------------------------
MS=$(fresh_on merge-s $W1); MA=$(fresh_on merge-a $W2)
q -o /dev/null -c "SELECT loyalty.earn($MS, 30)" -c "SELECT loyalty.earn($MA, 12)"
if out=$(q -c "SELECT loyalty.merge_members($MS, $MA, 'mk-1')" -c "SELECT loyalty.merge_members($MS, $MA, 'mk-1')" 2>&1) &&
   [ "$(echo "$out" | tr '\n' ' ')" = "12 12 " ]; then
    ok "merge_members() of members on two workers, and its replay"
else bad "merge_members() of members on two workers" "$out"; fi
check "after the merge: survivor 42, absorbed closed with 0, its identity moved" \
    "SELECT (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = $MS) = 42
        AND (SELECT balance::bigint = 0 AND status = 'closed' FROM loyalty.accounts WHERE member_id = $MA)
        AND (SELECT member_id FROM loyalty.identities WHERE external_id LIKE 'merge-a-%' AND member_id = $MS) IS NOT NULL"

# --- the outbox: claim_events() and ack_events() ------------------------------------
pending=$(q -c "SELECT count(*) FROM loyalty.events WHERE acked_at IS NULL AND claimed_at IS NULL")
# consumer 1 claims 3 events and keeps them locked for 4 s; consumer 2 claims
# everything meanwhile: it must skip consumer 1's rows without waiting
( q -c "BEGIN" -c "SELECT count(*) FROM loyalty.claim_events(3, 'c1')" -c "SELECT pg_sleep(4)" -c "COMMIT" \
    >"$TMP/c1.out" 2>&1 ) &
c1=$!
sleep 1.5
t0=$(date +%s%N)
out2=$(q -c "SELECT count(*) FROM loyalty.claim_events(1000000, 'c2')" 2>&1)
t1=$(date +%s%N)
wait $c1
if [ "$(grep -v '^$' "$TMP/c1.out" | head -1)" = 3 ] && [ "$out2" = $((pending - 3)) ] && [ $(( (t1 - t0) / 1000000 )) -lt 2500 ]; then
    ok "claim_events(): two consumers at once, the second skips the first's locked rows ($pending pending: 3 + $out2, $(( (t1 - t0) / 1000000 )) ms)"
else bad "claim_events(): two consumers at once" "pending $pending, c1: $(cat "$TMP/c1.out"), c2: $out2, $(( (t1 - t0) / 1000000 )) ms"; fi
check "every pending event was claimed once, by one of them" \
    "SELECT count(*) FILTER (WHERE claimed_by = 'c1') = 3 AND count(*) FILTER (WHERE claimed_by = 'c2') = $((pending - 3))
            AND count(*) FILTER (WHERE claimed_at IS NULL) = 0
     FROM loyalty.events WHERE acked_at IS NULL"
if out=$(q -c "SELECT loyalty.ack_events(ARRAY(SELECT event_id FROM loyalty.events WHERE claimed_by IN ('c1', 'c2')))" \
           -c "SELECT count(*) FROM loyalty.claim_events(100, 'c3', interval '0')" 2>&1) &&
   [ "$(echo "$out" | tr '\n' ' ')" = "$pending 0 " ]; then
    ok "ack_events() acknowledges them all; nothing is handed out again"
else bad "ack_events()" "$out"; fi

# --- the BI views -------------------------------------------------------------------
# a stored model (the CDNOW estimates), so that the prediction views compute
# through loyalty.predict_purchases on the cluster
q -o /dev/null -c "INSERT INTO loyalty.models (program_id, calibration_end, time_unit, bgnbd, mbgnbd, purchase_model)
                   VALUES ($P, current_date, 'week', ROW(0.243, 4.414, 0.793, 2.426, -9582.4, 2357),
                           ROW(0.525, 6.183, 0.891, 1.614, -9582.1, 2357), 'mbgnbd')"
check "member_predictions: every buyer of the program predicted with MBG/NBD, the model stored as in use" \
    "SELECT count(*) > 0 AND bool_and(p_alive > 0 AND p_alive < 1 AND purchase_model = 'mbgnbd' AND prediction_failure IS NULL)
     FROM loyalty.member_predictions WHERE program_id = $P"
for v in kpi_daily kpi_monthly kpi_summary tier_distribution channel_distribution member_mix cohort_retention \
         reward_popularity member_rfm segment_summary rfm_segment_map member_predictions churn_risk \
         transfers consent_summary membership_kpis household_summary coupon_performance \
         membership_retention membership_plan_retention; do
    if out=$(q -c "SELECT count(*) FROM loyalty.$v" 2>&1); then echo "ok   view loyalty.$v ($out rows)"
    else bad "view loyalty.$v" "$out"; fi
done
if out=$(q -c "CALL loyalty.refresh_rollups()" 2>&1); then bad "refresh_rollups() is refused on a cluster" "it ran: $out"
elif echo "$out" | grep -q 'cannot be refreshed on a Citus cluster'; then ok "refresh_rollups() is refused on a cluster (ids are drawn per node)"
else bad "refresh_rollups() is refused on a cluster" "$out"; fi
check "channel_distribution (no rollups: from the ledger) counts every purchase" \
    "SELECT (SELECT sum(purchases) FROM loyalty.channel_distribution) = (SELECT count(*) FROM loyalty.ledger WHERE kind = 'earn')"
check "kpi_summary counts the program's open members (no household pool) and outstanding points (pools too)" \
    "SELECT k.members = (SELECT count(*) FROM loyalty.accounts WHERE program_id = $P AND status NOT IN ('closed', 'pool'))
        AND k.points_outstanding = (SELECT sum(balance::bigint) FROM loyalty.accounts WHERE program_id = $P AND status <> 'closed')
     FROM loyalty.kpi_summary k WHERE k.program_id = $P"
check "tier_distribution counts the program's open members per tier (from the accounts)" \
    "SELECT (SELECT array_agg(tier || ':' || members ORDER BY tier) FROM loyalty.tier_distribution WHERE program_id = $P)
            = (SELECT array_agg(t || ':' || n ORDER BY t) FROM (SELECT coalesce(loyalty.tier_name(tier), 'none') AS t, count(*) AS n
                FROM loyalty.accounts WHERE program_id = $P AND status NOT IN ('closed', 'pool') GROUP BY 1) x)"
check "no account change is recorded on a cluster (tiers reached, members merged away: nothing would delete them)" \
    "SELECT (SELECT count(*) FROM loyalty.account_changes) = 0
            AND (SELECT count(*) FROM loyalty.accounts WHERE status = 'closed') > 0
            AND (SELECT count(*) FROM loyalty.accounts WHERE tier IS NOT NULL) > 0"

# --- expiry: the account's bound, the batch job and notices on the cluster --------
# (the members of the first section: on both workers, checked there)
for m in $(cat "$TMP/members"); do
    echo "SELECT loyalty.earn($m, 7, occurred_at => now() - interval '400 days');"
done >"$TMP/exp.sql"
if q -o /dev/null -f "$TMP/exp.sql" 2>"$TMP/err"; then ok "back-dated earns (expired a month ago) on $N members"
else bad "back-dated earns" "$(cat "$TMP/err")"; fi
MS=$(paste -sd, "$TMP/members")
check "each account's expiry bound is its expired lot's (written on the worker)" \
    "SELECT bool_and(next_expiry_at < now()) AND count(*) = $N FROM loyalty.accounts WHERE member_id IN ($MS)"
q -A -t -c "SELECT member_id, balance::bigint FROM loyalty.accounts WHERE member_id IN ($MS) ORDER BY 1" >"$TMP/pre_exp"
if out=$(q -c "CALL loyalty.expire_points(batch_size => 5)" 2>&1); then ok "expire_points() on the coordinator, in batches of 5"
else bad "expire_points() on the coordinator" "$out"; fi
q -A -t -c "SELECT member_id, balance::bigint + 7 FROM loyalty.accounts WHERE member_id IN ($MS) ORDER BY 1" >"$TMP/post_exp"
if diff -q "$TMP/pre_exp" "$TMP/post_exp" >/dev/null; then ok "it wrote off the 7 expired points of each member"
else bad "it wrote off the 7 expired points of each member" "$(diff "$TMP/pre_exp" "$TMP/post_exp" | head)"; fi
check "each bound moved past now (to the member's next lot, or none)" \
    "SELECT bool_and(next_expiry_at IS NULL OR next_expiry_at > now()) FROM loyalty.accounts WHERE member_id IN ($MS)"
check "no member is left for the expiry job" "SELECT count(*) = 0 FROM loyalty.accounts WHERE next_expiry_at <= now()"
check "notify_expiring() finds members through their bounds" "SELECT loyalty.notify_expiring(interval '400 days', 1000) > 0"
check "... one notice per account with points expiring (a household pool's to its owner)" \
    "SELECT (SELECT count(*) FROM loyalty.events WHERE kind = 'points.expiring')
          = (SELECT count(DISTINCT (member_id, payload ->> 'household')) FROM loyalty.events WHERE kind = 'points.expiring')
        AND (SELECT count(*) FROM loyalty.events WHERE kind = 'points.expiring')
          = (SELECT count(*) FROM loyalty.accounts WHERE next_expiry_at IS NOT NULL)"
check "loyalty.verify() still returns no rows" "SELECT count(*) = 0 FROM loyalty.verify()"

# --- tier reviews: review_tiers() and review_member_tier() -----------------------
# The same members and states in the cluster and in the plain database
# (nocitus): review_tiers() (batches of 3, member by member on Citus) and
# review_member_tier() must leave the same tiers, grace ends, history and
# tier.changed events.  Program 1 (spend; Silver 100, Gold 500, Platinum 2000;
# 30 days' grace, one step down) and program 2 (same ladder, no grace, down to
# the qualified tier); member: label spend tier grace_until lock status
TIER_MEMBERS="
1 up-none 600 - - - -
1 up-silver 600 1:Silver - - -
1 up-keep 600 2:Gold - - -
1 clear-grace 150 1:Silver past - -
1 start-grace 150 3:Platinum - - -
1 grace-runs 150 3:Platinum future - -
1 step-down 150 3:Platinum past - -
1 step-to-none 0 1:Silver past - -
1 locked 0 2:Gold - future -
1 closed 0 1:Silver past - closed
1 none-none 0 - - - -
2 q-down 150 3:Platinum - - -
2 q-none 0 2:Gold - - -
2 q-up 600 - - - -
2 q-keep 600 2:Gold past - -"
AS_OF=$(date -u -d '+1 hour' '+%Y-%m-%d %H:%M:%S+00')
tier_setup() {   # database -> "label member_id" lines
    local db=$1 p1 p2 prog label spend tier grace lock status m
    p1=$(qn "$PORT0" -d "$db" -c "SELECT loyalty.create_program('tiers one step')") || return 1
    p2=$(qn "$PORT0" -d "$db" -c "SELECT loyalty.create_program('tiers to qualified')") || return 1
    qn "$PORT0" -d "$db" -o /dev/null \
        -c "SELECT loyalty.set_tier_policy($p1, 'spend', grace => interval '30 days')" \
        -c "SELECT loyalty.set_tier_policy($p2, 'spend', downgrade => 'to_qualified')" \
        -c "SELECT loyalty.define_tier(p, 1, 'Silver', 100), loyalty.define_tier(p, 2, 'Gold', 500),
                   loyalty.define_tier(p, 3, 'Platinum', 2000) FROM unnest(ARRAY[$p1, $p2]) p" || return 1
    echo "P $p1"
    echo "$TIER_MEMBERS" | while read -r prog label spend tier grace lock status; do
        [ -z "$prog" ] && continue
        [ "$prog" = 1 ] && prog=$p1 || prog=$p2
        m=$(qn "$PORT0" -d "$db" -c "SELECT loyalty.enroll($prog, 'pos', 'tier-$label')") || return 1
        [ "$spend" != 0 ] && { qn "$PORT0" -d "$db" -o /dev/null -c "SELECT loyalty.earn($m, $spend)" || return 1; }
        qn "$PORT0" -d "$db" -o /dev/null -c "UPDATE loyalty.accounts SET
            tier = $([ "$tier" = - ] && echo NULL || echo "'$tier'"),
            tier_grace_until = $(case $grace in past) echo "'$AS_OF'::timestamptz - interval '1 day'" ;;
                                                 future) echo "'$AS_OF'::timestamptz + interval '5 days'" ;; *) echo NULL ;; esac),
            tier_locked_until = $([ "$lock" = future ] && echo "'infinity'" || echo NULL)
            WHERE member_id = $m" || return 1
        [ "$status" = closed ] && { qn "$PORT0" -d "$db" -o /dev/null -c "SELECT loyalty.set_member_status($m, 'closed')" || return 1; }
        echo "$label $m"
    done
}
tier_state() {   # database, map file -> one line per member: label, tier, grace end, history, events
    local label m
    grep -v '^P ' "$2" | while read -r label m; do
        qn "$PORT0" -d "$1" -c "SELECT '$label', a.tier, a.tier_grace_until - '$AS_OF'::timestamptz, a.tier_locked_until,
            (SELECT string_agg(coalesce(h.from_tier::text, '-') || '>' || coalesce(h.to_tier::text, '-') || ' ' || h.reason, '; ' ORDER BY h.changed_at, h.change_id)
             FROM loyalty.tier_history h WHERE h.member_id = $m),
            (SELECT string_agg(e.payload::text, '; ' ORDER BY e.created_at, e.event_id) FROM loyalty.events e
             WHERE e.member_id = $m AND e.kind = 'tier.changed')
            FROM loyalty.accounts a WHERE a.member_id = $m"
    done
}
tier_review() {  # database, map file -> runs the reviews, prints what they return
    local p1 m
    p1=$(grep '^P ' "$2" | cut -d' ' -f2)
    qn "$PORT0" -d "$1" -c "CALL loyalty.review_tiers($p1, '$AS_OF', batch_size => 3)" 2>&1 | grep -v 'NOTICE' || true
    for l in q-down q-none q-up q-keep; do
        m=$(grep "^$l " "$2" | cut -d' ' -f2)
        qn "$PORT0" -d "$1" -c "SELECT '$l', loyalty.review_member_tier($m, '$AS_OF')" 2>&1
    done
}
if tier_setup postgres >"$TMP/tmap_c" 2>"$TMP/err" && tier_setup nocitus >"$TMP/tmap_1" 2>>"$TMP/err"; then
    ok "tier programs and $(echo "$TIER_MEMBERS" | grep -c .) members in each state, in the cluster and in the plain database"
else bad "tier members" "$(cat "$TMP/err")"; fi
TM1=$(grep -v '^P ' "$TMP/tmap_c" | grep '^[a-z-]* ' | head -11 | cut -d' ' -f2 | paste -sd,)
check "the program's members are on both workers" \
    "SELECT count(DISTINCT n.nodeport) = 2 FROM loyalty.members m
     JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('loyalty.members', m.member_id)
     JOIN pg_dist_node n USING (groupid) WHERE m.member_id IN ($TM1)"
tier_state postgres "$TMP/tmap_c" >"$TMP/tier_before"
tier_review postgres "$TMP/tmap_c" >"$TMP/trev_c"
tier_review nocitus "$TMP/tmap_1" >"$TMP/trev_1"
if diff "$TMP/trev_c" "$TMP/trev_1" >/dev/null && ! grep -q ERROR "$TMP/trev_c"; then
    ok "review_tiers(batch_size => 3) on the coordinator and review_member_tier() run, and return what they return without Citus"
else bad "review_tiers() and review_member_tier() on the cluster" "$(diff "$TMP/trev_c" "$TMP/trev_1" | head -20)"; fi
tier_state postgres "$TMP/tmap_c" >"$TMP/tier_c"
tier_state nocitus "$TMP/tmap_1" >"$TMP/tier_1"
if diff "$TMP/tier_c" "$TMP/tier_1" >/dev/null && ! diff -q "$TMP/tier_before" "$TMP/tier_c" >/dev/null; then
    ok "tiers, grace ends, locks, tier_history and tier.changed events equal the plain install's"
else bad "tiers, history and events equal the plain install's" "$(diff "$TMP/tier_c" "$TMP/tier_1" | head -30)"; fi
tier_is() { grep -q "^$1|$2|" "$TMP/tier_c" && ok "  $1: $2" || bad "  $1: $2" "$(grep "^$1|" "$TMP/tier_c")"; }
tier_is up-none 2:Gold; tier_is up-silver 2:Gold; tier_is up-keep 2:Gold; tier_is clear-grace "1:Silver|"
tier_is start-grace "3:Platinum|30 days"; tier_is grace-runs "3:Platinum|5 days"; tier_is step-down "2:Gold|"
tier_is step-to-none "|"; tier_is locked 2:Gold; tier_is closed 1:Silver; tier_is q-down "1:Silver"; tier_is q-none "|"
tier_is q-up 2:Gold; tier_is q-keep "2:Gold|"
# a second run changes nothing
if out=$(qn "$PORT0" -c "CALL loyalty.review_tiers($(grep '^P ' "$TMP/tmap_c" | cut -d' ' -f2), '$AS_OF', batch_size => 3)" 2>&1) &&
   echo "$out" | grep -q "done: 11 members reviewed, 0 tiers changed"; then
    ok "a second review_tiers() reviews 11 members and changes none"
else bad "a second review_tiers() changes nothing" "$out"; fi
check "loyalty.verify() still returns no rows" "SELECT count(*) = 0 FROM loyalty.verify()"

# --- challenges: a delegated earn completes one on the member's worker; stored segments
CP=$(q -c "SELECT loyalty.create_program('citus-challenges')")
q -o /dev/null -c "SELECT loyalty.create_challenge($CP, 'two', 'Two purchases', 'purchases', 2, 'campaign', reward_points => '7', badge => 'pair')"
for i in 1 2; do
    CM=$(q -c "SELECT loyalty.enroll($CP, 'app', 'chal-$i')")
    if out=$(q -c "SELECT loyalty.earn($CM, 10, reference => 'chal-$i-1')" -c "SELECT loyalty.earn($CM, 10, reference => 'chal-$i-2')" 2>&1) &&
       [ "$(echo "$out" | tr '\n' ' ')" = "10 10 " ]; then
        ok "earn() delegated to the worker on port $(node_of "$CM") moves and completes a challenge"
    else bad "earn() delegated moves a challenge" "$out"; fi
    check "  7 points and the badge on that worker" \
        "SELECT (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = $CM) = 27
            AND (SELECT badge FROM loyalty.member_badges WHERE member_id = $CM) = 'pair'"
done
if out=$(q -c "CALL loyalty.refresh_segments($CP, 1)" 2>&1) && echo "$out" | grep -q "done, 2 members changed"; then
    ok "refresh_segments() on the coordinator, one member at a time"
else bad "refresh_segments() on the cluster" "$out"; fi
check "  the stored segments are member_rfm's" \
    "SELECT count(*) = 2 AND count(*) FILTER (WHERE a.segment IS DISTINCT FROM r.segment) = 0
     FROM loyalty.accounts a LEFT JOIN loyalty.member_rfm r ON r.member_id = a.member_id WHERE a.program_id = $CP"

q -o /dev/null -c "SELECT loyalty.set_journey($CP, 'welcome', 0)"
if out=$(q -c "CALL loyalty.run_journeys($CP)" -c "CALL loyalty.run_journeys($CP)" 2>&1); then
    check "run_journeys() twice on the coordinator: one welcome per member, on its worker" \
        "SELECT count(*) = 2 AND count(DISTINCT member_id) = 2 FROM loyalty.events WHERE kind = 'journey.welcome' AND program_id = $CP"
else bad "run_journeys() on the cluster" "$out"; fi

# --- calling the API over a set, outside a transaction block (operations.md) -------
# (the shapes that end the coordinator, a distributed function over VALUES,
# a subquery or a CTE, are not run)
SP=$(q -c "SELECT loyalty.create_program('citus-shapes')")
q -o /dev/null -c "CREATE TABLE public.shape_members AS SELECT loyalty.enroll($SP, 'app', 'cs-' || g) AS m FROM generate_series(1, 6) g"
SM=$(q -c "SELECT min(m) FROM public.shape_members")
if out=$(q -c "SELECT count(loyalty.earn($SM, 1, reference => 'cs-gs-' || g)) FROM generate_series(1, 3) g" \
           -c "SELECT count(loyalty.earn(m, 2, reference => 'cs-st-' || m)) FROM public.shape_members" \
           -c "SELECT sum(available)::bigint FROM public.shape_members s CROSS JOIN LATERAL loyalty.balance(s.m)" 2>&1) &&
   [ "$(echo "$out" | tr '\n' ' ')" = "3 6 15 " ]; then
    ok "calls over generate_series and over a local staging table, balance() over it"
else bad "calls over generate_series and a local staging table" "$out"; fi
if out=$(q -c "SELECT loyalty.earn_batch(array_agg(member_id ORDER BY member_id), array_agg(5::numeric ORDER BY member_id),
                                         array_agg('cs-ab-' || member_id ORDER BY member_id))
               FROM loyalty.members WHERE program_id = $SP" 2>&1) && [ "$out" = "(6,6,0,0,30)" ]; then
    ok "earn_batch(array_agg(...)) over loyalty.members: $out"
else bad "earn_batch over the array_agg of loyalty.members" "$out"; fi
# import_orders from a distributed orders table (co-located with members) and from a local one
q -o /dev/null -c "CREATE TABLE public.shape_orders (customer bigint, total numeric, ref text)" \
    -c "SELECT create_distributed_table('public.shape_orders', 'customer', colocate_with => 'loyalty.members')" \
    -c "INSERT INTO public.shape_orders SELECT member_id, 7, 'cs-io-' || member_id FROM loyalty.members WHERE program_id = $SP" \
    -c "CREATE TABLE public.shape_orders_local AS SELECT customer, total, 'l-' || ref AS ref FROM public.shape_orders"
for src in shape_orders shape_orders_local; do
    if out=$(q -c "CALL loyalty.import_orders('public.$src', 'customer', 'total', 'ref', batch_size => 4)" 2>&1) &&
       echo "$out" | grep -q "done: 6 orders (6 earned, 0 replayed, 0 rejected), 42 points"; then
        ok "import_orders() from $([ $src = shape_orders ] && echo "a distributed" || echo "a local") table, in batches of 4 members"
    else bad "import_orders() from public.$src" "$out"; fi
done
check "  the shapes' balances (3 + 6 * (2 + 5 + 7 + 7))" \
    "SELECT sum(balance::bigint) = 3 + 6 * 21 FROM loyalty.accounts WHERE program_id = $SP"
check "loyalty.verify() still returns no rows" "SELECT count(*) = 0 FROM loyalty.verify()"

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
