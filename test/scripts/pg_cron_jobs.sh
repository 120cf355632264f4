#!/usr/bin/env bash
# The batch jobs under pg_cron (Debian's postgresql-15-cron), as the README
# schedules them: a cluster of our own with pg_cron preloaded, a hold whose
# time is up and points past their expiry, the jobs scheduled every
# minute; within two minutes pg_cron must have run each successfully, the hold
# must be released, the points expired, the BI rollups counted, and the books
# sound.  Then a refresh with a long transaction open in another database.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -f /usr/lib/postgresql/15/lib/pg_cron.so ] || { echo "pg_cron_jobs.sh: postgresql-15-cron is not installed" >&2; exit 1; }
TMP=$(mktemp -d -t loyalty-cron.XXXXXX)
PORT=54395
if [ "$(id -u)" -eq 0 ]; then chown postgres "$TMP"; RUN="runuser -u postgres --"; else RUN=""; fi
cleanup() { set +e; $RUN "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT
q() { "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP" -p $PORT -U postgres -d postgres "$@"; }

$RUN "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust >/dev/null
$RUN "$PGBIN/pg_ctl" -D "$TMP/data" -w -l "$TMP/server.log" -o "-p $PORT -k $TMP -c listen_addresses='' \
    -c shared_preload_libraries=pg_cron -c cron.database_name=postgres -c cron.host=$TMP" start >/dev/null
q -o /dev/null <<'SQL'
CREATE EXTENSION pg_cron;
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('cron', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'c1') AS m \gset
SELECT loyalty.earn(:m, 30, occurred_at => now() - interval '400 days');
SELECT loyalty.earn(:m, 20);
SELECT loyalty.hold(:m, '5', interval '1 second');
-- the hold's time is up before the job can first run (it may run at once, at a minute's start)
SELECT pg_sleep(1.5);
SELECT cron.schedule('loyalty-holds', '* * * * *', 'CALL loyalty.release_expired_holds()');
SELECT cron.schedule('loyalty-expiry', '* * * * *', 'CALL loyalty.expire_points()');
SELECT cron.schedule('loyalty-rollups', '* * * * *', 'CALL loyalty.refresh_rollups()');
SQL
for _ in $(seq 1 130); do
    done_=$(q -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details WHERE status = 'succeeded'")
    [ "$done_" = 3 ] && break
    sleep 1
done
q -c "SELECT j.jobname, d.status, d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid) ORDER BY d.runid" | sed 's/^/   /'
fail=0
check() { if [ "$(q -c "$2")" = t ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
check "pg_cron ran the three jobs successfully" "SELECT count(DISTINCT jobid) = 3 FROM cron.job_run_details WHERE status = 'succeeded'"
check "the hold whose time was up is released" "SELECT status = 'expired' FROM loyalty.holds"
check "the expired points are written off" "SELECT lifetime_expired::bigint = 30 FROM loyalty.accounts"
check "the rollups count the purchases" "SELECT sum(purchases) = 2 FROM loyalty.rollup_channels"
check "the books are sound" "SELECT count(*) = 0 FROM loyalty.verify()"

# A long transaction in another database of the cluster (a dump, a report)
# writes none of this one's rows: the refresh must not wait for it.
q -c "CREATE DATABASE other"
"$PGBIN/psql" -X -q -h "$TMP" -p $PORT -U postgres -d other \
    -c "BEGIN" -c "SELECT pg_current_xact_id()" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
other=$!
for _ in $(seq 1 50); do
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity a JOIN pg_database d ON d.oid = a.datid
               WHERE d.datname = 'other' AND a.backend_xid IS NOT NULL")" = 1 ] && break
    sleep 0.1
done
q -c "SELECT loyalty.earn(member_id, 7) FROM loyalty.members" >/dev/null
notice=$(q -c "CALL loyalty.refresh_rollups(max_wait => '3 seconds')" 2>&1)
kill $other 2>/dev/null; wait $other 2>/dev/null || true
check "a transaction of another database does not hold the refresh back${notice:+ ($notice)}" \
    "SELECT sum(purchases) = 3 FROM loyalty.rollup_channels"
exit $fail
