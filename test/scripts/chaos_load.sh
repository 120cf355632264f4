#!/usr/bin/env bash
# Load with invariants: CHAOS_CLIENTS (16) clients for CHAOS_SECONDS (10 in
# the suite; set it higher for a long run) mix earn, redeem, hold/capture,
# hold/release, holds left to expire, reversals, awards, expiry, the hold
# sweep, transfers and their reversal, household redemptions (100 households
# of four; with CHAOS_POOLS=1 from pools fed by a share of every earn),
# partial refunds, coupons captured or released, batch imports (earn_batch)
# and merges on 1,000 hot members (test/load/), in a program whose purchases
# move two challenges.  Every error must be a
# documented refusal (a client aborts otherwise, and the run fails); after the
# run, loyalty.verify() must find nothing.  Prints what was done.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_=${CHAOS_SECONDS:-10}
CLIENTS=${CHAOS_CLIENTS:-16}
DB=loyalty_chaos
trap '"$PGBIN/dropdb" --if-exists $DB' EXIT
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

"$PGBIN/createdb" $DB
POOLS=${CHAOS_POOLS:-0}
psql -d $DB -o /dev/null -v pools="$POOLS" -f "$ROOT/test/load/setup.sql"
echo "== $CLIENTS clients, ${SECONDS_}s, 1,000 hot members$([ "$POOLS" = 1 ] && echo ", households pooling a fifth of each earn")"
if ! "$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$SECONDS_" -f "$ROOT/test/load/chaos.sql" $DB >/tmp/chaos.$$.log 2>&1; then
    cat /tmp/chaos.$$.log; rm -f /tmp/chaos.$$.log
    echo "FAIL a client hit an undocumented error (or pgbench failed)"; exit 1
fi
grep -E "number of transactions actually processed|number of failed|tps" /tmp/chaos.$$.log | sed 's/^/   /'
rm -f /tmp/chaos.$$.log
psql -d $DB -o /dev/null -c "CALL loyalty.release_expired_holds()" 2>/dev/null
psql -d $DB -A -F ' | ' -c "SELECT op, code AS sqlstate, sum(n) AS calls FROM chaos.outcomes GROUP BY 1, 2 ORDER BY 1, 2"
ops=$(psql -d $DB -A -t -c "SELECT sum(n) FROM chaos.outcomes")
bad=$(psql -d $DB -A -t -c "SELECT count(*) FROM loyalty.verify()")
unexpected=$(psql -d $DB -A -t -c "SELECT count(*) FROM chaos.outcomes o WHERE o.code NOT IN (SELECT e.code FROM chaos.expected e) AND NOT (o.op IN ('merge', 'transfer') AND o.code = '22023')")
echo "operations: $ops; invariant violations: $bad; unexpected errors: $unexpected"
[[ $bad == 0 ]] || { psql -d $DB -c "SELECT * FROM loyalty.verify() LIMIT 20"; exit 1; }
[[ $unexpected == 0 && $ops -gt 0 ]]
