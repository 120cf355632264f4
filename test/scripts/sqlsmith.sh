#!/usr/bin/env bash
# Random SQL: Debian's sqlsmith sends SQLSMITH_QUERIES (8,000 in the suite;
# 100,000 for a soak) random queries to a database holding a populated program
# (test/sqlsmith/setup.sql, written through the API) and a shop's orders table
# with loyalty.order_trigger: half as the superuser, half as a login role of
# loyalty_app.  sqlsmith runs each query in a transaction it rolls back, with
# statement_timeout 1s.  Afterwards: the postmaster never restarted (no
# backend crash), no internal error (SQLSTATE class XX) was raised by the
# extension's C code or inside its functions, and loyalty.verify() is empty.
# The errors sqlsmith saw are listed by SQLSTATE.  Replay a run with the seed
# it prints: SQLSMITH_SEED=<seed> (the superuser half takes the seed, the
# application half seed + 1); SQLSMITH_KEEP=1 keeps the cluster's directory
# (server log, every query in queries-*.sql.gz) for inspection; SQLSMITH_PORT
# (54397) is its port.
#
# The superuser can call PostgreSQL's own pg_terminate_backend() and
# pg_cancel_backend(); sqlsmith's integers are its constants (1..100) and the
# fixture's small column values, so the only backend it can name is its own
# (pg_backend_pid()): at worst it ends its session, which it then reopens.
# Such ends are counted, not failures.  The run uses a cluster of its own, so
# nothing else is reachable.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QUERIES=${SQLSMITH_QUERIES:-8000}
SEED=${SQLSMITH_SEED:-$(( (RANDOM << 15 | RANDOM) % 1000000000 ))}
SMITH=${SQLSMITH:-$(command -v sqlsmith || true)}
[ -n "$SMITH" ] || { echo "sqlsmith.sh: sqlsmith is not installed (Debian package sqlsmith)" >&2; exit 1; }
TMP=$(mktemp -d -t loyalty-smith.XXXXXX)
PORT=${SQLSMITH_PORT:-54397}
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
cleanup() {
    set +e
    $RUN "$PGBIN/pg_ctl" -D "$TMP/data" -m fast stop >/dev/null 2>&1
    if [ -n "${SQLSMITH_KEEP:-}" ]; then echo "kept: $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP" -p $PORT -U postgres "$@"; }
conn() { echo "host=$TMP port=$PORT dbname=$1 user=$2"; }

$RUN "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust >/dev/null
# Every error in the log with its SQLSTATE (%e) and the C file and line that
# raised it (LOCATION, from log_error_verbosity = verbose).
$RUN "$PGBIN/pg_ctl" -D "$TMP/data" -w -t 60 -l "$TMP/server.log" -o "-p $PORT -k $TMP -c listen_addresses='' \
    -c log_line_prefix='%m [%p] %e ' -c log_error_verbosity=verbose -c shared_preload_libraries=''" start >/dev/null

q -d postgres -c "CREATE DATABASE smith" -c "CREATE DATABASE smithlog"
q -d smith -o /dev/null -f "$ROOT/test/sqlsmith/setup.sql"
q -d smith -c "CREATE ROLE smith_app LOGIN IN ROLE loyalty_app"
# sqlsmith's error log (--log-to): the tables of its log.sql that it writes
q -d smithlog <<'SQL'
CREATE TABLE instance (id bigserial PRIMARY KEY, rev text, target text, hostname text, version text, seed text,
                       t timestamptz DEFAULT now());
CREATE TABLE error (id bigint REFERENCES instance, msg text, query text, target text, sqlstate text,
                    t timestamptz DEFAULT now(), errid bigserial PRIMARY KEY);
CREATE TABLE stat (id bigint REFERENCES instance, generated bigint, level float, nodes float, retries float,
                   updated timestamptz, impedance jsonb);
SQL

started=$(q -d postgres -c "SELECT pg_postmaster_start_time()")
pm=$(head -1 "$TMP/data/postmaster.pid")
ledger_before=$(q -d smith -c "SELECT count(*) FROM loyalty.ledger")
echo "== sqlsmith $(dpkg-query -W -f='${Version}' sqlsmith 2>/dev/null || echo '?'), $QUERIES queries, seed $SEED"
echo "   replay: SQLSMITH_SEED=$SEED SQLSMITH_QUERIES=$QUERIES bash test/scripts/sqlsmith.sh"

# One run: role, seed, number of queries.  A stuck run is stopped after
# SQLSMITH_TIMEOUT seconds (every query has a 1 s statement timeout).
smith() {
    local user=$1 seed=$2 n=$3 t0 rc=0
    t0=$(date +%s%N)
    set +e
    timeout "${SQLSMITH_TIMEOUT:-3600}" "$SMITH" --target="$(conn smith "$user")" --log-to="$(conn smithlog postgres)" \
        --seed="$seed" --max-queries="$n" --exclude-catalog --dump-all-queries \
        2>"$TMP/sqlsmith-$user.err" | gzip >"$TMP/queries-$user.sql.gz"
    rc=${PIPESTATUS[0]}
    set -e
    if [ $rc -ne 0 ]; then
        echo "FAIL sqlsmith as $user exited with $rc"; tail -20 "$TMP/sqlsmith-$user.err"; exit 1
    fi
    printf '   as %-9s %6d queries in %5.1f s (seed %d)\n' "$user" "$n" "$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')" "$seed"
}
smith postgres "$SEED" $((QUERIES - QUERIES / 2))
smith smith_app $((SEED + 1)) $((QUERIES / 2))
# how much of the extension the queries reached (sqlsmith picks from every
# function of the catalog, PostgreSQL's own included)
reached=$(zcat "$TMP"/queries-*.sql.gz | awk 'BEGIN { RS = ";\n" } /loyalty\.[a-z_0-9]+\(/ { n++ } END { print n + 0 }')
called=$(zcat "$TMP"/queries-*.sql.gz | grep -oE 'loyalty\.[a-z_0-9]+\(' | sort -u | wc -l)
functions=$(q -d smith -c "SELECT count(DISTINCT proname) FROM pg_proc WHERE pronamespace = 'loyalty'::regnamespace")
echo "   $reached queries call the extension's functions: $called of its $functions function names"

fail=0
# 1. no backend crashed: the same postmaster, never reinitialised
now_started=$(q -d postgres -c "SELECT pg_postmaster_start_time()")
crashes=$(grep -cE "terminated by signal|server process .* was terminated|all server processes terminated" "$TMP/server.log" || true)
if [ "$now_started" != "$started" ] || [ "$(head -1 "$TMP/data/postmaster.pid")" != "$pm" ] || [ "$crashes" -ne 0 ]; then
    echo "FAIL the server crashed ($crashes crash lines in the log):"
    grep -B5 -E "terminated by signal|was terminated" "$TMP/server.log" | head -40
    fail=1
fi

# 2. the errors, by SQLSTATE; internal errors (class XX) by where they were raised
echo "== errors sqlsmith saw, by SQLSTATE (the first message of each)"
q -d smithlog -F ' | ' -c "SELECT sqlstate, count(*), min(split_part(msg, E'\n', 1)) FROM error GROUP BY 1 ORDER BY 2 DESC, 1" |
    sed 's/^/   /' | cut -c1-160
# Each internal error of the log, classified: "ext" when raised by our C code
# (its LOCATION names one of our functions in one of our files: PostgreSQL
# has a trigger.c too) or inside one of our functions (its CONTEXT names a
# function of schema loyalty: PL/pgSQL ones qualified, SQL ones by name),
# else "pg"; then the message, LOCATION and CONTEXT.
ours="^($(grep -hoE '^[A-Za-z_][A-Za-z0-9_]*\(' "$ROOT"/src/*.c | tr -d '(' | sort -u | paste -sd'|')), ($(cd "$ROOT/src" && ls *.c | paste -sd'|')):"
sqlfns=$(q -d smith -c "SELECT string_agg(DISTINCT p.proname, '|') FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                        WHERE p.pronamespace = 'loyalty'::regnamespace AND l.lanname = 'sql'")
inside="loyalty[.]|SQL function \"(${sqlfns:-none})\""
awk -v ours="$ours" -v inside="$inside" '
    function flush() {
        if (msg) print ((loc ~ ours || ctx ~ inside) ? "ext" : "pg") "\t" msg "\t" loc "\t" ctx
        msg = ""; inctx = 0
    }
    / XX[0-9A-Z][0-9A-Z][0-9A-Z] +(ERROR|FATAL|PANIC):/ { flush(); msg = $0; sub(/^.* (ERROR|FATAL|PANIC): +/, "", msg); loc = ""; ctx = ""; next }
    /^20[0-9][0-9]-/ && !/ (LOCATION|CONTEXT|STATEMENT|DETAIL|HINT):/ { flush(); next }
    msg && / LOCATION: / { sub(/.* LOCATION: +/, ""); loc = $0; inctx = 0; next }
    msg && / CONTEXT: / { sub(/.* CONTEXT: +/, ""); ctx = $0; inctx = 1; next }
    msg && /^\t/ && inctx { ctx = ctx " | " substr($0, 2); next }
    /^20[0-9][0-9]-/ { inctx = 0 }
    END { flush() }
' "$TMP/server.log" >"$TMP/xx.tsv"
ext_xx=$(grep -c '^ext' "$TMP/xx.tsv" || true)
pg_xx=$(grep -c '^pg' "$TMP/xx.tsv" || true)
echo "== internal errors (XX): $ext_xx raised by the extension or inside its functions, $pg_xx elsewhere in PostgreSQL"
if [ "$pg_xx" -gt 0 ]; then
    awk -F'\t' '$1 == "pg" { print $2 " (" $3 ")" }' "$TMP/xx.tsv" | sort | uniq -c | sort -rn |
        head -20 | sed 's/^/   PostgreSQL: /' | cut -c1-200
fi
if [ "$ext_xx" -gt 0 ]; then
    echo "FAIL internal errors in the extension:"
    grep '^ext' "$TMP/xx.tsv" | head -20 | sed 's/^/   /'
    fail=1
fi
disconnects=$(grep -c "terminating connection due to administrator command" "$TMP/server.log" || true)
echo "   sessions ended by pg_terminate_backend (sqlsmith reconnects): $disconnects"

# 3. the books are sound, and nothing stayed written (sqlsmith rolls back)
bad=$(q -d smith -c "SELECT count(*) FROM loyalty.verify()")
ledger_after=$(q -d smith -c "SELECT count(*) FROM loyalty.ledger")
echo "== verify(): $bad rows; ledger rows $ledger_before before, $ledger_after after"
[ "$bad" = 0 ] || { q -d smith -c "SELECT * FROM loyalty.verify() LIMIT 20"; fail=1; }
[ "$ledger_after" = "$ledger_before" ] || { echo "FAIL a rolled-back query left ledger rows"; fail=1; }

errors=$(q -d smithlog -c "SELECT count(*) FROM error")
echo "queries: $QUERIES ($reached calling the extension); errors: $errors; crashes: $crashes; internal errors in the extension: $ext_xx; verify() rows: $bad"
[ $fail -eq 0 ] || [ -n "${SQLSMITH_KEEP:-}" ] || { SQLSMITH_KEEP=1; echo "(keeping the cluster's directory)"; }
exit $fail
