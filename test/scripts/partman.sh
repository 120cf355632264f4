#!/usr/bin/env bash
# pg_partman (Debian's postgresql-15-partman, 4.7) managing the partitioned
# ledger, as doc/operations.md says to set it up, over two years of a
# program's life: a cluster of our own whose clock is moved with Debian's
# faketime (the ledger's created_at is the database's clock, and a partition
# is only worth testing when time reaches it).
#
#   800 days ago   the API writes a history; the ledger is converted and
#                  pg_partman adopts it (create_parent): every partition it
#                  makes has the TRUNCATE refusal and row-level security;
#   740 days ago   run_maintenance() makes the months ahead; earns and
#                  redemptions land in a partition pg_partman made;
#   now            run_maintenance() catches up two years; writes land in a
#                  partition it made; its retention drops empty partitions
#                  but is refused (DETACH, DROP) where they hold entries;
#                  archive_ledger() retires them, after which a retention as
#                  long finds nothing to drop and a shorter one is refused
#                  (the carry_forward entries' partition); a dump restores
#                  (pg_restore, post-data with -j 2) and maintenance and
#                  writes go on in the copy; an install partitioned under 1.3
#                  upgrades (partitions renamed) and pg_partman adopts it.
#
# verify() is empty after every step.  Skips (exit 77) only when
# postgresql-15-partman or faketime cannot be installed.
set -euo pipefail
BIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../../tools/common.sh"
PGBIN=$BIN      # common.sh sets the system's
PACKAGES=()
if ! ensure_packages postgresql-15-partman faketime >/dev/null 2>&1 ||
	[ ! -f /usr/share/postgresql/15/extension/pg_partman.control ] || ! command -v faketime >/dev/null; then
	echo "SKIP: Debian's postgresql-15-partman or faketime cannot be installed here"
	exit 77
fi

TMP=$(mktemp -d -t loyalty-partman.XXXXXX)
PORT=54396
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN=(runuser -u postgres --); else RUN=(); fi
cleanup() { set +e; "${RUN[@]}" "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT
DB=partman
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP" -p $PORT -U postgres -d $DB "$@"; }

# The server with its clock `$1` days off (0: the real clock).  pg_ctl itself
# does not run under faketime (its wait for the server compares times).
start() {
	local ft=()
	[ "$1" = 0 ] || ft=(env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$1d")
	"${RUN[@]}" "${ft[@]}" "$PGBIN/postgres" -D "$TMP/data" -p $PORT -k "$TMP" -c listen_addresses= \
		-c timezone=America/New_York >>"$TMP/server.log" 2>&1 </dev/null &
	for _ in $(seq 100); do "$PGBIN/pg_isready" -q -h "$TMP" -p $PORT && return; sleep 0.1; done
	echo "FAIL the server did not start"; tail -20 "$TMP/server.log"; exit 1
}
stop() { "${RUN[@]}" "$PGBIN/pg_ctl" -D "$TMP/data" -w -m fast stop >/dev/null; }

fail=0
check() { if [ "$(q -c "$2")" = t ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
# a statement that must fail, with `$2` in its error
refused() {
	local out
	if out=$(q -c "$3" 2>&1); then
		echo "FAIL $1: ran without an error"; fail=1
	elif grep -q "$2" <<<"$out"; then
		echo "ok   $1"
	else
		echo "FAIL $1: $(head -3 <<<"$out")"; fail=1
	fi
}
# every partition of the ledger has what the extension gives its own
SETUP="SELECT count(*) > 0 AND bool_and(EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = 'ledger_no_truncate')
                               AND c.relrowsecurity
                               AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.relid AND p.polname = 'program_isolation'))
       FROM pg_partition_tree('loyalty.ledger') t JOIN pg_class c ON c.oid = t.relid WHERE t.level > 0"
BOOKS="SELECT NOT EXISTS (SELECT 1 FROM loyalty.verify())"

"${RUN[@]}" "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust >/dev/null

# == 800 days ago: a history, the conversion, pg_partman adopts the ledger ====
start -800
"$PGBIN/createdb" -h "$TMP" -p $PORT -U postgres $DB
q -o /dev/null <<'SQL'
CREATE EXTENSION loyalty;
CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
SELECT loyalty.create_program('partman', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'c' || g) FROM generate_series(1, 20) g;
SELECT loyalty.earn(m.member_id, 100 + m.member_id, 'pos', 'a-' || m.member_id) FROM loyalty.members m;
SELECT loyalty.redeem(m.member_id, '30', 'pos', 'ar-' || m.member_id) FROM loyalty.members m WHERE m.member_id % 2 = 0;
CREATE TABLE made_by (rel regclass PRIMARY KEY, tool text NOT NULL);
-- doc/operations.md, "pg_partman": the conversion and create_parent in one
-- transaction, in UTC
BEGIN;
SET LOCAL TimeZone = 'UTC';
SELECT loyalty.partition_ledger('1 month', ahead => 0);
INSERT INTO made_by SELECT partition, 'loyalty' FROM loyalty.ledger_partitions() WHERE NOT is_default;
DROP TABLE loyalty.ledger_default;
SELECT partman.create_parent('loyalty.ledger', 'created_at', 'native', 'monthly', p_premake => 4);
UPDATE partman.part_config SET infinite_time_partitions = true WHERE parent_table = 'loyalty.ledger';
COMMIT;
INSERT INTO made_by SELECT relid, 'pg_partman' FROM pg_partition_tree('loyalty.ledger') WHERE level > 0
ON CONFLICT DO NOTHING;
SQL
echo "-- 800 days ago ($(q -c "SELECT now()::date"))"
check "pg_partman made 8 partitions next to the converted one, and the DEFAULT one" \
	"SELECT count(*) FILTER (WHERE tool = 'pg_partman') = 9 AND count(*) FILTER (WHERE tool = 'loyalty') = 1
            AND 'loyalty.ledger_default'::regclass IN (SELECT rel FROM made_by WHERE tool = 'pg_partman') FROM made_by"
check "every partition has the TRUNCATE refusal and row-level security with the ledger's policy" "$SETUP"
refused "TRUNCATE of a partition pg_partman made is refused" "the loyalty ledger is append-only" \
	"DO \$\$ BEGIN EXECUTE format('TRUNCATE %s', (SELECT max(rel::text) FROM made_by WHERE tool = 'pg_partman' AND rel::text <> 'loyalty.ledger_default')); END \$\$"
check "the books are sound" "$BOOKS"
stop

# == 740 days ago: maintenance, writes in a partition pg_partman made =========
start -740
echo "-- 740 days ago ($(q -c "SELECT now()::date"))"
before=$(q -c "SELECT count(*) FROM pg_partition_tree('loyalty.ledger') WHERE level > 0")
q -o /dev/null <<'SQL'
SET TimeZone = 'UTC';
SELECT partman.run_maintenance('loyalty.ledger');
SQL
made=$(($(q -c "SELECT count(*) FROM pg_partition_tree('loyalty.ledger') WHERE level > 0") - before))
q -o /dev/null -c "INSERT INTO made_by SELECT relid, 'pg_partman' FROM pg_partition_tree('loyalty.ledger') WHERE level > 0 ON CONFLICT DO NOTHING"
check "run_maintenance() made the months ahead ($made)" "SELECT $made >= 1"
check "they have the TRUNCATE refusal and row-level security" "$SETUP"
q -o /dev/null <<'SQL'
SELECT loyalty.earn(m.member_id, 40, 'web', 'b-' || m.member_id) FROM loyalty.members m;
SELECT loyalty.redeem(m.member_id, '25', 'web', 'br-' || m.member_id) FROM loyalty.members m WHERE m.member_id % 3 = 0;
SQL
check "earns and redemptions land in the month's partition, which pg_partman made" \
	"SELECT count(*) = 26 AND bool_and(l.tableoid IN (SELECT rel FROM made_by WHERE tool = 'pg_partman'))
            AND bool_and(l.tableoid::regclass::text = 'loyalty.ledger_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'))
     FROM loyalty.ledger l WHERE l.reference LIKE 'b%'"
check "the books are sound" "$BOOKS"
stop

# == now: two years of maintenance at once, writes, retention ==================
start 0
echo "-- now ($(q -c "SELECT now()::date"))"
before=$(q -c "SELECT count(*) FROM pg_partition_tree('loyalty.ledger') WHERE level > 0")
q -o /dev/null -c "SET TimeZone = 'UTC'" -c "SELECT partman.run_maintenance('loyalty.ledger')"
made=$(($(q -c "SELECT count(*) FROM pg_partition_tree('loyalty.ledger') WHERE level > 0") - before))
q -o /dev/null -c "INSERT INTO made_by SELECT relid, 'pg_partman' FROM pg_partition_tree('loyalty.ledger') WHERE level > 0 ON CONFLICT DO NOTHING"
check "run_maintenance() caught up two years ($made partitions)" "SELECT $made >= 20"
check "every partition has the TRUNCATE refusal and row-level security" "$SETUP"
q -o /dev/null <<'SQL'
SELECT loyalty.earn(m.member_id, 70, 'pos', 'c-' || m.member_id) FROM loyalty.members m;
SELECT loyalty.redeem(m.member_id, '10', 'pos', 'cr-' || m.member_id) FROM loyalty.members m WHERE m.member_id % 4 = 0;
SQL
check "today's earns and redemptions land in this month's partition, which pg_partman made" \
	"SELECT count(*) = 25 AND bool_and(l.tableoid IN (SELECT rel FROM made_by WHERE tool = 'pg_partman'))
            AND bool_and(l.tableoid::regclass::text = 'loyalty.ledger_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'))
     FROM loyalty.ledger l WHERE l.reference LIKE 'c%'"
check "the books are sound" "$BOOKS"

# pg_partman's retention: it may drop partitions without entries (the empty
# months create_parent made before the first one), not the others
NPARTS="SELECT count(*) FROM pg_partition_tree('loyalty.ledger') WHERE level > 0"
MAINTAIN="SET TimeZone = 'UTC'; SELECT partman.run_maintenance('loyalty.ledger')"
retention() { q -o /dev/null -c "UPDATE partman.part_config SET retention = $1, retention_keep_table = $2 WHERE parent_table = 'loyalty.ledger'"; }
parts=$(q -c "$NPARTS")
empty=$(q -c "SELECT count(*) FROM loyalty.ledger_partitions() p
              WHERE NOT p.is_default AND p.upper_bound < now() - interval '27 months'
                AND NOT EXISTS (SELECT 1 FROM loyalty.ledger l WHERE l.tableoid = p.partition)")
retention "'27 months'" false
q -o /dev/null -c "$MAINTAIN"
check "pg_partman's retention drops the empty partitions older than it ($empty)" \
	"SELECT $empty >= 3 AND count(*) = $parts - $empty FROM pg_partition_tree('loyalty.ledger') WHERE level > 0"
parts=$(q -c "$NPARTS")
retention "'12 months'" true
refused "pg_partman's retention detaching partitions that hold entries is refused" \
	"cannot detach partition loyalty.ledger_p.*: it holds ledger entries that were not carried forward" "$MAINTAIN"
retention "'12 months'" false
refused "... and so is its retention dropping them" \
	"cannot drop table loyalty.ledger_p.*: it holds ledger entries that were not carried forward" "$MAINTAIN"
check "no partition left the ledger" "SELECT count(*) = $parts FROM pg_partition_tree('loyalty.ledger') WHERE level > 0"
check "the books are sound" "$BOOKS"

# the documented retention: archive_ledger() (after the expiry job wrote the
# old points off, as it does every night)
retention NULL false
q -o /dev/null <<'SQL'
SET client_min_messages = warning;
CALL loyalty.expire_points();
CREATE TABLE archived AS SELECT * FROM loyalty.archive_ledger(now() - interval '13 months');
SQL
check "archive_ledger() retired the partitions with the old entries" \
	"SELECT count(*) FILTER (WHERE entries > 0 AND carried_members > 0) >= 2 FROM archived"
check "the books are sound after archiving" "$BOOKS"
parts=$(q -c "$NPARTS")
retention "'13 months'" false
q -o /dev/null -c "$MAINTAIN"
check "a retention as long as the archive's finds nothing left to drop" "SELECT count(*) = $parts FROM pg_partition_tree('loyalty.ledger') WHERE level > 0"
retention "'12 months'" false
refused "a shorter one reaches the partition of the carry_forward entries, and is refused" \
	"cannot drop table loyalty.ledger_p.*: it holds ledger entries that were not carried forward" "$MAINTAIN"
retention NULL false
check "the books are sound" "$BOOKS"

# == dump and restore ==========================================================
snapshot() {
	q -d "$1" -c "SELECT * FROM loyalty.ledger ORDER BY member_id, entry_id" \
		-c "SELECT * FROM loyalty.accounts ORDER BY member_id" \
		-c "SELECT * FROM loyalty.lots ORDER BY member_id, lot_id" \
		-c "SELECT partition, lower_bound, upper_bound FROM loyalty.ledger_partitions()" \
		-c "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            WHERE c.relname LIKE 'ledger%' AND c.relnamespace = 'loyalty'::regnamespace AND NOT t.tgisinternal ORDER BY 1, 2" \
		-c "SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'loyalty' AND tablename LIKE 'ledger%' ORDER BY 1, 2" \
		-c "SELECT parent_table, control, partition_interval, premake, infinite_time_partitions, retention FROM partman.part_config" \
		-c "SELECT * FROM loyalty.ledger_partitioning" \
		-c "SELECT 'violations', count(*) FROM loyalty.verify()"
}
"$PGBIN/pg_dump" -h "$TMP" -p $PORT -U postgres -Fc -d $DB -f "$TMP/dump.fc"
"$PGBIN/createdb" -h "$TMP" -p $PORT -U postgres ${DB}_restored
"$PGBIN/pg_restore" -h "$TMP" -p $PORT -U postgres --exit-on-error --section=pre-data --section=data -d ${DB}_restored "$TMP/dump.fc"
"$PGBIN/pg_restore" -h "$TMP" -p $PORT -U postgres --exit-on-error --section=post-data -j 2 -d ${DB}_restored "$TMP/dump.fc"
snapshot $DB >"$TMP/src.txt"
snapshot ${DB}_restored >"$TMP/restored.txt"
if diff -u "$TMP/src.txt" "$TMP/restored.txt" >"$TMP/diff.txt"; then
	echo "ok   the restore is identical ($(wc -l <"$TMP/src.txt") lines: ledger, balances, lots, partitions, their triggers and policies, pg_partman's configuration)"
else
	echo "FAIL the restore differs:"; head -40 "$TMP/diff.txt"; fail=1
fi
DB=${DB}_restored
q -o /dev/null <<'SQL'
UPDATE partman.part_config SET premake = 6 WHERE parent_table = 'loyalty.ledger';
SET TimeZone = 'UTC';
SELECT partman.run_maintenance('loyalty.ledger');
SELECT loyalty.earn(m.member_id, 5, 'pos', 'd-' || m.member_id) FROM loyalty.members m;
SQL
check "in the copy, pg_partman makes more partitions, set up as the others" \
	"SELECT count(*) = 2 FROM loyalty.ledger_partitions() WHERE lower_bound > now() + interval '4 months'"
check "... which have the TRUNCATE refusal and row-level security" "$SETUP"
refused "... and a partition holding entries may not be detached" "it holds ledger entries that were not carried forward" \
	"DO \$\$ BEGIN EXECUTE format('ALTER TABLE loyalty.ledger DETACH PARTITION loyalty.%I', 'ledger_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')); END \$\$"
check "the copy's books are sound" "$BOOKS"

# == an install partitioned under 1.3, upgraded, adopted by pg_partman =========
DB=partman_upgraded
"$PGBIN/createdb" -h "$TMP" -p $PORT -U postgres $DB
q -o /dev/null <<'SQL'
CREATE EXTENSION loyalty VERSION '1.3';
CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
SELECT loyalty.create_program('upgraded') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'u' || g) FROM generate_series(1, 5) g;
SELECT loyalty.earn(m.member_id, 10 * m.member_id) FROM loyalty.members m;
SELECT loyalty.partition_ledger('1 month', 2);
ALTER EXTENSION loyalty UPDATE TO '1.4';
SQL
check "the upgrade renamed the partitions as pg_partman names them" \
	"SELECT count(*) = 3 AND bool_and(partition::text ~ '^loyalty\.ledger_p[0-9]{4}_[0-9]{2}$')
     FROM loyalty.ledger_partitions() WHERE NOT is_default"
check "... and their indexes" \
	"SELECT NOT EXISTS (SELECT 1 FROM pg_class WHERE relname ~ '^ledger_p[0-9]{8}' AND relnamespace = 'loyalty'::regnamespace)"
q -o /dev/null <<'SQL'
BEGIN;
SET LOCAL TimeZone = 'UTC';
DROP TABLE loyalty.ledger_default;
SELECT partman.create_parent('loyalty.ledger', 'created_at', 'native', 'monthly', p_premake => 4);
UPDATE partman.part_config SET infinite_time_partitions = true WHERE parent_table = 'loyalty.ledger';
COMMIT;
SELECT loyalty.earn(m.member_id, 7) FROM loyalty.members m;
SQL
check "pg_partman adopts it: its partitions sit next to the renamed ones (4 back, 2 more ahead, DEFAULT)" \
	"SELECT count(*) = 10 FROM pg_partition_tree('loyalty.ledger') WHERE level > 0"
check "every partition has the TRUNCATE refusal and row-level security" "$SETUP"
check "the books are sound" "$BOOKS"

# == create_parent finding every partition there: no DEFAULT, which the ======
# extension's function then makes
DB=partman_nodefault
"$PGBIN/createdb" -h "$TMP" -p $PORT -U postgres $DB
q -o /dev/null <<'SQL'
CREATE EXTENSION loyalty;
CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
SELECT loyalty.create_program('nodefault') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'n1') AS m \gset
SELECT loyalty.earn(:m, 10);
SET TimeZone = 'UTC';
SELECT loyalty.partition_ledger('1 month', ahead => 4);
SELECT loyalty.create_ledger_partitions(4, since => now() - interval '4 months');
DROP TABLE loyalty.ledger_default;
SET client_min_messages = error;
CREATE TABLE made AS SELECT partman.create_parent('loyalty.ledger', 'created_at', 'native', 'monthly', p_premake => 4) AS made;
RESET client_min_messages;
SELECT loyalty.create_ledger_partitions(0);
SQL
check "create_parent with every partition there makes none and no DEFAULT; create_ledger_partitions(0) makes it, set up" \
	"SELECT NOT made AND (SELECT count(*) = 1 FROM loyalty.ledger_partitions() WHERE is_default) AND ($SETUP) FROM made"
check "the books are sound" "$BOOKS"

exit $fail
