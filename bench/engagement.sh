#!/bin/bash
# bench/engagement.sh: the cost of engagement on the write path: an earn in
# a program with 20 active challenges and 5 active coupon campaigns, against
# an earn in a program with none, interleaved in one pgbench run so all meet
# the machine at the same moment.  Two programs with challenges: in one
# every purchase moves all 20 (purchases, spend, visits, streaks; monthly,
# weekly, rolling, since joining and campaign periods), in the other 2 (the
# other 18 are for categories and channels these purchases are not of).  The
# goals are out of reach, so the ratios are the cost of moving progress, not
# of awards.  See bench/README.md.
#
# Most purchases of a run are their member's first of the period (each
# inserts its progress rows); BENCH_WARM=1 gives every member one purchase
# before the runs, so they measure the steady state (each earn updates the
# member's periods).
#
#   pg_virtualenv -t -v 15 bench/engagement.sh
#   BENCH_MEMBERS=10000 BENCH_SECONDS=10 pg_virtualenv -t -v 15 bench/engagement.sh   # quicker
#   BENCH_WARM=1 pg_virtualenv -t -v 15 bench/engagement.sh                            # periods already open
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-100000}
BENCH_SECONDS=${BENCH_SECONDS:-60}
BENCH_CLIENTS=${BENCH_CLIENTS:-2}
BENCH_DB=${BENCH_DB:-loyalty_bench_engagement}
BENCH_WARM=${BENCH_WARM:-0}

BENCH_NAME=engagement.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"
bench_setup BENCH_MEMBERS BENCH_SECONDS BENCH_CLIENTS

echo "== loyalty engagement benchmark: $BENCH_MEMBERS members per program, ${BENCH_SECONDS}s, $BENCH_CLIENTS clients =="
q1 "SELECT version()"
q -v members="$BENCH_MEMBERS" -o /dev/null <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('plain') AS plain \gset
SELECT loyalty.create_program('engaged') AS engaged \gset
SELECT loyalty.create_program('targeted') AS targeted \gset
UPDATE loyalty.programs SET event_kinds = '{}';
SELECT count(loyalty.enroll(:plain, 'bench', g::text)) FROM generate_series(1, :members) g;
SELECT count(loyalty.enroll(:engaged, 'bench', g::text)) FROM generate_series(1, :members) g;
SELECT count(loyalty.enroll(:targeted, 'bench', g::text)) FROM generate_series(1, :members) g;
-- 20 challenges every purchase moves, goals out of reach
SELECT count(loyalty.create_challenge(:engaged, 'c' || g, 'challenge ' || g,
        (ARRAY['purchases', 'spend', 'visits', 'purchases', 'spend'])[g % 5 + 1], 1000000,
        (ARRAY['month', 'week', 'days', 'joining', 'campaign'])[g / 5 + 1],
        period_days => CASE WHEN g / 5 + 1 IN (3, 4) THEN 30 END, repeating => true, reward_points => '100'))
FROM generate_series(0, 17) g;
SELECT loyalty.create_challenge(:engaged, 'streak-1', 'streak', 'streak_weeks', 1000, 'streak', reward_points => '100'),
       loyalty.create_challenge(:engaged, 'streak-2', 'streak', 'streak_weeks', 2000, 'streak', badge => 'steady');
-- 20 challenges of which these purchases (no lines, no channel) move 2
SELECT count(loyalty.create_challenge(:targeted, 'c' || g, 'challenge ' || g,
        (ARRAY['purchases', 'spend'])[g % 2 + 1], 1000000, 'month', repeating => true, reward_points => '100',
        categories => CASE WHEN g >= 2 AND g % 2 = 0 THEN ARRAY['category ' || g] END,
        channels => CASE WHEN g >= 2 AND g % 2 = 1 THEN ARRAY['channel ' || g] END))
FROM generate_series(0, 19) g;
-- 5 coupon campaigns each, active, not used by these purchases
SELECT count(loyalty.create_coupon_campaign(p, 'campaign ' || g, 'percent_off', 10, code => 'SAVE' || p || '-' || g))
FROM generate_series(1, 5) g, (VALUES (:engaged), (:targeted)) v(p);
VACUUM ANALYZE;
SQL
plain=$(q1 "SELECT min(member_id) - 1 FROM loyalty.members JOIN loyalty.programs USING (program_id) WHERE name = 'plain'")
engaged=$(q1 "SELECT min(member_id) - 1 FROM loyalty.members JOIN loyalty.programs USING (program_id) WHERE name = 'engaged'")
targeted=$(q1 "SELECT min(member_id) - 1 FROM loyalty.members JOIN loyalty.programs USING (program_id) WHERE name = 'targeted'")
echo "  challenges: $(q1 "SELECT count(*) FROM loyalty.challenges WHERE active"), coupon campaigns: $(q1 "SELECT count(*) FROM loyalty.coupon_campaigns WHERE active")"
cat >"$TMP/plain.sql" <<'SQL'
\set m :plain + random(1, :members)
\set amount random(1, 200)
SELECT loyalty.earn(:m, :amount);
SQL
for p in engaged targeted; do
    printf '\\set m :%s + random(1, :members)\n\\set amount random(1, 200)\nSELECT loyalty.earn(:m, :amount);\n' "$p" >"$TMP/$p.sql"
done
if [ "$BENCH_WARM" = 1 ]; then
    # every member's periods open before the runs (purchases today: the
    # runs' periods, but for the days and streak challenges' own starts)
    q -o /dev/null -c "SELECT count(loyalty.earn(member_id, 1)) FROM loyalty.members" -c "VACUUM ANALYZE"
    echo "  warmed: one purchase per member, progress rows: $(q1 "SELECT count(*) FROM loyalty.challenge_progress")"
fi
q -c "CHECKPOINT"

for sync in on off; do
    PGOPTIONS="-c synchronous_commit=$sync" pgbench -n -M prepared -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" \
        -T "$BENCH_SECONDS" -D plain="$plain" -D engaged="$engaged" -D targeted="$targeted" -D members="$BENCH_MEMBERS" \
        -f "$TMP/plain.sql@1" -f "$TMP/engaged.sql@1" -f "$TMP/targeted.sql@1" "$BENCH_DB" >"$TMP/pgbench.$sync" 2>&1 \
        || { cat "$TMP/pgbench.$sync"; die "pgbench failed"; }
    read -r p e t < <(awk '/^SQL script/ { s = $3 } /latency average/ && s != "" { lat[s] = $5 }
        END { print lat["1:"], lat["2:"], lat["3:"] }' "$TMP/pgbench.$sync")
    echo "  synchronous_commit=$sync: earn ${p} ms; with 20 challenges and 5 coupon campaigns: all 20 moved ${e} ms, 2 moved ${t} ms"
    awk -v p="$p" -v e="$e" -v t="$t" -v s="$sync" 'BEGIN {
        printf "ratio earn moving 20 challenges/earn (latency, synchronous_commit=%s): %.2f\n", s, e / p;
        printf "ratio earn moving 2 of 20 challenges/earn (latency, synchronous_commit=%s): %.2f\n", s, t / p }'
    q -c "CHECKPOINT"
done
echo "  progress rows: $(q1 "SELECT count(*) FROM loyalty.challenge_progress"); loyalty.verify() rows: $(q1 "SELECT count(*) FROM loyalty.verify()")"
