# Shared by tools/demo.sh and tools/test.sh: install what is missing from
# Debian's packages, build, install.  Sourced, not run.
set -euo pipefail

PGVER=15
PGBIN=/usr/lib/postgresql/$PGVER/bin
PG_CONFIG=$PGBIN/pg_config
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PG_CONFIG

# Debian packages the build and the tests need (a minbase Debian has none of
# them): build-essential is what dpkg-buildpackage checks for, procps gives
# the scripts pgrep, pg_cron and wal2json are for test/scripts/pg_cron_jobs.sh
# and cdc.sh, pg_partman and faketime for partman.sh.  The last line is for the real clients of
# test/scripts/clients.sh: Debian's psycopg2 and psycopg 3, Node.js and npm
# (node-postgres itself comes from the npm registry), a JDK and Debian's JDBC
# driver.
PACKAGES=(
	build-essential make gcc libc6-dev procps
	postgresql-$PGVER postgresql-server-dev-$PGVER postgresql-contrib
	postgresql-$PGVER-pgtap libtap-parser-sourcehandler-pgtap-perl
	debhelper dpkg-dev postgresql-server-dev-all git python3
	postgresql-$PGVER-cron postgresql-$PGVER-wal2json postgresql-$PGVER-partman faketime
	pg-bsd-indent cppcheck
	python3-psycopg2 python3-psycopg nodejs npm default-jdk-headless libpostgresql-jdbc-java
)
# Only the tests (tools/test.sh) need these: test/scripts/report.sh renders
# the HTML report in headless Chromium, with a font of known metrics;
# sqlsmith sends test/scripts/sqlsmith.sh its random queries.
TEST_PACKAGES=(chromium fonts-dejavu-core sqlsmith)

say() { printf '\n==> %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install whatever of PACKAGES is not installed yet (nothing when all are).
# A name that an installed package provides counts as installed: NodeSource's
# nodejs provides npm, and conflicts with Debian's.
ensure_packages() {
	local missing=() p provided
	provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
		sed -n 's/^ii *|//p' | sed 's/([^)]*)//g' | tr ', ' '\n\n' | sed '/^$/d')
	for p in "${PACKAGES[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			grep -qxF "$p" <<<"$provided" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing from Debian: ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		# Debian's postgresql-common would otherwise create and start a
		# "main" cluster; we only ever use throwaway clusters.
		as_root mkdir -p /etc/postgresql-common/createcluster.d
		echo 'create_main_cluster = false' |
			as_root tee /etc/postgresql-common/createcluster.d/loyalty-no-main.conf >/dev/null
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
}

# Build warning-free (gcc -Werror, then a clang syntax pass) and install.
build_and_install() {
	say "building loyalty (gcc -Wall -Wextra -Werror)"
	cd "$ROOT"
	make -s clean >/dev/null
	make -s -j"$(nproc)" EXTRA_CFLAGS=-Werror
	if command -v clang-14 >/dev/null; then
		say "checking warnings with clang-14 -Wall -Wextra"
		clang-14 -fsyntax-only -Wall -Wextra -Werror \
			-isystem "$($PG_CONFIG --includedir-server)" -Isrc \
			-DLOYALTY_VERSION="\"$(sed -n "s/^default_version = '\(.*\)'/\1/p" loyalty.control)\"" src/*.c
	fi
	say "installing into $($PG_CONFIG --pkglibdir)"
	as_root make -s install PG_CONFIG="$PG_CONFIG"
}

# Run "$@" inside a throwaway cluster (Debian's pg_virtualenv), removed after.
# As root the cluster runs as user postgres; otherwise as the caller.
in_throwaway_cluster() {
	pg_virtualenv -t -v "$PGVER" \
		-o "max_prepared_transactions=10" \
		-o "shared_preload_libraries=" \
		"$@"
}
