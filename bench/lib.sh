# Shared by the bench scripts (sourced): argument checks, a benchmark
# database created for the run and dropped at exit, psql and timing helpers.
# The caller sets BENCH_NAME, BENCH_DB and the positive-integer variables it
# names in bench_setup.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

# bench_setup VAR...: check VAR... are positive integers and BENCH_DB is a
# plain identifier, then create BENCH_DB (refusing one that exists: only what
# this run created is dropped) and a scratch directory $TMP, both removed at exit.
bench_setup() {
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
    done
    [[ $BENCH_DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "BENCH_DB must be a plain lower-case identifier"
    ADMIN_DB=${PGDATABASE:-postgres}
    [[ $ADMIN_DB == "$BENCH_DB" ]] && ADMIN_DB=postgres
    TMP=$(mktemp -d -t "loyalty-$BENCH_NAME.XXXXXX")
    BENCH_CREATED=0
    trap bench_cleanup EXIT
    [[ $(psql -X -A -t -d "$ADMIN_DB" -c "SELECT count(*) FROM pg_database WHERE datname = '$BENCH_DB'") == 0 ]] \
        || die "database $BENCH_DB exists; drop it or set BENCH_DB"
    psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_DB" -c "CREATE DATABASE $BENCH_DB"
    BENCH_CREATED=1
}

bench_cleanup() {
    local rc=$?
    set +e
    [[ $BENCH_CREATED == 1 ]] && psql -X -q -d "$ADMIN_DB" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$TMP"
    exit $rc
}

q() { psql -X -q -v ON_ERROR_STOP=1 -d "$BENCH_DB" "$@"; }
q1() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$BENCH_DB" -c "$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# --- a program with history, generated set-based (scale.sh, segments.sh) ----------
# generate MEMBERS ROWS [DAYS]: a fresh extension with one program and its history.
#
# Shape: 30% of the members buy once; the others get 1 + an exponentially
# distributed share of the remaining rows (exactly ROWS in all, about 28 each
# at the default sizes), entry ids numbered in member order, spread over
# DAYS days (default 730) from the member's joining to its last purchase (now for
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
    q -o /dev/null -v members="$members" -v rows="$rows" -v days="${3:-730}" <<'SQL'
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

# --- a program whose members buy as the models say (fit.sh) -------------------
# generate_btyd MEMBERS [DAYS] [SEED]: a fresh program ('btyd') whose members'
# purchases are drawn from BG/NBD and Gamma-Gamma with CDNOW's published
# parameters (bench/btyd_draw.py, Debian's python3 with numpy), so a fit on
# them identifies the models and should find those parameters again.
# generate's purchases are too regular for that: every member drops out
# alike, and the BG/NBD fit runs off (LY030).  Each member joins with a
# purchase within the last DAYS (730) days; earns only (1 point per unit,
# floor), a lot per earn that never expires, and the account statistics,
# written set-based as generate does.
generate_btyd() {
    local members=$1 days=${2:-730} seed=${3:-1} dir
    dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    /usr/bin/python3 "$dir/btyd_draw.py" "$members" "$days" "$seed" "$TMP/btyd_members.csv" "$TMP/btyd_purchases.csv"
    q -o /dev/null -v members_csv="$TMP/btyd_members.csv" -v purchases_csv="$TMP/btyd_purchases.csv" <<'SQL'
\set ON_ERROR_STOP 1
SET work_mem = '1GB';
SET maintenance_work_mem = '1GB';
SELECT loyalty.create_program('btyd') AS p \gset
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :p;
SELECT now() AS t0, coalesce(max(member_id), 0) AS m0 FROM loyalty.members \gset
SELECT coalesce(max(entry_id), 0) AS e0 FROM loyalty.ledger \gset
CREATE UNLOGGED TABLE btyd_members (m bigint, age float8);
CREATE UNLOGGED TABLE btyd_purchases (m bigint, k int, after float8, amount numeric(12, 2));
\set copy_members '\\copy btyd_members FROM ' :'members_csv' ' WITH (FORMAT csv)'
\set copy_purchases '\\copy btyd_purchases FROM ' :'purchases_csv' ' WITH (FORMAT csv)'
:copy_members
:copy_purchases

INSERT INTO loyalty.members (member_id, program_id, joined_at, created_at, source_channel, region)
OVERRIDING SYSTEM VALUE
SELECT :m0 + m, :p, :'t0'::timestamptz - make_interval(secs => age * 86400),
       :'t0'::timestamptz - make_interval(secs => age * 86400), 'pos', 'north'
FROM btyd_members ORDER BY m;
INSERT INTO loyalty.identities (program_id, channel, external_id, member_id, created_at)
SELECT :p, 'card', 'B' || m, :m0 + m, :'t0'::timestamptz - make_interval(secs => age * 86400)
FROM btyd_members ORDER BY 3;

CREATE UNLOGGED TABLE btyd_rows AS
SELECT :m0 + p.m AS member_id, :e0 + row_number() OVER (ORDER BY p.m, p.k) AS i, p.amount,
       floor(p.amount)::bigint AS pts,
       :'t0'::timestamptz - make_interval(secs => (b.age - p.after) * 86400) AS at
FROM btyd_purchases p JOIN btyd_members b USING (m);

CREATE TEMP TABLE btyd_indexes AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
FROM pg_index i
WHERE i.indrelid IN ('loyalty.ledger'::regclass, 'loyalty.lots'::regclass)
  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid);
SELECT format('DROP INDEX %s', name) FROM btyd_indexes \gexec

INSERT INTO loyalty.ledger (member_id, entry_id, program_id, kind, points, amount, channel, actor, created_at, occurred_at)
OVERRIDING SYSTEM VALUE
SELECT member_id, i, :p, 'earn', pts::loyalty.points, amount, 'pos', 'btyd', at, at
FROM btyd_rows ORDER BY i;
INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at, expires_at, created_at)
SELECT member_id, i, i, pts::loyalty.points, pts::loyalty.points, at, NULL, at
FROM btyd_rows ORDER BY i;
INSERT INTO loyalty.accounts (member_id, program_id, balance, lifetime_earned, first_purchase_at, last_purchase_at,
                              purchase_count, purchase_days, purchase_amount, updated_at)
SELECT member_id, :p, sum(pts)::loyalty.points, sum(pts)::loyalty.points, min(at), max(at),
       count(*), count(DISTINCT (at AT TIME ZONE 'UTC')::date), sum(amount), max(at)
FROM btyd_rows GROUP BY member_id ORDER BY member_id;

SELECT def FROM btyd_indexes \gexec

SELECT setval('loyalty.ledger_entry_id_seq', (SELECT max(entry_id) FROM loyalty.ledger));
SELECT setval('loyalty.members_member_id_seq', (SELECT max(member_id) FROM loyalty.members));
DROP TABLE btyd_rows, btyd_purchases, btyd_members;
SQL
    q -c "VACUUM ANALYZE" -c "CHECKPOINT"
}
