#!/usr/bin/env bash
# Build the Debian package postgresql-15-loyalty from the working tree with
# Debian's PostgreSQL tooling (dpkg-buildpackage, debhelper's pgxs_loop),
# check its contents, remove the `make install` copy, install the package,
# and smoke-test CREATE EXTENSION loyalty in a fresh cluster of its own.
# The `make install` copy is put back at the end.  Needs root (dpkg -i).
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

for tool in dpkg-buildpackage dh pg_buildext; do
    command -v $tool >/dev/null || { echo "debian_package.sh: $tool is missing (tools/test.sh installs debhelper, dpkg-dev and postgresql-server-dev-all)" >&2; exit 1; }
done

TMP=$(mktemp -d -t loyalty-deb.XXXXXX)
PORT=54391
cleanup() {
    set +e
    [ -f "$TMP/pgdata/postmaster.pid" ] && "$PGBIN/pg_ctl" -D "$TMP/pgdata" -m immediate stop >/dev/null 2>&1
    dpkg-query -W postgresql-15-loyalty >/dev/null 2>&1 && as_root dpkg -r postgresql-15-loyalty >/dev/null
    # put the working tree's build back for the rest of the suite
    make -C "$ROOT" -s install PG_CONFIG="$PGBIN/pg_config" >/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# the source: the working tree's files that git tracks or would track (not
# ignored build outputs)
mkdir -p "$TMP/src/loyalty"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && cp --parents "$f" "$TMP/src/loyalty"; done)
cd "$TMP/src/loyalty"
echo "== dpkg-buildpackage"
dpkg-buildpackage -us -uc -b >"$TMP/build.log" 2>&1 || { tail -40 "$TMP/build.log"; exit 1; }
deb=$(ls "$TMP"/src/postgresql-15-loyalty_*.deb)
echo "built $(basename "$deb")"

fail=0
contents=$(dpkg-deb -c "$deb")
for f in usr/lib/postgresql/15/lib/loyalty.so usr/share/postgresql/15/extension/loyalty.control \
         "usr/share/postgresql/15/extension/loyalty--$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/loyalty.control").sql" \
         usr/share/doc/postgresql-15-loyalty/README.md; do
    if grep -q "\./$f\b" <<<"$contents"; then echo "ok   the package contains $f"; else echo "FAIL the package lacks $f"; fail=1; fi
done
deps=$(dpkg-deb -f "$deb" Depends)
if grep -q 'postgresql-15' <<<"$deps"; then echo "ok   it depends on PostgreSQL 15 ($deps)"; else echo "FAIL Depends: $deps"; fail=1; fi

# remove the make-install copy, so only the package can provide the extension
as_root rm -f /usr/lib/postgresql/15/lib/loyalty.so /usr/share/postgresql/15/extension/loyalty.control \
              /usr/share/postgresql/15/extension/loyalty--*.sql
as_root dpkg -i "$deb" >/dev/null
echo "ok   installed with dpkg -i"

# a fresh cluster of our own
mkdir "$TMP/pgdata" "$TMP/sock"
if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
$RUN "$PGBIN/initdb" -D "$TMP/pgdata" -U postgres -A trust >/dev/null
$RUN "$PGBIN/pg_ctl" -D "$TMP/pgdata" -o "-p $PORT -k $TMP/sock -c listen_addresses=''" -w -l "$TMP/server.log" start >/dev/null
out=$("$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP/sock" -p $PORT -U postgres -d postgres <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('smoke') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'card-1') AS m \gset
SELECT loyalty.earn(:m, 25.00);
SELECT loyalty.redeem(:m, '5') > 0;
SELECT available FROM loyalty.balance(:m);
SELECT count(*) FROM loyalty.verify();
SELECT loyalty.version() = extversion FROM pg_extension WHERE extname = 'loyalty';
SQL
)
expected=$'25\nt\n20\n0\nt'
if [[ $out == "$expected" ]]; then echo "ok   CREATE EXTENSION loyalty from the package: earn, redeem, balance, verify"; else echo "FAIL smoke test: $out"; fail=1; fi
exit $fail
