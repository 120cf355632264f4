#!/bin/bash
# bench/tier_review.sh: loyalty.review_tiers over BENCH_MEMBERS members
# against one plain SQL statement making the same tier changes and history
# rows on copies of the tables; prints the ratio.
# See bench/README.md.
#
#   pg_virtualenv -t -v 15 bench/tier_review.sh
#   BENCH_MEMBERS=100000 pg_virtualenv -t -v 15 bench/tier_review.sh   # quicker
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-1000000}
BENCH_BATCH=${BENCH_BATCH:-10000}
BENCH_DB=${BENCH_DB:-loyalty_bench_tiers}

BENCH_NAME=tier_review.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup BENCH_MEMBERS BENCH_BATCH
echo "== loyalty tier review benchmark: $BENCH_MEMBERS members, batches of $BENCH_BATCH =="
q1 "SELECT version()"

t0=$(now)
# The data is written straight into the tables (as a restore would), in a
# state loyalty.verify() accepts: 1..5 purchases per member over 20 months,
# each with its lot.  Members start at the tier of their purchases 20 months
# ago... simply: everybody starts Gold, so the review has work to do.
q -o /dev/null -v members="$BENCH_MEMBERS" <<'SQL'
CREATE EXTENSION loyalty;
SELECT loyalty.create_program('bench') AS p \gset
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :p;
SELECT loyalty.set_tier_policy(:p, 'spend', downgrade => 'to_qualified');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0), loyalty.define_tier(:p, 1, 'Silver', 300),
       loyalty.define_tier(:p, 2, 'Gold', 800);
ALTER TABLE loyalty.ledger DISABLE TRIGGER USER;
INSERT INTO loyalty.members (member_id, program_id, joined_at, source_channel)
OVERRIDING SYSTEM VALUE SELECT g, :p, now() - interval '2 years', 'bench' FROM generate_series(1, :members) g;
INSERT INTO loyalty.identities (program_id, channel, external_id, member_id)
SELECT :p, 'bench', g::text, g FROM generate_series(1, :members) g;
CREATE TEMP TABLE buys AS
SELECT m AS member_id, k, (50 + (m * 7 + k * 13) % 400)::numeric AS amount,
       now() - make_interval(days => ((m * 31 + k * 97) % 600)) AS at
FROM generate_series(1, :members) m, generate_series(1, 1 + m % 5) k;
INSERT INTO loyalty.ledger (member_id, entry_id, program_id, kind, points, amount, reference, occurred_at)
OVERRIDING SYSTEM VALUE
SELECT member_id, member_id * 10 + k, :p, 'earn', floor(amount)::bigint::loyalty.points, amount, 'b' || k, at FROM buys;
INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at)
SELECT member_id, member_id * 10 + k, member_id * 10 + k, floor(amount)::bigint::loyalty.points,
       floor(amount)::bigint::loyalty.points, at FROM buys;
INSERT INTO loyalty.accounts (member_id, program_id, balance, lifetime_earned, first_purchase_at, last_purchase_at,
                              purchase_count, purchase_days, purchase_amount, tier, tier_since)
SELECT member_id, :p, sum(floor(amount))::bigint::loyalty.points, sum(floor(amount))::bigint::loyalty.points,
       min(at), max(at), count(*), count(DISTINCT at::date), sum(amount), '2:Gold', now() - interval '1 year'
FROM buys GROUP BY member_id;
ALTER TABLE loyalty.ledger ENABLE TRIGGER USER;
SELECT setval('loyalty.ledger_entry_id_seq', (SELECT max(entry_id) FROM loyalty.ledger));
SELECT setval('loyalty.members_member_id_seq', :members);
SQL
q -c "VACUUM ANALYZE" -c "CHECKPOINT"
rows=$(q1 "SELECT count(*) FROM loyalty.ledger")
echo "setup: $(secs "$t0" "$(now)")s ($BENCH_MEMBERS members, $rows ledger rows, every member Gold)"
[[ $(q1 "SELECT count(*) FROM loyalty.verify()") == 0 ]] || die "generated data does not verify"

# the reference: the same writes in one plain SQL statement on copies of the
# accounts and the history (the tier, tier_since, no lock, no grace,
# updated_at; a history row per change), without the grace and lock rules
t0=$(now)
q <<'SQL'
CREATE SCHEMA bare;
CREATE TABLE bare.accounts (LIKE loyalty.accounts INCLUDING ALL) WITH (fillfactor = 80);
INSERT INTO bare.accounts SELECT * FROM loyalty.accounts;
CREATE TABLE bare.tier_history (LIKE loyalty.tier_history INCLUDING ALL);
VACUUM ANALYZE bare.accounts;
CHECKPOINT;
SQL
t1=$(now)
q <<'SQL'
WITH q AS (
    SELECT a.member_id, a.tier AS old_tier,
           (SELECT loyalty.tier(t.rank, t.name) FROM loyalty.tiers t
            WHERE t.program_id = a.program_id AND t.threshold <= coalesce(s.spend, 0)
            ORDER BY t.rank DESC LIMIT 1) AS tier
    FROM bare.accounts a
    LEFT JOIN (SELECT l.member_id, sum(l.amount - coalesce(lo.reversed_amount, 0)) AS spend
               FROM loyalty.ledger l
               LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
               WHERE l.kind = 'earn' AND l.occurred_at > now() - interval '12 months'
               GROUP BY l.member_id) s ON s.member_id = a.member_id
), up AS (
    UPDATE bare.accounts a SET tier = q.tier, tier_since = now(), tier_locked_until = NULL,
        tier_grace_until = NULL, updated_at = now()
    FROM q WHERE a.member_id = q.member_id AND a.tier::text IS DISTINCT FROM q.tier::text
    RETURNING a.member_id, q.old_tier, q.tier
)
INSERT INTO bare.tier_history (member_id, from_tier, to_tier, reason)
SELECT up.member_id, up.old_tier, up.tier, 'qualified (review)' FROM up;
SQL
T_SQL=$(secs "$t1" "$(now)")
echo "  plain SQL                ${T_SQL}s"

t0=$(now)
q -c "CALL loyalty.review_tiers(1, now(), $BENCH_BATCH)" 2>&1 | tail -1
T_REVIEW=$(secs "$t0" "$(now)")
echo "  loyalty.review_tiers     ${T_REVIEW}s"

diff=$(q1 "SELECT count(*) FROM loyalty.accounts a JOIN bare.accounts p USING (member_id) WHERE a.tier::text IS DISTINCT FROM p.tier::text")
changed=$(q1 "SELECT count(*) FROM loyalty.tier_history")
changed_sql=$(q1 "SELECT count(*) FROM bare.tier_history")
echo "tiers changed: $changed (plain SQL $changed_sql); members whose tier differs between the two: $diff"
[[ $diff == 0 && $changed == "$changed_sql" ]] || die "the review and the plain SQL disagree"
awk -v r="$T_REVIEW" -v s="$T_SQL" -v n="$BENCH_MEMBERS" 'BEGIN {
    printf "ratio review_tiers/plain SQL (time): %.2f\n", r / s;
    printf "members per second: review_tiers %.0f, plain SQL %.0f\n", n / r, n / s }'
