#!/bin/bash
# bench/scale.sh: how the loyalty write path, reads and analytics grow with
# the data.  Generates a program of SCALE_MEMBERS members and
# SCALE_LEDGER_ROWS ledger rows in the database (set-based SQL, consistent
# with loyalty.verify()), measures earn/redeem/balance_at/history latency
# (pgbench, p50/p99 from the per-transaction log) and the main views' times,
# first at a tenth of the size, then at full size, and prints full/tenth ratios.
# See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/scale.sh
#   SCALE_MEMBERS=100000 SCALE_LEDGER_ROWS=2000000 pg_virtualenv -t -v 15 bench/scale.sh   # quicker
#
# Runs against the server given by the standard PG* variables; creates its own
# database and drops it at the end.  The tenth runs first, in the same database
# (the extension is dropped and created again between the two sizes).
set -euo pipefail

SCALE_MEMBERS=${SCALE_MEMBERS:-1000000}          # members at full size
SCALE_LEDGER_ROWS=${SCALE_LEDGER_ROWS:-20000000} # ledger rows at full size
SCALE_DAYS=${SCALE_DAYS:-730}                    # history spread over this many days
SCALE_SECONDS=${SCALE_SECONDS:-20}               # each pgbench write run (earn, redeem)
SCALE_READ_SECONDS=${SCALE_READ_SECONDS:-10}     # each pgbench read run (balance_at, history)
SCALE_CLIENTS=${SCALE_CLIENTS:-2}                # pgbench -c and -j
SCALE_VERIFY=${SCALE_VERIFY:-1}                  # 0: skip loyalty.verify() at full size
BENCH_DB=${BENCH_DB:-loyalty_bench_scale}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=scale.sh
source "$HERE/lib.sh"

[[ $SCALE_VERIFY == 0 || $SCALE_VERIFY == 1 ]] || die "SCALE_VERIFY must be 0 or 1, got '$SCALE_VERIFY'"
command -v pgbench >/dev/null || die "pgbench not found"
# (checked again by bench_setup, but the arithmetic below needs them first)
for v in SCALE_MEMBERS SCALE_LEDGER_ROWS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
TENTH_MEMBERS=$((SCALE_MEMBERS / 10))
TENTH_ROWS=$((SCALE_LEDGER_ROWS / 10))
((TENTH_MEMBERS >= 10)) || die "SCALE_MEMBERS must be at least 100, got $SCALE_MEMBERS"
((TENTH_ROWS >= TENTH_MEMBERS)) || die "SCALE_LEDGER_ROWS must be at least SCALE_MEMBERS (every member buys once)"
bench_setup SCALE_MEMBERS SCALE_LEDGER_ROWS SCALE_DAYS SCALE_SECONDS SCALE_READ_SECONDS SCALE_CLIENTS

echo "== loyalty scale benchmark: $SCALE_MEMBERS members / $SCALE_LEDGER_ROWS ledger rows against a tenth =="
q1 "SELECT version()"
q1 "SELECT format('server: fsync=%s synchronous_commit=%s shared_buffers=%s work_mem=%s max_wal_size=%s',
                  current_setting('fsync'), current_setting('synchronous_commit'), current_setting('shared_buffers'),
                  current_setting('work_mem'), current_setting('max_wal_size'))"
echo "pgbench: -c $SCALE_CLIENTS -j $SCALE_CLIENTS -M prepared, ${SCALE_SECONDS}s per write script," \
     "${SCALE_READ_SECONDS}s per read script, members drawn uniformly"

# --- generation -------------------------------------------------------------------
# generate MEMBERS ROWS: a fresh extension with one program and its history.
#
# Shape: 30% of the members buy once; the others get 1 + an exponentially
# distributed share of the remaining rows (exactly ROWS in all, about 28 each
# at the default sizes), entry ids numbered in member order, spread over
# SCALE_DAYS days from the member's joining to its last purchase (now for
# some, long ago for lapsed members), in increasing time.  Row 1
# is an earn of 100-300 units, then earns of 5-200 units (1 point per unit,
# floor), except that row k >= 3 with (k + m) % 8 = 0 is a redemption of 20-100%
# of the points of row k - 1 (always an earn), so no balance goes below the
# first purchase.  Everything is computed from hashes of the entry id, so a
# redemption knows its preceding earn's points without a join.
#
# Invariants (src/sql/40_api.sql loyalty.verify()): every earn has one lot of its
# points (lot_id = entry_id); redemptions consume lots first-to-expire-first:
# with one expiry period, no pending period and times increasing with k, that
# is the order of k, so redemption r takes the stretch [D_r, D_r + P_r) of the
# member's earned-points line (D_r = points redeemed before it) and lot e holds
# [E_e, E_e + p_e) (E_e = points earned before it): an allocation is each
# non-empty overlap, and a lot's remaining is p_e minus its overlap with
# [0, D_total).  The account gets balance = sum(ledger) = sum(remaining),
# lifetime earned/redeemed, first/last purchase, purchase count, distinct UTC
# purchase days and spend, and the tier its rolling 12-month spend qualifies for.
# No holds, expiries, reversals or debt.
generate() {
    local members=$1 rows=$2
    q -o /dev/null -v members="$members" -v rows="$rows" -v days="$SCALE_DAYS" <<'SQL'
\set ON_ERROR_STOP 1
SET work_mem = '1GB';
SET maintenance_work_mem = '1GB';
-- serial plans: the rows are written in member order (and the temporary
-- functions below are not for parallel workers)
SET max_parallel_workers_per_gather = 0;
SELECT loyalty.create_program('scale', expiry_period => interval '3 years') AS p \gset
-- no outbox events (as in ledger.sh): an earn writes its ledger row, lot and account only
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :p;
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0), loyalty.define_tier(:p, 1, 'Silver', 500),
       loyalty.define_tier(:p, 2, 'Gold', 1500);
SELECT now() AS t0 \gset

-- a uniform number in [0, 1) from (id, salt)
CREATE FUNCTION pg_temp.u(bigint, integer) RETURNS float8 LANGUAGE sql IMMUTABLE 
AS $$ SELECT (hashint8($1 * 16 + $2)::bigint & 2147483647)::float8 / 2147483648 $$;
-- the purchase amount of entry i, the member's k-th row
CREATE FUNCTION pg_temp.amount(bigint, bigint) RETURNS numeric LANGUAGE sql IMMUTABLE 
AS $$ SELECT CASE WHEN $2 = 1 THEN 100 + floor(pg_temp.u($1, 1) * 20000) / 100
                  ELSE 5 + floor(pg_temp.u($1, 1) * 19500) / 100 END::numeric(12, 2) $$;

CREATE UNLOGGED TABLE scale_shape AS
SELECT m, joined_at, s - n + 1 AS first_i, n,
       -- members stop buying at some point: the last purchase falls anywhere in
       -- the membership, more often near its end
       :'t0'::timestamptz - interval '1 minute' - (:'t0'::timestamptz - joined_at) * 0.9 * pg_temp.u(m, 8) ^ 2 AS last_at
FROM (SELECT m, :'t0'::timestamptz - make_interval(secs => :days * 86400 * (0.05 + 0.95 * pg_temp.u(m, 2))) AS joined_at,
             m + div((:rows - :members) * cw, tw)::bigint AS s,
             1 + div((:rows - :members) * cw, tw)::bigint - div((:rows - :members) * (cw - w), tw)::bigint AS n
      FROM (SELECT m, w, sum(w) OVER (ORDER BY m) AS cw, sum(w) OVER () AS tw
            FROM (SELECT m, CASE WHEN pg_temp.u(m, 7) < 0.3 THEN 0
                                 ELSE 1 + floor(-ln(1 - pg_temp.u(m, 3)) * 1000)::bigint END AS w
                  FROM generate_series(1, :members) m) x) y) z;

INSERT INTO loyalty.members (member_id, program_id, joined_at, created_at, source_channel, region)
OVERRIDING SYSTEM VALUE
SELECT m, :p, joined_at, joined_at, (ARRAY['pos', 'web', 'app'])[1 + m % 3],
       (ARRAY['north', 'south', 'east', 'west', 'centre'])[1 + (m / 3) % 5]
FROM scale_shape ORDER BY m;
INSERT INTO loyalty.identities (program_id, channel, external_id, member_id, created_at)
SELECT :p, 'card', 'C' || m, m, joined_at FROM scale_shape ORDER BY 3;

-- every ledger row with its place on the member's earned and redeemed lines
CREATE UNLOGGED TABLE scale_rows AS
SELECT s.m AS member_id, r.*
FROM scale_shape s
CROSS JOIN LATERAL (
    SELECT i, k, kind, pts, amount, at, channel,
           sum(pts) FILTER (WHERE kind = 'earn') OVER w - CASE WHEN kind = 'earn' THEN pts ELSE 0 END AS earned_before,
           coalesce(sum(pts) FILTER (WHERE kind = 'redeem') OVER w, 0) - CASE WHEN kind = 'redeem' THEN pts ELSE 0 END
               AS redeemed_before,
           kind = 'earn' AND day IS DISTINCT FROM
               max(day) FILTER (WHERE kind = 'earn') OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS new_day
    FROM (SELECT i, k, kind, amount, at, (at AT TIME ZONE 'UTC')::date AS day,
                 (ARRAY['pos', 'web', 'app'])[1 + floor(pg_temp.u(i, 4) * 3)::int] AS channel,
                 CASE WHEN kind = 'earn' THEN floor(amount)::bigint
                      ELSE greatest(1, floor(floor(pg_temp.amount(i - 1, k - 1)) * (0.2 + 0.8 * pg_temp.u(i, 5))))::bigint
                 END AS pts
          FROM (SELECT s.first_i + k - 1 AS i, k,
                       CASE WHEN k >= 3 AND (k + s.m) % 8 = 0 THEN 'redeem' ELSE 'earn' END AS kind,
                       pg_temp.amount(s.first_i + k - 1, k) AS amount,
                       s.joined_at + (s.last_at - s.joined_at)
                                     * ((k - 1 + pg_temp.u(s.first_i + k - 1, 6)) / s.n) AS at
                FROM generate_series(1::bigint, s.n) k) g) g2
    WINDOW w AS (ORDER BY k)
) r;

-- the secondary indexes of the ledger and the lots are built after the load
-- (rows arrive in member order, so the primary keys grow at their right edge)
CREATE TEMP TABLE scale_indexes AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i
WHERE i.indrelid IN ('loyalty.ledger'::regclass, 'loyalty.lots'::regclass)
  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid);
SELECT format('DROP INDEX %s', name) FROM scale_indexes \gexec

INSERT INTO loyalty.ledger (member_id, entry_id, program_id, kind, points, amount, channel, actor, created_at, occurred_at)
OVERRIDING SYSTEM VALUE
SELECT member_id, i, :p, kind, (CASE WHEN kind = 'earn' THEN pts ELSE -pts END)::loyalty.points,
       CASE WHEN kind = 'earn' THEN amount END, channel, 'scale', at, at
FROM scale_rows;

INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at, expires_at, created_at)
SELECT r.member_id, r.i, r.i, r.pts::loyalty.points,
       (r.pts - least(r.pts, greatest(0, coalesce(t.redeemed, 0) - r.earned_before)))::loyalty.points,
       r.at, r.at + interval '3 years', r.at
FROM scale_rows r
LEFT JOIN (SELECT member_id, sum(pts) AS redeemed FROM scale_rows WHERE kind = 'redeem' GROUP BY member_id) t
  USING (member_id)
WHERE r.kind = 'earn';

INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
SELECT r.member_id, r.i, e.i,
       (least(e.earned_before + e.pts, r.redeemed_before + r.pts) - greatest(e.earned_before, r.redeemed_before))::loyalty.points
FROM scale_rows r
JOIN scale_rows e ON e.member_id = r.member_id AND e.kind = 'earn'
 AND e.earned_before < r.redeemed_before + r.pts AND e.earned_before + e.pts > r.redeemed_before
WHERE r.kind = 'redeem';

INSERT INTO loyalty.accounts (member_id, program_id, balance, lifetime_earned, lifetime_redeemed,
                              first_purchase_at, last_purchase_at, purchase_count, purchase_days, purchase_amount,
                              tier, tier_since, updated_at, next_expiry_at)
SELECT a.member_id, :p, (a.earned - a.redeemed)::loyalty.points, a.earned::loyalty.points, a.redeemed::loyalty.points,
       a.first_at, a.last_at, a.purchases, a.days, a.spend,
       (SELECT loyalty.tier(t.rank, t.name) FROM loyalty.tiers t
        WHERE t.program_id = :p AND t.threshold <= a.spend_12m ORDER BY t.rank DESC LIMIT 1),
       a.last_at, a.last_at, nx.first
FROM (SELECT member_id,
             coalesce(sum(pts) FILTER (WHERE kind = 'earn'), 0) AS earned,
             coalesce(sum(pts) FILTER (WHERE kind = 'redeem'), 0) AS redeemed,
             min(at) FILTER (WHERE kind = 'earn') AS first_at, max(at) FILTER (WHERE kind = 'earn') AS last_at,
             count(*) FILTER (WHERE kind = 'earn') AS purchases, count(*) FILTER (WHERE new_day) AS days,
             coalesce(sum(amount) FILTER (WHERE kind = 'earn'), 0) AS spend,
             coalesce(sum(amount) FILTER (WHERE kind = 'earn' AND at > :'t0'::timestamptz - interval '12 months'), 0) AS spend_12m
      FROM scale_rows GROUP BY member_id) a
-- the expiry bound: the member's first open lot's expiry
LEFT JOIN (SELECT l.member_id, min(l.expires_at) AS first FROM loyalty.lots l
           WHERE l.is_open GROUP BY l.member_id) nx ON nx.member_id = a.member_id
ORDER BY a.member_id;

SELECT def FROM scale_indexes \gexec

SELECT setval('loyalty.ledger_entry_id_seq', :rows);
SELECT setval('loyalty.members_member_id_seq', :members);
DROP TABLE scale_rows, scale_shape;
SQL
    q -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

# --- measurements -------------------------------------------------------------------
declare -A VAL      # VAL[metric,size]
METRICS=()          # metric names in print order
UNITS=()

record() {          # record METRIC UNIT SIZE VALUE
    local i found=0
    for i in "${METRICS[@]}"; do [[ $i == "$1" ]] && found=1; done
    if [[ $found == 0 ]]; then METRICS+=("$1"); UNITS+=("$2"); fi
    VAL[$1,$3]=$4
}

# bench SIZE NAME SECONDS SCRIPT: a pgbench run of one script on random members;
# records NAME p50 and p99 (ms, from the per-transaction log) and tps
bench() {
    local size=$1 name=$2 secs=$3 script=$4 out="$TMP/$2-$1.out" rc=0
    q -c "CHECKPOINT"
    rm -f "$TMP/log-$name-$size".*
    pgbench -n -c "$SCALE_CLIENTS" -j "$SCALE_CLIENTS" -M prepared -T "$secs" -D base=0 -D members="$MEMBERS" \
        -f "$script" --log --log-prefix="$TMP/log-$name-$size" "$BENCH_DB" >"$out" 2>&1 || rc=$?
    local tps failed aborted
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    aborted=$(grep -c 'aborted in command\|Run was aborted' "$out" || true)
    if [[ $rc != 0 || -z $tps || $aborted != 0 || ${failed:-0} != 0 ]]; then
        cat "$out" >&2
        die "pgbench run $name ($size) failed (exit $rc)"
    fi
    # per-transaction log: client transaction latency_us script epoch us
    read -r n p50 p99 < <(cat "$TMP/log-$name-$size".* | awk '{ print $3 }' | sort -n |
        awk '{ v[NR] = $1 } END { i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999);
                                  printf "%d %.3f %.3f\n", NR, v[i50] / 1000, v[i99] / 1000 }')
    rm -f "$TMP/log-$name-$size".*
    record "$name p50" ms "$size" "$p50"
    record "$name p99" ms "$size" "$p99"
    tps=$(printf '%.1f' "$tps")
    record "$name tps" tps "$size" "$tps"
    printf '  %-12s %8d transactions  p50 %8.3f ms  p99 %8.3f ms  tps %9.1f\n' "$name" "$n" "$p50" "$p99" "$tps"
}

# timed SIZE NAME SQL: one run of a statement; records its time in seconds
timed() {
    local size=$1 name=$2 ms
    ms=$(q -c '\timing on' -c "$3" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
    [[ -n $ms ]] || die "no time for $name"
    ms=$(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }')
    record "$name" s "$size" "$ms"
    printf '  %-22s %9.3f s\n' "$name" "$ms"
}

# a view's rows, every column computed (the whole-row reference), none sent
view() { timed "$1" "$2" "SELECT count(v) FROM (SELECT * FROM loyalty.$2 OFFSET 0) v"; }

cat >"$TMP/balance_at.sql" <<'SQL'
\set m random(1, :members)
SELECT loyalty.balance_at(:m, now() - interval '1 year');
SQL
cat >"$TMP/history.sql" <<'SQL'
\set m random(1, :members)
SELECT * FROM loyalty.history(:m);
SQL

# measure SIZE MEMBERS ROWS
measure() {
    local size=$1 t0 rows
    MEMBERS=$2
    echo
    echo "== $size: $2 members, $3 ledger rows =="
    q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS loyalty CASCADE" -c "CREATE EXTENSION loyalty"
    t0=$(now)
    generate "$2" "$3"
    record "generate + vacuum" s "$size" "$(secs "$t0" "$(now)")"
    rows=$(q1 "SELECT count(*) FROM loyalty.ledger")
    [[ $rows == "$3" ]] || die "generated $rows ledger rows, expected $3"
    q1 "SELECT format('  generated in %ss: %s members, ledger %s (%s earn, %s redeem), %s lots (%s open), %s allocations; database %s',
                      '${VAL[generate + vacuum,$size]}',
                      (SELECT count(*) FROM loyalty.members), (SELECT count(*) FROM loyalty.ledger),
                      (SELECT count(*) FROM loyalty.ledger WHERE kind = 'earn'), (SELECT count(*) FROM loyalty.ledger WHERE kind = 'redeem'),
                      (SELECT count(*) FROM loyalty.lots), (SELECT count(*) FROM loyalty.lots WHERE remaining::bigint > 0),
                      (SELECT count(*) FROM loyalty.allocations), pg_size_pretty(pg_database_size(current_database())))"

    echo " pgbench (random members):"
    # earn with the program's tier policy (each earn checks for an upgrade),
    # then without it (as in ledger.sh: the program has no tiers)
    bench "$size" earn+tier "$SCALE_SECONDS" "$HERE/loyalty_earn.sql"
    q -c "UPDATE loyalty.programs SET tier_metric = NULL"
    bench "$size" earn "$SCALE_SECONDS" "$HERE/loyalty_earn.sql"
    q -c "UPDATE loyalty.programs SET tier_metric = 'spend'"
    bench "$size" redeem "$SCALE_SECONDS" "$HERE/loyalty_redeem.sql"
    bench "$size" balance_at "$SCALE_READ_SECONDS" "$TMP/balance_at.sql"
    bench "$size" history "$SCALE_READ_SECONDS" "$TMP/history.sql"

    echo " views and analytics (one run each):"
    view "$size" kpi_summary
    view "$size" kpi_monthly
    view "$size" tier_distribution
    view "$size" member_mix
    view "$size" channel_distribution
    view "$size" member_rfm
    view "$size" segment_summary
    view "$size" cohort_retention
    # not fit_models / churn_risk: the BG/NBD fit does not identify a model on
    # this synthetic history (evenly spaced purchases), after minutes of search
    if [[ $size == tenth || $SCALE_VERIFY == 1 ]]; then
        timed "$size" "verify()" "SELECT count(*) FROM loyalty.verify()"
        local broken
        broken=$(q1 "SELECT count(*) FROM loyalty.verify()")
        echo "  loyalty.verify() rows: $broken"
        if [[ $broken != 0 ]]; then
            q -c "SELECT * FROM loyalty.verify() LIMIT 20" >&2 || true
            die "the $size data breaks the ledger invariants"
        fi
    fi
}

measure tenth "$TENTH_MEMBERS" "$TENTH_ROWS"
measure full "$SCALE_MEMBERS" "$SCALE_LEDGER_ROWS"

# --- results ------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
echo
echo "== full ($SCALE_MEMBERS members, $SCALE_LEDGER_ROWS rows) against tenth ($TENTH_MEMBERS, $TENTH_ROWS) =="
printf '%-26s %-4s %12s %12s %11s\n' measurement unit tenth full full/tenth
for i in "${!METRICS[@]}"; do
    m=${METRICS[$i]}
    [[ -n ${VAL[$m,full]:-} ]] || continue
    printf '%-26s %-4s %12s %12s %11s\n' "$m" "${UNITS[$i]}" "${VAL[$m,tenth]}" "${VAL[$m,full]}" \
        "$(ratio "${VAL[$m,full]}" "${VAL[$m,tenth]}")"
done
echo
for m in "${METRICS[@]}"; do
    [[ -n ${VAL[$m,full]:-} ]] || continue
    echo "ratio $m full/tenth: $(ratio "${VAL[$m,full]}" "${VAL[$m,tenth]}")"
done
