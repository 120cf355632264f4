#!/usr/bin/env bash
# Upgrade path: install the oldest released version (loyalty--1.0.sql, made
# from src/sql/updates/ by the Makefile), populate it, ALTER EXTENSION ...
# UPDATE to the current version through every upgrade script, and compare
# the catalog (every member object's definition, privileges, comments,
# policies, config-dump registration) with a fresh install of the current
# version; then check that the data written under the old version is still
# sound and usable.  Runs inside the throwaway cluster of tools/test.sh.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OLDEST=$(ls "$ROOT"/src/sql/updates/loyalty--*.sql | sed -n 's/.*loyalty--\([0-9.]*\)\.sql$/\1/p' | sort -V | head -1)
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/loyalty.control")
UP=loyalty_upgrade_old
FRESH=loyalty_upgrade_fresh
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; "$PGBIN/dropdb" --if-exists $UP; "$PGBIN/dropdb" --if-exists $FRESH' EXIT
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
[[ -n $OLDEST && $OLDEST != "$CURRENT" ]] || { echo "FAIL no released version older than $CURRENT in src/sql/updates/"; exit 1; }
echo "upgrade: $OLDEST -> $CURRENT"

"$PGBIN/createdb" $UP
"$PGBIN/createdb" $FRESH
psql -d $UP -c "CREATE EXTENSION loyalty VERSION '$OLDEST'"
# data written by the old version
psql -d $UP -o /dev/null <<'SQL'
SELECT loyalty.create_program('upgrade', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'c' || g) FROM generate_series(1, 20) g;
SELECT loyalty.earn(m.member_id, 100 + m.member_id, 'pos', 'o' || m.member_id) FROM loyalty.members m;
SELECT loyalty.redeem(m.member_id, '30') FROM loyalty.members m WHERE m.member_id % 2 = 0;
-- a stored model (BG/NBD, the CDNOW estimates)
INSERT INTO loyalty.models (program_id, calibration_end, time_unit, bgnbd)
VALUES (:p, current_date, 'week', ROW(0.243, 4.414, 0.793, 2.426, -9582.4, 2357));
SQL
psql -d $UP -c "ALTER EXTENSION loyalty UPDATE TO '$CURRENT'"
psql -d $FRESH -c "CREATE EXTENSION loyalty"

# the catalog of everything the extension owns, one line per fact
catalog() {
    psql -d "$1" -A -t <<'SQL'
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'loyalty'),
m AS (SELECT d.classid, d.objid FROM pg_depend d, ext WHERE d.refobjid = ext.oid AND d.deptype = 'e')
SELECT 'version ' || extversion || ' config ' || coalesce((SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text) FROM unnest(extconfig) c), '')
FROM pg_extension WHERE extname = 'loyalty'
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '-')
       || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid AND p.prokind <> 'a'
UNION ALL
SELECT 'aggregate ' || p.oid::regprocedure || ' ' || a.aggtransfn || ' ' || a.aggcombinefn || ' ' || a.aggfinalfn
FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid AND p.prokind = 'a'
JOIN pg_aggregate a ON a.aggfnoid = p.oid
UNION ALL
SELECT 'relation ' || c.relkind::text || ' ' || c.oid::regclass || ' acl ' || coalesce(c.relacl::text, '-')
       || ' rls ' || c.relrowsecurity || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '-')
       || CASE WHEN c.relkind = 'v' THEN ' view ' || pg_get_viewdef(c.oid) ELSE '' END
FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull ' || a.attnotnull || ' default ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
       || ' comment ' || coalesce(col_description(a.attrelid, a.attnum), '-')
FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid AND c.relkind IN ('r', 'p', 'v')
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
UNION ALL
SELECT 'constraint ' || r.conrelid::regclass || ' ' || r.conname || ' ' || pg_get_constraintdef(r.oid)
FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid JOIN pg_constraint r ON r.conrelid = c.oid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid JOIN pg_index i ON i.indrelid = c.oid
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || pol.schemaname || '.' || pol.tablename || ' ' || pol.policyname || ' ' || pol.cmd || ' ' || coalesce(pol.qual, '-')
FROM pg_policies pol WHERE pol.schemaname = 'loyalty'
UNION ALL
SELECT 'type ' || t.oid::regtype || ' ' || t.typtype::text
FROM m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
UNION ALL
SELECT 'operator ' || o.oid::regoperator || ' ' || o.oprcode::regprocedure
FROM m JOIN pg_operator o ON m.classid = 'pg_operator'::regclass AND o.oid = m.objid
UNION ALL
SELECT 'cast ' || format_type(k.castsource, NULL) || ' -> ' || format_type(k.casttarget, NULL) || ' ' || k.castcontext::text || ' ' || k.castmethod::text
FROM m JOIN pg_cast k ON m.classid = 'pg_cast'::regclass AND k.oid = m.objid
UNION ALL
SELECT 'opclass ' || oc.opcname || ' ' || am.amname
FROM m JOIN pg_opclass oc ON m.classid = 'pg_opclass'::regclass AND oc.oid = m.objid JOIN pg_am am ON am.oid = oc.opcmethod
UNION ALL
SELECT 'schema acl ' || coalesce(n.nspacl::text, '-') FROM pg_namespace n WHERE n.nspname = 'loyalty'
ORDER BY 1;
SQL
}
catalog $UP >"$TMP/upgraded.txt"
catalog $FRESH >"$TMP/fresh.txt"
fail=0
n=$(wc -l <"$TMP/fresh.txt")
if diff -u "$TMP/fresh.txt" "$TMP/upgraded.txt" >"$TMP/diff.txt"; then
    echo "ok   the upgraded catalog equals a fresh $CURRENT install ($n facts compared)"
else
    echo "FAIL the upgraded catalog differs from a fresh $CURRENT install (- fresh, + upgraded):"
    head -60 "$TMP/diff.txt"
    fail=1
fi

# the old data is sound and the new code works on it
out=$(psql -d $UP -A -t <<'SQL'
SELECT (SELECT count(*) FROM loyalty.verify())
    || ' ' || (SELECT count(*) FROM loyalty.members)
    || ' ' || (SELECT sum(balance::bigint) FROM loyalty.accounts);
SQL
)
check() { if [[ $2 == "$3" ]]; then echo "ok   $1"; else echo "FAIL $1: got '$2', expected '$3'"; fail=1; fi; }
# 20 members earned 100 + id each; 10 redeemed 30
expected_sum=$(psql -d $UP -A -t -c "SELECT sum(100 + member_id) - 300 FROM loyalty.members")
check "old data: verify() clean, 20 members, balances kept" "$out" "0 20 $expected_sum"
after=$(psql -d $UP -A -t <<'SQL'
SELECT loyalty.earn(min(member_id), 50) FROM loyalty.members;
SELECT loyalty.redeem(min(member_id), '10') IS NOT NULL FROM loyalty.members;
SELECT count(*) FROM loyalty.verify();
SQL
)
check "the updated extension earns and redeems on old data" "$(echo $after)" "50 t 0"
models=$(psql -d $UP -A -t <<'SQL'
SELECT (SELECT string_agg(purchase_model || ' ' || (mbgnbd IS NULL)::text, ',') FROM loyalty.models)
    || ' ' || (SELECT count(*) FROM loyalty.member_predictions
               WHERE purchase_model = 'bgnbd' AND p_alive = 1 AND prediction_failure IS NULL);
SQL
)
check "a model stored before: predicts with BG/NBD, as it did, for every member" "$models" "bgnbd true 20"

# An install partitioned under 1.3: the update renames its partitions (and
# their indexes) as pg_partman names them, and it goes on working.
PART=loyalty_upgrade_part
"$PGBIN/createdb" $PART
trap 'rm -rf "$TMP"; "$PGBIN/dropdb" --if-exists $UP; "$PGBIN/dropdb" --if-exists $FRESH; "$PGBIN/dropdb" --if-exists $PART' EXIT
psql -d $PART -o /dev/null <<'SQL'
CREATE EXTENSION loyalty VERSION '1.3';
SELECT loyalty.create_program('partitioned') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'c' || g) FROM generate_series(1, 5) g;
SELECT loyalty.earn(m.member_id, 10 * m.member_id) FROM loyalty.members m;
SELECT loyalty.partition_ledger('1 month', 2);
SQL
psql -d $PART -c "ALTER EXTENSION loyalty UPDATE TO '$CURRENT'"
out=$(psql -d $PART -A -t <<'SQL'
SELECT count(*) FILTER (WHERE c.relname ~ '^ledger_p[0-9]{4}_[0-9]{2}(_|$)')
    || ' ' || count(*) FILTER (WHERE c.relname ~ '^ledger_p[0-9]{8}')
FROM pg_class c WHERE c.relnamespace = 'loyalty'::regnamespace;
SELECT loyalty.create_ledger_partitions(3);
SELECT count(*) FROM loyalty.ledger_partitions() p
WHERE NOT p.is_default AND p.partition::text <> 'loyalty.' || loyalty.ledger_partition_name(p.lower_bound, p.upper_bound);
SELECT loyalty.earn(min(member_id), 5) FROM loyalty.members;
SELECT count(*) FROM loyalty.verify();
SQL
)
# 3 partitions with their primary key, reference index and entry-id BRIN index each, none
# left under its old name;
# one more partition ahead, named as the others
check "a ledger partitioned under 1.3: partitions and indexes renamed, one more made ahead, writes, verify() clean" \
    "$(echo $out)" "12 0 1 0 5 0"
exit $fail
