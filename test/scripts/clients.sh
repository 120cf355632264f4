#!/usr/bin/env bash
# Real clients run the documented flow (test/clients/): psycopg2 and
# psycopg 3 (Debian's python3-psycopg2, python3-psycopg), node-postgres (pg
# 8.x from the npm registry, pinned by test/clients/node/package-lock.json,
# installed with npm ci when node_modules is missing) and JDBC (Debian's
# libpostgresql-jdbc-java, compiled with javac at test time).  Each one
# passes its natural parameter types, reads the BI views, listens for events
# and reads LY SQLSTATEs from its exception type, printing one line per
# check (doc/clients.md says what they measure).
#
# Runs inside the throwaway cluster of tools/test.sh (PGHOST, PGPORT, PGUSER
# set by pg_virtualenv) with the extension installed, in a database of its
# own, dropped afterwards.  A client whose runtime is missing fails, naming
# it; exits 77 with "SKIP: ..." only when none of the runtimes exists.
#
#   PYTHON    the Python that has Debian's psycopg packages (default /usr/bin/python3)
#   PGJDBC    the JDBC driver's jar (default /usr/share/java/postgresql.jar)
set -uo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLIENTS=$ROOT/test/clients
PYTHON=${PYTHON:-/usr/bin/python3}
PGJDBC=${PGJDBC:-/usr/share/java/postgresql.jar}

# Which runtimes exist: a missing one is named, and fails its client.
declare -A missing=()
[ -x "$PYTHON" ] && "$PYTHON" -c 'import psycopg2' 2>/dev/null || missing[psycopg2]="python3-psycopg2 for $PYTHON"
[ -x "$PYTHON" ] && "$PYTHON" -c 'import psycopg' 2>/dev/null || missing[psycopg3]="python3-psycopg for $PYTHON"
command -v node >/dev/null && command -v npm >/dev/null || missing[node-postgres]="nodejs and npm"
command -v javac >/dev/null && command -v java >/dev/null && [ -r "$PGJDBC" ] ||
	missing[jdbc]="default-jdk-headless (javac, java) and libpostgresql-jdbc-java ($PGJDBC)"
if [ ${#missing[@]} -eq 4 ]; then
	list=$(IFS=';' && echo "${missing[*]}")
	echo "SKIP: no client runtime (missing: ${list//;/; })"
	exit 77
fi

DB=loyalty_clients
TMP=$(mktemp -d -t loyalty-clients.XXXXXX)
cleanup() { "$PGBIN/dropdb" --if-exists "$DB"; rm -rf "$TMP"; }
trap cleanup EXIT
"$PGBIN/dropdb" --if-exists "$DB" 2>/dev/null
"$PGBIN/createdb" "$DB" && "$PGBIN/psql" -qX -d "$DB" -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION loyalty' || exit 1
export PGDATABASE=$DB

passed=0 failed=0
# client NAME COMMAND...: run one client (at most 2 minutes), count it
client() {
	local name=$1
	shift
	echo "== $name"
	if [ -n "${missing[$name]:-}" ]; then
		echo "FAIL $name cannot run: missing ${missing[$name]}"
		failed=$((failed + 1))
		return
	fi
	if timeout 120 "$@"; then
		passed=$((passed + 1))
	else
		echo "FAIL $name (exit $?)"
		failed=$((failed + 1))
	fi
}

node_flow() {
	cd "$CLIENTS/node" || return 1
	if [ ! -e node_modules/pg/package.json ]; then
		echo "installing pg with npm ci (test/clients/node/package-lock.json)"
		npm ci --no-audit --no-fund >"$TMP/npm.log" 2>&1 || {
			tail -20 "$TMP/npm.log"
			rm -rf node_modules
			echo "FAIL node-postgres: npm ci could not install pg (is the npm registry reachable?)"
			return 1
		}
	fi
	node flow.js
}

jdbc_flow() {
	javac -d "$TMP/java" -cp "$PGJDBC" "$CLIENTS/java/Flow.java" && java -cp "$TMP/java:$PGJDBC" Flow
}

client psycopg2 "$PYTHON" "$CLIENTS/psycopg2_flow.py"
client psycopg3 "$PYTHON" "$CLIENTS/psycopg3_flow.py"
export -f node_flow jdbc_flow
export CLIENTS TMP PGJDBC
client node-postgres bash -c node_flow
client jdbc bash -c jdbc_flow

echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
