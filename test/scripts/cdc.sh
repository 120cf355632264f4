#!/usr/bin/env bash
# The outbox read by change data capture instead of claim_events(): a
# cluster of our own with wal_level = logical, a logical replication slot
# with wal2json (Debian's postgresql-15-wal2json), and writes through the API
# (earns, a reward redemption, a refund, a redemption, earn_batch, an earn
# through the SQL store, a transaction that rolls back, a savepoint that rolls
# back, two transactions that commit in the other order than they wrote their
# events).  The slot, read by a role with REPLICATION and no grant, must
# deliver every committed event once, in commit order, with kind, member and
# payload, nothing of the rolled-back work, and each transaction's events
# together with its ledger rows.  Then what a DBA does for a pgoutput
# consumer (Debezium): publications of loyalty.events (inserts only, one
# program's rows, or every action, under which claim_events(), ack_events()
# and purge_events() still work: replica identity); retention
# (purge_events() deletes acknowledged events only, a slot holds WAL until it
# is read); and a ledger partitioned after the publication was made.
# Runs its own cluster; needs no other server.
set -uo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
LIBDIR=$("$PGBIN/pg_config" --pkglibdir)
[ -f "$LIBDIR/wal2json.so" ] || { echo "cdc.sh: postgresql-15-wal2json is not installed" >&2; exit 1; }
TMP=$(mktemp -d -t loyalty-cdc.XXXXXX)
PORT=54397
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
cleanup() { set +e; $RUN "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP" -p $PORT -U postgres -d postgres "$@"; }

# PostgreSQL 15.19 and later load only the output plugins that
# output_plugin_libraries names (pgoutput and test_decoding by default)
OPTS="-c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4"
if $RUN "$PGBIN/postgres" --describe-config 2>/dev/null | grep "^output_plugin_libraries" >/dev/null; then
    OPTS="$OPTS -c output_plugin_libraries='pgoutput,wal2json'"
fi
$RUN "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust >/dev/null || exit 1
$RUN "$PGBIN/pg_ctl" -D "$TMP/data" -w -t 60 -l "$TMP/server.log" -o "-p $PORT -k $TMP -c listen_addresses='' $OPTS" start >/dev/null ||
    { tail -20 "$TMP/server.log"; exit 1; }

failed=0
ok()  { echo "ok   $1"; }
bad() { echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/       /'; failed=1; }
check() { local out; if out=$(q -c "$2" 2>&1) && [ "$out" = t ]; then ok "$1"; else bad "$1" "$out"; fi; }
run() { local out; if out=$(q "$@" 2>&1); then return 0; else bad "a call failed: $*" "$out"; return 1; fi; }

q -o /dev/null <<'SQL' || exit 1
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('cdc');
SELECT loyalty.enroll(1, 'pos', 'cdc-' || g) FROM generate_series(1, 3) g;
SELECT loyalty.create_reward(1, 'MUG', 'Mug', '20');
SQL
M1=$(q -c "SELECT loyalty.member_id(1, 'pos', 'cdc-1')")
M2=$(q -c "SELECT loyalty.member_id(1, 'pos', 'cdc-2')")
M3=$(q -c "SELECT loyalty.member_id(1, 'pos', 'cdc-3')")
# the events from here on are the ones the slot must deliver
BEFORE=$(q -c "SELECT coalesce(max(event_id), 0) FROM loyalty.events")
BEFORE_ENTRY=$(q -c "SELECT coalesce(max(entry_id), 0) FROM loyalty.ledger")
q -o /dev/null -c "CREATE ROLE cdc_reader LOGIN REPLICATION" -c "GRANT CREATE ON SCHEMA public TO cdc_reader" \
    -c "SELECT loyalty.bind_role(loyalty.create_program('not cdc'), 'cdc_reader')" \
    -c "SELECT pg_create_logical_replication_slot('loyalty_cdc', 'wal2json')" || exit 1
echo "   slot loyalty_cdc (wal2json) created; members $M1 $M2 $M3"

# --- the writes, each psql call a session of its own -------------------------
run -c "SELECT loyalty.earn($M1, 100, reference => 'o1')"
run -c "BEGIN" -c "SELECT loyalty.earn($M2, 50, reference => 'o2')" \
    -c "SELECT loyalty.earn($M1, 30, reference => 'o3')" -c "COMMIT"
# rolled back: an earn and a reward redemption
run -c "BEGIN" -c "SELECT loyalty.earn($M3, 70, reference => 'rb1')" \
    -c "SELECT * FROM loyalty.redeem_reward($M1, 1)" -c "ROLLBACK"
# a savepoint rolled back: its earn and refund are gone, the rest commits
run -c "BEGIN" -c "SELECT loyalty.earn($M2, 20, reference => 'o4')" -c "SAVEPOINT s" \
    -c "SELECT loyalty.earn($M3, 40, reference => 'sp1')" -c "SELECT loyalty.refund($M1, 'o1', 10)" \
    -c "ROLLBACK TO SAVEPOINT s" -c "SELECT loyalty.earn($M3, 15, reference => 'o5')" -c "COMMIT"
run -c "SELECT * FROM loyalty.redeem_reward($M1, 1)"
run -c "SELECT loyalty.refund($M1, 'o1', 40)"
run -c "SELECT loyalty.redeem($M2, 10, reference => 'r1')"
# A writes its event first, then waits (up to 30 s) until B has committed;
# so B commits first although its event_id is the larger
q -c "BEGIN" -c "SELECT loyalty.earn($M3, 25, reference => 'ca')" \
  -c "DO \$\$ BEGIN /* cdc-wait */ FOR i IN 1..600 LOOP
          EXIT WHEN EXISTS (SELECT FROM loyalty.ledger WHERE reference = 'cb');
          PERFORM pg_sleep(0.05); END LOOP; END \$\$" -c "COMMIT" >"$TMP/a.out" 2>&1 &
A=$!
for _ in $(seq 1 200); do
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* cdc-wait */%' AND pid <> pg_backend_pid()")" = 1 ] && break
    sleep 0.05
done
run -c "SELECT loyalty.earn($M2, 35, reference => 'cb')"
wait $A || bad "the transaction that commits last" "$(cat "$TMP/a.out")"
PGOPTIONS='-c loyalty.fast_store=off' run -c "SELECT loyalty.earn($M1, 5, reference => 'sq')"
run -c "SELECT * FROM loyalty.earn_batch(ARRAY[$M1, $M2], ARRAY[10, 20], ARRAY['b1', 'b2'])"

# --- what the slot delivers -------------------------------------------------------
# (read by a role with REPLICATION, no grant on the loyalty schema and bound
# to another program)
if out=$(q 2>&1 <<'SQL'
SET ROLE cdc_reader;
CREATE TABLE public.cdc AS
SELECT c.n, c.data::jsonb AS d
FROM pg_logical_slot_get_changes('loyalty_cdc', NULL, NULL,
         'format-version', '2', 'include-xids', '1',
         'add-tables', 'loyalty.events,loyalty.ledger') WITH ORDINALITY AS c(lsn, xid, data, n);
RESET ROLE;
-- one row per change: the transaction it belongs to (numbered by its B
-- record), the table and the row as name -> value
CREATE VIEW public.cdc_rows AS
SELECT c.n, c.d ->> 'action' AS action, c.d ->> 'table' AS tab, (c.d ->> 'xid')::bigint AS xid,
       count(*) FILTER (WHERE c.d ->> 'action' = 'B') OVER (ORDER BY c.n) AS txn,
       (SELECT jsonb_object_agg(col ->> 'name', col -> 'value') FROM jsonb_array_elements(c.d -> 'columns') col) AS r
FROM public.cdc c;
SQL
); then ok "cdc_reader (REPLICATION, no grant on loyalty, bound to another program) read the slot: $(q -c "SELECT count(*) FROM cdc_rows WHERE action = 'I'") rows in $(q -c "SELECT count(*) FROM cdc_rows WHERE action = 'B'") transactions"
else bad "read the slot" "$out"; fi

# one line per transaction, in the order the slot delivered them: its ledger
# rows (L:kind:reference) and events (E:kind:reference or reward code), sorted
q -c "SELECT string_agg(item, ' ' ORDER BY item COLLATE \"C\") FROM (
        SELECT txn, CASE WHEN tab = 'ledger' THEN 'L:' || (r ->> 'kind') || ':' || (r ->> 'reference')
                         ELSE 'E:' || (r ->> 'kind') || ':' || coalesce((r ->> 'payload')::jsonb ->> 'reference',
                                                                     (r ->> 'payload')::jsonb ->> 'reward_code') END AS item
        FROM cdc_rows WHERE action = 'I') x GROUP BY txn ORDER BY txn" >"$TMP/stream"
cat >"$TMP/expected" <<'EOF'
E:points.earned:o1 L:earn:o1
E:points.earned:o2 E:points.earned:o3 L:earn:o2 L:earn:o3
E:points.earned:o4 E:points.earned:o5 L:earn:o4 L:earn:o5
E:reward.redeemed:MUG L:redeem:reward:MUG
L:reverse:o1
L:redeem:r1
E:points.earned:cb L:earn:cb
E:points.earned:ca L:earn:ca
E:points.earned:sq L:earn:sq
E:points.earned:b1 E:points.earned:b2 L:earn:b1 L:earn:b2
EOF
if diff "$TMP/expected" "$TMP/stream" >"$TMP/diff"; then
    ok "the committed transactions, in commit order, each with its ledger rows and events:"
    sed 's/^/       /' "$TMP/stream"
else bad "the committed transactions, in commit order, with their ledger rows and events" "$(cat "$TMP/diff")"; fi
check "each transaction is framed: a B and a C record with the same xid around its rows" \
    "SELECT bool_and(b.xid = c.xid AND rows.lo > b.n AND rows.hi < c.n AND rows.xids = 1)
            AND count(*) = (SELECT count(*) FROM cdc_rows WHERE action = 'C')
     FROM cdc_rows b
     JOIN LATERAL (SELECT min(n) FILTER (WHERE action = 'C') AS cn FROM cdc_rows x WHERE x.txn = b.txn) e ON true
     JOIN cdc_rows c ON c.n = e.cn
     JOIN LATERAL (SELECT min(n) AS lo, max(n) AS hi, count(DISTINCT xid) AS xids FROM cdc_rows x
                   WHERE x.txn = b.txn AND x.action = 'I') rows ON true
     WHERE b.action = 'B'"
check "every event committed since the slot was made arrives exactly once (and no other)" \
    "SELECT array_agg((r ->> 'event_id')::bigint ORDER BY (r ->> 'event_id')::bigint)
            = (SELECT array_agg(event_id ORDER BY event_id) FROM loyalty.events WHERE event_id > $BEFORE)
     FROM cdc_rows WHERE action = 'I' AND tab = 'events'"
check "every ledger entry committed since then arrives exactly once" \
    "SELECT array_agg((r ->> 'entry_id')::bigint ORDER BY (r ->> 'entry_id')::bigint)
            = (SELECT array_agg(entry_id ORDER BY entry_id) FROM loyalty.ledger WHERE entry_id > $BEFORE_ENTRY)
     FROM cdc_rows WHERE action = 'I' AND tab = 'ledger'"
check "nothing of the rolled-back work: no rb1, sp1, no second reward redemption, no refund of 10" \
    "SELECT NOT EXISTS (SELECT FROM cdc WHERE d::text ~ '\"(rb1|sp1)\"')
        AND (SELECT count(*) FROM cdc_rows WHERE r ->> 'reference' = 'reward:MUG') = 1
        AND (SELECT count(*) FROM cdc_rows WHERE r ->> 'kind' = 'reverse') = 1
        AND (SELECT (r ->> 'points') FROM cdc_rows WHERE r ->> 'kind' = 'reverse') = '-40'"
check "each event carries what a consumer needs: kind, member_id, program_id, payload (JSON text), created_at, as stored" \
    "SELECT count(*) = 11 AND bool_and(e.kind = c.r ->> 'kind' AND e.member_id = (c.r ->> 'member_id')::bigint
                                     AND e.program_id = (c.r ->> 'program_id')::bigint
                                     AND jsonb_typeof(c.r -> 'payload') = 'string'
                                     AND e.payload = (c.r ->> 'payload')::jsonb
                                     AND e.created_at = (c.r ->> 'created_at')::timestamptz)
     FROM cdc_rows c JOIN loyalty.events e ON e.event_id = (c.r ->> 'event_id')::bigint
     WHERE c.action = 'I' AND c.tab = 'events'"
check "a points.earned event names its ledger entry, which arrives in the same transaction, for the same member" \
    "SELECT count(*) = 10 AND bool_and(l.r ->> 'member_id' = e.r ->> 'member_id' AND l.r ->> 'kind' = 'earn')
     FROM cdc_rows e JOIN cdc_rows l ON l.tab = 'ledger' AND l.txn = e.txn
                                    AND l.r ->> 'entry_id' = (e.r ->> 'payload')::jsonb ->> 'entry_id'
     WHERE e.action = 'I' AND e.tab = 'events' AND e.r ->> 'kind' = 'points.earned'"
check "commit order, not event_id order: cb (larger event_id, committed first) arrives before ca" \
    "SELECT (SELECT event_id FROM loyalty.events WHERE payload ->> 'reference' = 'ca')
          < (SELECT event_id FROM loyalty.events WHERE payload ->> 'reference' = 'cb')
        AND (SELECT n FROM cdc_rows WHERE tab = 'events' AND (r ->> 'payload')::jsonb ->> 'reference' = 'cb')
          < (SELECT n FROM cdc_rows WHERE tab = 'events' AND (r ->> 'payload')::jsonb ->> 'reference' = 'ca')"
check "the slot moved on: a second read returns no row (only the empty frames of later transactions)" \
    "SELECT count(*) = 0 FROM pg_logical_slot_get_changes('loyalty_cdc', NULL, NULL, 'format-version', '2',
                                                         'add-tables', 'loyalty.events,loyalty.ledger')
     WHERE data::jsonb ->> 'action' NOT IN ('B', 'C')"

# --- claim/ack are updates, purge a delete: a CDC consumer filters on inserts ------
PENDING=$(q -c "SELECT count(*) FROM loyalty.events WHERE acked_at IS NULL")
run -c "SELECT count(*) FROM loyalty.claim_events(100, 'cdc-test')" \
    -c "SELECT loyalty.ack_events(ARRAY(SELECT event_id FROM loyalty.events WHERE claimed_by = 'cdc-test'))" \
    -c "SELECT loyalty.purge_events(interval '0')"
# every pending event (the enrolments' too) claimed, acknowledged and purged
out=$(q -c "SELECT string_agg(a || '=' || n, ' ' ORDER BY a) FROM (
              SELECT data::jsonb ->> 'action' AS a, count(*) AS n
              FROM pg_logical_slot_peek_changes('loyalty_cdc', NULL, NULL, 'format-version', '2', 'add-tables', 'loyalty.events')
              WHERE data::jsonb ->> 'action' NOT IN ('B', 'C') GROUP BY 1) x" 2>&1)
[ "$out" = "D=$PENDING U=$((2 * PENDING))" ] && ok "claim_events() and ack_events() reach the slot as updates, purge_events() as deletes ($out)" ||
    bad "claim, ack and purge reach the slot as updates and deletes" "$out"
check "... which a consumer that asks for inserts only (actions => insert) does not see" \
    "SELECT count(*) = 0 FROM pg_logical_slot_get_changes('loyalty_cdc', NULL, NULL, 'format-version', '2',
                                                         'add-tables', 'loyalty.events', 'actions', 'insert')
     WHERE data::jsonb ->> 'action' NOT IN ('B', 'C')"

# --- a pgoutput publication, as a DBA makes it for Debezium ----------------------
if out=$(q 2>&1 <<'SQL'
CREATE PUBLICATION loyalty_outbox FOR TABLE loyalty.events WITH (publish = 'insert');
SELECT 'slot' FROM pg_create_logical_replication_slot('loyalty_pgoutput', 'pgoutput');
SQL
); then ok "CREATE PUBLICATION loyalty_outbox FOR TABLE loyalty.events WITH (publish = 'insert'), and a pgoutput slot"
else bad "CREATE PUBLICATION for loyalty.events" "$out"; fi
LAG0=$(q -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'loyalty_pgoutput'")
run -c "SELECT loyalty.earn($M1, 12, reference => 'p1')" -c "SELECT loyalty.earn($M2, 13, reference => 'p2')" \
    -c "SELECT count(*) FROM loyalty.claim_events(100, 'pub')" \
    -c "SELECT loyalty.ack_events(ARRAY(SELECT event_id FROM loyalty.events WHERE claimed_by = 'pub'))" \
    -c "SELECT loyalty.purge_events(interval '0')"
LAG1=$(q -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'loyalty_pgoutput'")
# pgoutput messages: B(egin), R(elation), I(nsert), U(pdate), D(elete), C(ommit);
# a relation message names the schema and table after its type byte and oid
check "pgoutput delivers the two inserts of loyalty.events and nothing else (publish = 'insert')" \
    "SELECT count(*) FILTER (WHERE get_byte(data, 0) = ascii('I')) = 2
        AND count(*) FILTER (WHERE get_byte(data, 0) IN (ascii('U'), ascii('D'))) = 0
        AND array_agg(DISTINCT split_part(encode(substr(data, 6, 40), 'escape'), '\\000', 1) || '.'
                               || split_part(encode(substr(data, 6, 40), 'escape'), '\\000', 2))
              FILTER (WHERE get_byte(data, 0) = ascii('R')) = '{loyalty.events}'
     FROM pg_logical_slot_get_binary_changes('loyalty_pgoutput', NULL, NULL,
                                             'proto_version', '1', 'publication_names', 'loyalty_outbox')"
# one program's events: a row filter on the publication
P2=$(q -c "SELECT loyalty.create_program('cdc-2')")
M4=$(q -c "SELECT loyalty.enroll($P2, 'pos', 'cdc-4')")
q -o /dev/null -c "CREATE PUBLICATION loyalty_outbox_p2 FOR TABLE loyalty.events WHERE (program_id = $P2) WITH (publish = 'insert')" \
    -c "SELECT pg_create_logical_replication_slot('loyalty_p2', 'pgoutput')"
run -c "SELECT loyalty.earn($M4, 21, reference => 'f1')" -c "SELECT loyalty.earn($M1, 22, reference => 'f2')"
check "a publication with WHERE (program_id = ...) delivers that program's events only" \
    "SELECT count(*) FILTER (WHERE get_byte(data, 0) = ascii('I')) = 1
            AND bool_or(get_byte(data, 0) = ascii('I') AND position('f1'::bytea IN data) > 0)
     FROM pg_logical_slot_get_binary_changes('loyalty_p2', NULL, NULL,
                                             'proto_version', '1', 'publication_names', 'loyalty_outbox_p2')"
q -o /dev/null -c "SELECT pg_drop_replication_slot('loyalty_p2')"
if out=$(q 2>&1 <<SQL
CREATE PUBLICATION loyalty_outbox_all FOR TABLE loyalty.events;   -- inserts, updates, deletes
SELECT loyalty.earn($M3, 14, reference => 'p3');
SELECT count(*) FROM loyalty.claim_events(100, 'pub-all');
SELECT loyalty.ack_events(ARRAY(SELECT event_id FROM loyalty.events WHERE claimed_by = 'pub-all'));
SELECT loyalty.purge_events(interval '0');
ALTER TABLE loyalty.events REPLICA IDENTITY FULL;
SELECT loyalty.earn($M3, 15, reference => 'p4');
SELECT count(*) FROM loyalty.claim_events(100, 'pub-full');
SELECT loyalty.ack_events(ARRAY(SELECT event_id FROM loyalty.events WHERE claimed_by = 'pub-full'));
SELECT loyalty.purge_events(interval '0');
ALTER TABLE loyalty.events REPLICA IDENTITY DEFAULT;
SQL
); then ok "with a publication of updates and deletes too, claim_events/ack_events/purge_events work (replica identity: the primary key, or FULL)"
else bad "claim/ack/purge under a publication of updates and deletes" "$out"; fi
# the control: without a replica identity the same calls fail
out=$(q -c "ALTER TABLE loyalty.events REPLICA IDENTITY NOTHING" \
        -c "SELECT count(*) FROM loyalty.claim_events(100, 'pub-nothing')" 2>&1)
q -o /dev/null -c "ALTER TABLE loyalty.events REPLICA IDENTITY DEFAULT"
echo "$out" | grep -q 'does not have a replica identity and publishes updates' &&
    ok "(the control: with REPLICA IDENTITY NOTHING, claim_events() fails under that publication)" ||
    bad "the control: claim_events() without a replica identity" "$out"
check "loyalty.events' replica identity is its primary key (member_id, event_id)" \
    "SELECT c.relreplident = 'd' AND (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_index i
                                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                                     WHERE i.indrelid = c.oid AND i.indisprimary) = '{member_id,event_id}'
     FROM pg_class c WHERE c.oid = 'loyalty.events'::regclass"
check "every table of the extension has its primary key as replica identity (a FOR ALL TABLES publication blocks no write)" \
    "SELECT count(*) = 0 FROM pg_class c
     WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind IN ('r', 'p')
       AND NOT (c.relreplident = 'd' AND EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))"

# --- retention: purge_events() deletes acknowledged events; a slot holds WAL -----
run -c "SELECT loyalty.earn($M1, 16, reference => 'k1')"
check "purge_events() leaves an event nobody acknowledged (a CDC-only consumer acknowledges nothing)" \
    "SELECT loyalty.purge_events(interval '0') = 0 AND EXISTS (SELECT FROM loyalty.events WHERE payload ->> 'reference' = 'k1')"
check "the DELETE for CDC-only retention removes it" \
    "WITH d AS (DELETE FROM loyalty.events WHERE created_at < now() + interval '1 minute' RETURNING 1)
     SELECT count(*) > 0 FROM d"
LAG2=$(q -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'loyalty_pgoutput'")
q -o /dev/null -c "SELECT count(*) FROM pg_logical_slot_get_binary_changes('loyalty_pgoutput', NULL, NULL,
                       'proto_version', '1', 'publication_names', 'loyalty_outbox')"
LAG3=$(q -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = 'loyalty_pgoutput'")
if [ "${LAG2%.*}" -gt "${LAG3%.*}" ] && [ "${LAG1%.*}" -gt "${LAG0%.*}" ]; then
    ok "an unread slot holds the WAL written since (bytes behind: $LAG0 -> $LAG1 -> $LAG2 unread, $LAG3 once read)"
else bad "slot lag grows while unread and shrinks once read" "$LAG0 $LAG1 $LAG2 $LAG3"; fi
q -o /dev/null -c "SELECT pg_drop_replication_slot(s) FROM unnest(ARRAY['loyalty_cdc', 'loyalty_pgoutput']) s"

# --- a partitioned ledger: partition_ledger() replaces the table ----------------
q -o /dev/null -c "CREATE PUBLICATION loyalty_ledger FOR TABLE loyalty.ledger WITH (publish = 'insert', publish_via_partition_root = true)"
run -c "SELECT loyalty.partition_ledger(period => '1 month', ahead => 1)"
check "partition_ledger() takes the ledger out of a publication (a new table replaces it)" \
    "SELECT NOT EXISTS (SELECT FROM pg_publication_tables WHERE pubname = 'loyalty_ledger')"
q -o /dev/null -c "ALTER PUBLICATION loyalty_ledger ADD TABLE loyalty.ledger" \
    -c "SELECT pg_create_logical_replication_slot(s, p) FROM (VALUES ('ledger_pgoutput', 'pgoutput'), ('ledger_wal2json', 'wal2json')) v(s, p)"
run -c "SELECT loyalty.earn($M2, 17, reference => 'z1')"
# a relation message: type, oid, schema, name; an insert: type, oid, tuple
check "added again with publish_via_partition_root, pgoutput reports the insert under loyalty.ledger" \
    "WITH m AS (SELECT get_byte(data, 0) AS t, substr(data, 2, 4) AS oid,
                       split_part(encode(substr(data, 6, 60), 'escape'), '\\000', 1) || '.'
                       || split_part(encode(substr(data, 6, 60), 'escape'), '\\000', 2) AS rel
                FROM pg_logical_slot_get_binary_changes('ledger_pgoutput', NULL, NULL,
                         'proto_version', '1', 'publication_names', 'loyalty_ledger'))
     SELECT array_agg(r.rel) = '{loyalty.ledger}'
     FROM m i JOIN m r ON r.t = ascii('R') AND r.oid = i.oid WHERE i.t = ascii('I')"
check "wal2json reports it under the partition's name (add-tables loyalty.* finds it)" \
    "SELECT array_agg('loyalty.' || (data::jsonb ->> 'table'))
            = ARRAY(SELECT tableoid::regclass::text FROM loyalty.ledger WHERE reference = 'z1')
     FROM pg_logical_slot_get_changes('ledger_wal2json', NULL, NULL, 'format-version', '2', 'add-tables', 'loyalty.*')
     WHERE data::jsonb ->> 'table' LIKE 'ledger%'"
q -o /dev/null -c "SELECT pg_drop_replication_slot(s) FROM unnest(ARRAY['ledger_pgoutput', 'ledger_wal2json']) s"
check "the books are sound" "SELECT count(*) = 0 FROM loyalty.verify()"

if [ $failed = 0 ]; then echo "cdc.sh: all checks passed"; else echo "cdc.sh: FAILED"; fi
exit $failed
