#!/bin/bash
# bench/transfer.sh: a point transfer (two members locked, the sender's lots
# consumed, the receiver's lots written), a household redemption (the
# household and its four members locked, their lots merged first to expire
# first) and a redemption from a household's pool (the household, the
# redeemer and the pool locked) against a plain redemption of the same points;
# and an earn whose household pool gets a share against a plain earn; all
# interleaved in one pgbench run so all meet the machine at the same moment.
# See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/transfer.sh
#   BENCH_MEMBERS=10000 BENCH_SECONDS=10 pg_virtualenv -t -v 15 bench/transfer.sh   # quicker
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-100000}
BENCH_SECONDS=${BENCH_SECONDS:-60}
BENCH_CLIENTS=${BENCH_CLIENTS:-2}
BENCH_DB=${BENCH_DB:-loyalty_bench_transfer}

BENCH_NAME=transfer.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"
(( BENCH_MEMBERS % 4 == 0 )) || { echo "transfer.sh: BENCH_MEMBERS must be a multiple of 4 (households of four)" >&2; exit 1; }
bench_setup BENCH_MEMBERS BENCH_SECONDS BENCH_CLIENTS

echo "== loyalty transfer benchmark: $BENCH_MEMBERS members, ${BENCH_SECONDS}s, $BENCH_CLIENTS clients =="
q1 "SELECT version()"
q -v members="$BENCH_MEMBERS" -o /dev/null <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('bench', expiry_period => interval '2 years') AS program \gset
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :program;
SELECT loyalty.set_transfer_rules(:program);
SELECT count(loyalty.enroll(:program, 'bench', g::text)) FROM generate_series(1, :members) g;
SELECT count(loyalty.award(m.member_id, 1000000, 'seed')) FROM loyalty.members m;
-- households of four consecutive members
SELECT count(loyalty.add_household_member(h.id, h.owner + k))
FROM (SELECT loyalty.start_household(g) AS id, g AS owner
      FROM generate_series((SELECT min(member_id) FROM loyalty.members), (SELECT max(member_id) - 3 FROM loyalty.members), 4) g) h,
     generate_series(1, 3) k;
-- a program whose households pool a tenth of each earn: a tenth as many members,
-- each earning once enough to fill its pool for the whole run
SELECT loyalty.create_program('pooled', expiry_period => interval '2 years') AS pooled \gset
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :pooled;
SELECT loyalty.set_household_rules(:pooled, pool_share => 0.1);
SELECT count(loyalty.enroll(:pooled, 'bench', g::text)) FROM generate_series(1, :members / 10) g;
SELECT count(loyalty.add_household_member(h.id, h.owner + k))
FROM (SELECT loyalty.start_household(g) AS id, g AS owner
      FROM generate_series((SELECT min(member_id) FROM loyalty.members WHERE program_id = :pooled),
                           (SELECT max(member_id) - 3 FROM loyalty.members WHERE program_id = :pooled AND status = 'active'), 4) g) h,
     generate_series(1, 3) k;
SELECT count(loyalty.earn(m.member_id, 10000000)) FROM loyalty.members m WHERE m.program_id = :pooled AND m.status = 'active';
VACUUM ANALYZE;
SQL
base=$(q1 "SELECT min(member_id) - 1 FROM loyalty.members JOIN loyalty.programs USING (program_id) WHERE name = 'bench'")
pbase=$(q1 "SELECT min(member_id) - 1 FROM loyalty.members JOIN loyalty.programs USING (program_id) WHERE name = 'pooled'")
pmembers=$(( BENCH_MEMBERS / 10 ))
q -c "CHECKPOINT"

for sync in on off; do
    PGOPTIONS="-c synchronous_commit=$sync" pgbench -n -M prepared -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" \
        -T "$BENCH_SECONDS" -D base="$base" -D members="$BENCH_MEMBERS" -D pbase="$pbase" -D pmembers="$pmembers" \
        -f "$HERE/loyalty_redeem.sql@1" -f "$HERE/loyalty_transfer.sql@1" -f "$HERE/loyalty_household.sql@1" \
        -f "$HERE/loyalty_pool_redeem.sql@1" -f "$HERE/loyalty_earn.sql@1" -f "$HERE/loyalty_earn_pooled.sql@1" \
        "$BENCH_DB" >"$TMP/pgbench.$sync" 2>&1 \
        || { cat "$TMP/pgbench.$sync"; die "pgbench failed"; }
    # per script: "SQL script N: FILE", then " - latency average = X ms"
    read -r redeem transfer household pool earn pearn < <(awk '/^SQL script/ { s = $3 } /latency average/ && s != "" { lat[s] = $5 }
        END { print lat["1:"], lat["2:"], lat["3:"], lat["4:"], lat["5:"], lat["6:"] }' "$TMP/pgbench.$sync")
    n=$(awk '/^SQL script 2:/ { f = 1 } f && /transactions \(/ { print $2; exit }' "$TMP/pgbench.$sync")
    echo "  synchronous_commit=$sync: redeem ${redeem} ms, transfer ${transfer} ms ($n transfers), household redemption ${household} ms,"
    echo "    pool redemption ${pool} ms, earn ${earn} ms, earn feeding a pool ${pearn} ms"
    awk -v r="$redeem" -v t="$transfer" -v h="$household" -v p="$pool" -v e="$earn" -v pe="$pearn" -v s="$sync" 'BEGIN {
        printf "ratio transfer/redeem (latency, synchronous_commit=%s): %.2f\n", s, t / r;
        printf "ratio household redemption/redeem (latency, synchronous_commit=%s): %.2f\n", s, h / r;
        printf "ratio pool redemption/redeem (latency, synchronous_commit=%s): %.2f\n", s, p / r;
        printf "ratio earn feeding a pool/earn (latency, synchronous_commit=%s): %.2f\n", s, pe / e }'
    q -c "CHECKPOINT"
done
bad=$(q1 "SELECT count(*) FROM loyalty.verify()")
echo "transfers: $(q1 "SELECT count(*) FROM loyalty.ledger WHERE kind = 'transfer' AND points::bigint < 0"); loyalty.verify() rows: $bad"
[[ $bad == 0 ]] || die "the books do not balance"
