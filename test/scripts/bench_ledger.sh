#!/usr/bin/env bash
# bench/ledger.sh and its C reference (bench/cfloor), at a tiny size: the
# reference refuses bad input with the PL/pgSQL ledger's SQLSTATEs and writes
# nothing then, and ledger.sh runs every ledger (the reference included),
# prints its ratios and finds all books balanced.  No timing is checked: the
# figures belong in bench/README.md, not in a test.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# build in a copy, so that the checkout gets no build outputs
B=$(mktemp -d -t loyalty-bench-test.XXXXXX)
db=loyalty_bench_cfloor_check
trap '"$PGBIN/dropdb" --if-exists $db; rm -rf "$B"' EXIT
cp -r bench/cfloor "$B/"
make -s -C "$B/cfloor" PG_CONFIG="$PGBIN/pg_config"
as_root make -s -C "$B/cfloor" install PG_CONFIG="$PGBIN/pg_config" >/dev/null

# --- the reference's input checks ------------------------------------------
"$PGBIN/createdb" $db
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d $db "$@"; }
q -f bench/plpgsql_ledger.sql -f bench/cfloor/cfloor.sql
q -c "INSERT INTO bench_plpgsql.accounts (member_id) VALUES (1), (2)" \
  -c "SELECT bench_plpgsql.cfloor_earn(1, 10.9)" >/dev/null
fail=0
# expect SQLSTATE SQL: the call fails with that state and the ledger keeps its one row
expect() {
    local got
    got=$("$PGBIN/psql" -X -q -A -t -d $db -v VERBOSITY=verbose -c "$2" 2>&1 | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1 || true)
    local rows
    rows=$(q -c "SELECT count(*) || ' ' || sum(delta) FROM bench_plpgsql.ledger")
    if [[ $got == "$1" && $rows == "1 10" ]]; then echo "ok   $2: $got"; else echo "FAIL $2: '$got' (ledger: $rows), expected $1"; fail=1; fi
}
expect 22023 "SELECT bench_plpgsql.cfloor_earn(1, 0)"
expect 22023 "SELECT bench_plpgsql.cfloor_earn(NULL, 5)"
expect 22023 "SELECT bench_plpgsql.cfloor_redeem(1, 0)"
expect 22023 "SELECT bench_plpgsql.cfloor_redeem(1, NULL)"
expect P0002 "SELECT bench_plpgsql.cfloor_redeem(3, 1)"
expect LY001 "SELECT bench_plpgsql.cfloor_redeem(1, 11)"
expect 22003 "SELECT bench_plpgsql.cfloor_earn(1, 9223372036854775807)"
# what it does write: the same rows as the PL/pgSQL functions
got=$(q -c "SELECT bench_plpgsql.cfloor_redeem(1, 4) > 0, bench_plpgsql.earn(2, 3), bench_plpgsql.cfloor_earn(2, 2)" \
        -c "SELECT string_agg(member_id || ':' || delta, ' ' ORDER BY id) FROM bench_plpgsql.ledger" \
        -c "SELECT string_agg(member_id || ':' || balance, ' ' ORDER BY member_id) FROM bench_plpgsql.accounts" | tr '\n' ' ')
if [[ $got == "t|3|2 1:10 1:-4 2:3 2:2 1:6 2:5 " ]]; then echo "ok   rows written: $got"; else echo "FAIL rows written: '$got'"; fail=1; fi

# --- the benchmark itself, tiny ----------------------------------------------
out=$B/ledger.out
if BENCH_SECONDS=1 BENCH_ROUNDS=1 BENCH_MEMBERS=2000 BENCH_SCALE=1 BENCH_DB=loyalty_bench_check \
        bench/ledger.sh >"$out" 2>&1; then
    echo "ok   bench/ledger.sh exits 0"
else
    echo "FAIL bench/ledger.sh"; tail -30 "$out"; fail=1
fi
for line in "ratio interleaved loyalty/plpgsql (sync=on)" "ratio interleaved cfloor/plpgsql (sync=on)" \
            "ratio interleaved loyalty/cfloor (sync=off)" "loyalty.verify() rows: 0" \
            "plpgsql balance <> sum(ledger) rows: 0"; do
    if grep -qF "$line" "$out" && ! grep -F "$line" "$out" | grep -q 'n/a'; then
        echo "ok   printed: $(grep -F "$line" "$out" | head -1)"
    else
        echo "FAIL not printed: $line"; fail=1
    fi
done
exit $fail
