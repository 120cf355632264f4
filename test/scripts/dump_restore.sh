#!/usr/bin/env bash
# pg_dump a database whose tables use points and tier, restore it into fresh
# databases (custom format with pg_restore, serial and with a parallel post-data
# section, and plain SQL through psql), and
# compare every row.  Runs inside the throwaway cluster of tools/test.sh.
# Then again with the ledger partitioned (loyalty.partition_ledger) half-way
# through the writes: partitions are not extension members, so the restore
# must rebuild the partitioned ledger around them.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PARTITIONED=${PARTITIONED:-0}
SRC=loyalty_dump_src$([ "$PARTITIONED" = 1 ] && echo _part || true)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; for d in $SRC ${SRC}_fc ${SRC}_par ${SRC}_plain; do "$PGBIN/dropdb" --if-exists "$d"; done' EXIT

psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

"$PGBIN/createdb" $SRC
psql -d $SRC -o /dev/null -v partitioned=$PARTITIONED <<'SQL'
CREATE EXTENSION loyalty;
CREATE TABLE wallet (
    id      bigint PRIMARY KEY,
    balance loyalty.points NOT NULL,
    level   loyalty.tier
);
CREATE INDEX wallet_balance ON wallet (balance);
CREATE INDEX wallet_level ON wallet (level);
INSERT INTO wallet
SELECT g,
       CASE g WHEN 1 THEN '-9223372036854775808'::loyalty.points
              WHEN 2 THEN '9223372036854775807'::loyalty.points
              ELSE (g * 37 - 5000)::bigint::loyalty.points END,
       CASE WHEN g % 7 = 0 THEN NULL
            ELSE loyalty.tier(g % 4, (ARRAY['Member', 'Silver: plus', 'Gold', 'Platinum ★'])[g % 4 + 1]) END
FROM generate_series(1, 500) g;
-- a table whose tier column sorts before the table that defines the names:
-- restore must not depend on table order
CREATE TABLE a_history (member bigint, old loyalty.tier, new loyalty.tier, delta loyalty.points);
INSERT INTO a_history VALUES (1, '0:Member', '2:Gold', '150'), (2, '2:Gold', '1:Silver: plus', '-20');

-- a populated program, built through the API: ledger, lots, holds, keys
SELECT loyalty.create_program('Dump Club', expiry_period => '1 year', pending_period => '7 days');
SELECT loyalty.enroll(1, 'pos', 'card-' || g) FROM generate_series(1, 50) g;
SELECT loyalty.earn(g, g * 3.5, 'pos', 'o-' || g, 'k-' || g, now() - interval '10 days') FROM generate_series(1, 50) g;
SELECT loyalty.earn(g, 20, 'web', 'w-' || g) FROM generate_series(1, 50, 3) g;
SELECT loyalty.redeem(g, '40') FROM generate_series(12, 50, 2) g;
SELECT loyalty.hold(g, '5', '1 hour') FROM generate_series(20, 30) g;
SELECT loyalty.reverse(g, (SELECT min(entry_id) FROM loyalty.ledger WHERE member_id = g), amount => 1) FROM generate_series(30, 40) g;
SELECT loyalty.merge_members(1, 2);
-- the BI rollups counted up to here; the rest is left to the views' tail
CALL loyalty.refresh_rollups();
-- the rest is written into a partitioned ledger (partitioned run)
\if :partitioned
SELECT loyalty.partition_ledger('1 month', 2);
SELECT loyalty.create_ledger_partitions(3);
\endif
-- the rest of the program: rules, activities, tiers with history, rewards and
-- redemptions, referrals, events, a custom segment mapping, a fitted model
SELECT loyalty.create_earning_rule(1, 'web x2', 'multiply', multiplier => 2, channels => ARRAY['web']);
SELECT loyalty.set_activity_rule(1, 'review', '10', cap_per_day => 1);
SELECT loyalty.record_activity(g, 'review') FROM generate_series(3, 10) g;
SELECT loyalty.set_tier_policy(1, 'spend');
SELECT loyalty.define_tier(1, 0, 'Blue', 0), loyalty.define_tier(1, 1, 'Silver', 100, earn_multiplier => 1.5);
SELECT loyalty.evaluate_tier(g) FROM generate_series(3, 50) g;
SELECT loyalty.create_reward(1, 'MUG', 'Mug', '10', stock => 100);
SELECT loyalty.redeem_reward(g, 1) FROM generate_series(40, 45) g;
SELECT loyalty.set_referral_rules(1, '50', '20');
SELECT loyalty.referral_code(3);
SELECT loyalty.enroll(1, 'pos', 'referred', referral_code => loyalty.referral_code(3));
-- transfers, profiles and an erasure, paid memberships
SELECT loyalty.set_transfer_rules(1, max_points => 1000);
SELECT loyalty.award(g, '30', 'gift') FROM generate_series(5, 9) g;
SELECT loyalty.transfer(g, g + 10, 15, 'gift') FROM generate_series(5, 9) g;
SELECT loyalty.reverse_transfer(5, (SELECT max(entry_id) FROM loyalty.ledger WHERE member_id = 5 AND kind = 'transfer'), 'mistake');
SELECT loyalty.update_member(g, region => 'R' || g, consent => '{"email": true}', attributes => '{"pet": "cat"}') FROM generate_series(3, 8) g;
SELECT loyalty.erase_member(8, 'request');
SELECT loyalty.create_plan(1, 'PLUS', 'Plus', 4.99, 'month', tier => '1:Silver', earn_multiplier => 2, monthly_points => 5);
SELECT loyalty.subscribe(g, 'PLUS', 'pay-' || g) FROM generate_series(20, 24) g;
SELECT loyalty.renew_membership(20, 'pay-20b');
SELECT loyalty.cancel_membership(21, at_period_end => false, refund_reference => 'refund-21', refund_amount => 4.99);
SELECT * FROM loyalty.membership_batch();
INSERT INTO loyalty.rfm_segments SELECT * FROM loyalty.rfm_segments_standard;
-- challenge progress: each member's latest period in its state row, last
-- month's in challenge_periods, a completion with its award and badge
SELECT loyalty.create_challenge(1, 'three', 'Three a month', 'purchases', 3, 'month', repeating => true,
                                reward_points => '5', badge => 'three');
SELECT loyalty.earn(g, 5, reference => 'ch-old-' || g, occurred_at => now() - interval '40 days') FROM generate_series(3, 12) g WHERE g <> 8;
SELECT loyalty.earn(g, 5, reference => 'ch-' || g || '-' || k) FROM generate_series(3, 12) g, generate_series(1, 3) k WHERE g <> 8;
UPDATE loyalty.rfm_segments SET r_min = 3 WHERE segment = 'Champions';
SQL

snapshot() {
	psql -d "$1" -At -c "SELECT id, balance, level, loyalty.tier_rank(level), loyalty.tier_name(level) FROM wallet ORDER BY id" \
		-c "SELECT * FROM a_history ORDER BY member" \
		-c "SET enable_seqscan = off; SELECT count(*) FROM wallet WHERE balance OPERATOR(loyalty.>) '0'::loyalty.points" \
		-c "SELECT to_jsonb(p) - 'rules_version' FROM loyalty.programs p ORDER BY program_id" \
		-c "SELECT * FROM loyalty.members ORDER BY member_id" \
		-c "SELECT * FROM loyalty.identities ORDER BY program_id, channel, external_id" \
		-c "SELECT * FROM loyalty.accounts ORDER BY member_id" \
		-c "SELECT * FROM loyalty.ledger ORDER BY member_id, entry_id" \
		-c "SELECT * FROM loyalty.lots ORDER BY member_id, lot_id" \
		-c "SELECT * FROM loyalty.allocations ORDER BY member_id, entry_id, lot_id" \
		-c "SELECT * FROM loyalty.holds ORDER BY member_id, hold_id" \
		-c "SELECT * FROM loyalty.idempotency_keys ORDER BY member_id, idempotency_key" \
		-c "SELECT * FROM loyalty.earning_rules ORDER BY rule_id" \
		-c "SELECT * FROM loyalty.activity_rules ORDER BY program_id, activity" \
		-c "SELECT * FROM loyalty.activities ORDER BY member_id, activity_id" \
		-c "SELECT * FROM loyalty.tiers ORDER BY program_id, rank" \
		-c "SELECT * FROM loyalty.tier_history ORDER BY member_id, change_id" \
		-c "SELECT * FROM loyalty.rewards ORDER BY reward_id" \
		-c "SELECT * FROM loyalty.redemptions ORDER BY member_id, redemption_id" \
		-c "SELECT * FROM loyalty.referral_rules ORDER BY program_id" \
		-c "SELECT * FROM loyalty.referral_codes ORDER BY member_id, code" \
		-c "SELECT * FROM loyalty.referrals ORDER BY member_id" \
		-c "SELECT * FROM loyalty.events ORDER BY member_id, event_id" \
		-c "SELECT * FROM loyalty.transfer_rules ORDER BY program_id" \
		-c "SELECT * FROM loyalty.transfers ORDER BY transfer_id" \
		-c "SELECT * FROM loyalty.member_changes ORDER BY member_id, change_id" \
		-c "SELECT * FROM loyalty.membership_plans ORDER BY plan_id" \
		-c "SELECT * FROM loyalty.subscriptions ORDER BY member_id, subscription_id" \
		-c "SELECT * FROM loyalty.membership_payments ORDER BY member_id, payment_id" \
		-c "SELECT * FROM loyalty.rfm_segment_map ORDER BY priority" \
		-c "SELECT * FROM loyalty.challenge_state ORDER BY member_id" \
		-c "SELECT * FROM loyalty.challenge_periods ORDER BY member_id, challenge_id, period_start" \
		-c "SELECT * FROM loyalty.challenge_facts ORDER BY member_id, entry_id" \
		-c "SELECT * FROM loyalty.member_badges ORDER BY member_id, badge" \
		-c "SELECT * FROM loyalty.challenge_progress ORDER BY member_id, challenge_id, period_start" \
		-c "SELECT * FROM loyalty.member_rfm ORDER BY member_id" \
		-c "SELECT last_entry, last_member, as_of, refreshed_at, safe_entry_id, safe_member_id, safe_at, mark_at, last_change, safe_change_id, vesting_from FROM loyalty.rollup_state" \
		-c "SELECT * FROM loyalty.rollup_days ORDER BY program_id, day" \
		-c "SELECT * FROM loyalty.rollup_channels ORDER BY program_id, channel" \
		-c "SELECT * FROM loyalty.rollup_cohorts ORDER BY program_id, cohort_month, month" \
		-c "SELECT * FROM loyalty.rollup_point_months ORDER BY program_id, month" \
		-c "SELECT * FROM loyalty.rollup_returns ORDER BY entry_id, month" \
		-c "SELECT * FROM loyalty.rollup_accounts ORDER BY member_id" \
		-c "SELECT * FROM loyalty.rollup_vesting ORDER BY member_id, vests_at" \
		-c "SELECT * FROM loyalty.rollup_account_sums ORDER BY program_id, tier, pool" \
		-c "SELECT * FROM loyalty.rollup_account_days ORDER BY program_id, day" \
		-c "SELECT * FROM loyalty.rollup_rfm_counts ORDER BY program_id, measure, bucket" \
		-c "SELECT * FROM loyalty.rollup_member_mix ORDER BY program_id, source_channel, region" \
		-c "SELECT * FROM loyalty.account_changes ORDER BY member_id, change_id" \
		-c "SELECT * FROM loyalty.kpi_monthly ORDER BY program_id, month" \
		-c "SELECT * FROM loyalty.channel_distribution ORDER BY program_id, channel" \
		-c "SELECT * FROM loyalty.cohort_retention ORDER BY program_id, cohort_month, months_since_first" \
		-c "SELECT * FROM loyalty.kpi_summary ORDER BY program_id" \
		-c "SELECT * FROM loyalty.tier_distribution ORDER BY program_id, tier_rank, tier" \
		-c "SELECT * FROM loyalty.member_mix ORDER BY program_id, source_channel, region" \
		-c "SELECT * FROM loyalty.rfm_quintiles() ORDER BY program_id" \
		-c "SELECT * FROM loyalty.member_rfm ORDER BY program_id, member_id" \
		-c "SELECT 'violations', count(*) FROM loyalty.verify()" \
		-c "SELECT partition, lower_bound, upper_bound FROM loyalty.ledger_partitions()" \
		-c "SELECT indexrelid::regclass::text AS idx, indisvalid, pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'loyalty.ledger'::regclass ORDER BY 1" \
		-c "SELECT tgrelid::regclass::text AS rel, tgname FROM pg_trigger WHERE tgrelid::regclass::text LIKE 'loyalty.ledger%' AND NOT tgisinternal ORDER BY 1, 2" \
		-c "SELECT schemaname, tablename, policyname, qual FROM pg_policies WHERE tablename LIKE 'ledger%' ORDER BY 1, 2, 3" \
		-c "SELECT * FROM loyalty.ledger_partitioning" \
		-c "SELECT count(*) FROM loyalty.ledger_pending_ddl"
}
# (programs.rules_version is left out above: the restore's own inserts of rules
# and tiers bump it, which only makes every backend reload them, as it should)
# ids handed out after a restore must not collide with restored ones
after_restore_writes() {
	psql -d "$1" -At -c "SELECT loyalty.enroll(1, 'pos', 'new-after-restore') > 50" \
		-c "SELECT loyalty.earn(3, 10)::bigint > 0" \
		-c "SELECT loyalty.earn(4, 10, reference => 'ch-after') > 0" \
		-c "SELECT max(value) = 4 FROM loyalty.challenge_progress WHERE member_id = 4" \
		-c "SELECT loyalty.transfer(6, 7, 1) > 0" \
		-c "SELECT loyalty.update_member(3, region => 'after') = 1" \
		-c "SELECT loyalty.subscribe(30, 'PLUS', 'pay-after') > 0" \
		-c "SELECT count(*) = 1 FROM (SELECT loyalty.set_member_status(5, 'suspended')) x" \
		-c "SELECT (SELECT max(change_id) FROM loyalty.account_changes) > (SELECT last_change FROM loyalty.rollup_state)" \
		-c "CALL loyalty.refresh_rollups()" \
		-c "SELECT (SELECT sum(purchases) FROM loyalty.rollup_channels) = (SELECT count(*) FROM loyalty.ledger WHERE kind = 'earn')
		           AND NOT EXISTS (SELECT FROM loyalty.rollup_changes())
		           AND NOT EXISTS (SELECT FROM loyalty.rollup_account_changes() WHERE target = 'sums')
		           AND (SELECT sum(accounts) FROM loyalty.rollup_account_sums WHERE NOT pool)
		               = (SELECT count(*) FROM loyalty.accounts WHERE status <> ALL (ARRAY['closed', 'pool']))
		           AND NOT EXISTS (SELECT FROM loyalty.rollup_account_changes() WHERE target = 'mix')
		           AND (SELECT sum(members) FROM loyalty.rollup_member_mix WHERE region = 'after') = 1" \
		-c "SELECT count(*) FROM loyalty.verify()"
}
snapshot $SRC >"$TMP/src.txt"

"$PGBIN/pg_dump" -Fc -d $SRC -f "$TMP/dump.fc"
"$PGBIN/createdb" ${SRC}_fc
"$PGBIN/pg_restore" --exit-on-error -d ${SRC}_fc "$TMP/dump.fc"
snapshot ${SRC}_fc >"$TMP/fc.txt"
# and with the post-data section (indexes, constraints, partition attaches) in
# parallel.  The data section must load in one session: CREATE EXTENSION makes
# the foreign keys between its tables before any row arrives, and parallel
# workers would load the tables in any order (README, Operations).
"$PGBIN/createdb" ${SRC}_par
"$PGBIN/pg_restore" --exit-on-error --section=pre-data --section=data -d ${SRC}_par "$TMP/dump.fc"
"$PGBIN/pg_restore" --exit-on-error --section=post-data -j 2 -d ${SRC}_par "$TMP/dump.fc"
snapshot ${SRC}_par >"$TMP/par.txt"

"$PGBIN/pg_dump" -Fp -d $SRC -f "$TMP/dump.sql"
"$PGBIN/createdb" ${SRC}_plain
psql -d ${SRC}_plain -f "$TMP/dump.sql" >/dev/null
snapshot ${SRC}_plain >"$TMP/plain.txt"

for db in ${SRC}_fc ${SRC}_par ${SRC}_plain; do
	got=$(after_restore_writes $db | tr '\n' ' ')
	[ "$got" = "t t t t t t t t t t 0 " ] || { echo "writes after restore into $db failed: $got"; exit 1; }
done

lines=$(wc -l <"$TMP/src.txt")
[ "$lines" -ge 800 ] || { echo "snapshot too small ($lines lines)"; exit 1; }
diff -u "$TMP/src.txt" "$TMP/fc.txt"
diff -u "$TMP/src.txt" "$TMP/par.txt"
diff -u "$TMP/src.txt" "$TMP/plain.txt"
echo "dump/restore$([ "$PARTITIONED" = 1 ] && echo ' (partitioned ledger)' || true): $lines rows identical after custom-format (serial, and post-data with -j 2) and plain restores"
if [ "$PARTITIONED" = 0 ]; then
	PARTITIONED=1 bash "${BASH_SOURCE[0]}"
fi
