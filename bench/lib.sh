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
