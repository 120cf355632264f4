-- loyalty 1.2 -> 1.3 (ALTER EXTENSION loyalty UPDATE TO '1.3')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.3'" to load this file. \quit

-- == write path (issue 3) =====================================================
-- Lots: the open-lot index is partial on a generated flag instead of on
-- remaining, so a debit that leaves a lot open is a HOT update; room on each
-- page for it.  Adding the stored column rewrites loyalty.lots (ACCESS
-- EXCLUSIVE for the rewrite's duration: plan the update at a quiet time).
ALTER TABLE loyalty.lots
    ADD COLUMN is_open boolean NOT NULL GENERATED ALWAYS AS (remaining OPERATOR(loyalty.>) '0'::loyalty.points) STORED;
ALTER TABLE loyalty.lots SET (fillfactor = 90);
COMMENT ON COLUMN loyalty.lots.is_open IS 'remaining > 0 (generated): the lot still has points to spend or expire';
DROP INDEX loyalty.lots_open_idx;
CREATE INDEX lots_open_idx ON loyalty.lots (member_id, expires_at, created_at) WHERE is_open;
-- Keys led by the lot's and the debit's own id, so that new rows go to the
-- right edge of the index instead of a random leaf (30_ledger.sql).
ALTER TABLE loyalty.lots DROP CONSTRAINT lots_pkey, ADD PRIMARY KEY (lot_id, member_id);
ALTER TABLE loyalty.allocations DROP CONSTRAINT allocations_pkey, ADD PRIMARY KEY (entry_id, member_id, lot_id);

-- The global expiry index of lots (written by every earn) gives way to a
-- per-member expiry bound on the account, written only when it moves.
DROP INDEX loyalty.lots_expiry_idx;
ALTER TABLE loyalty.accounts ADD COLUMN next_expiry_at timestamptz;
COMMENT ON COLUMN loyalty.accounts.next_expiry_at IS 'No open lot of the member expires before this (NULL: none expires); may lie earlier than the true first expiry until loyalty.expire_member() runs';
UPDATE loyalty.accounts a SET next_expiry_at = x.first
FROM (SELECT l.member_id, pg_catalog.min(l.expires_at) AS first FROM loyalty.lots l
      WHERE l.is_open AND l.expires_at IS NOT NULL GROUP BY l.member_id) x
WHERE a.member_id OPERATOR(pg_catalog.=) x.member_id;
CREATE INDEX accounts_next_expiry_idx ON loyalty.accounts (next_expiry_at) WHERE next_expiry_at IS NOT NULL;

-- (loyalty.merge_members: see below)


#include-replace "udfs/expire_member/1.3.sql"
COMMENT ON FUNCTION loyalty.expire_member(bigint, timestamptz) IS
    'Write off the unspent remainder of the member''s lots expired by as_of (default now); idempotent';


#include-replace "udfs/expire_batch/1.3.sql"
COMMENT ON FUNCTION loyalty.expire_batch(timestamptz, integer) IS
    'Expire the lots of up to batch_size members (one step of loyalty.expire_points)';


#include-replace "udfs/notify_expiring/1.3.sql"
COMMENT ON FUNCTION loyalty.notify_expiring(interval, integer) IS
    'Emit one points.expiring event per member and expiry day for spendable points expiring within the interval; safe to run repeatedly (schedule daily)';


#include-replace "udfs/verify/1.3.sql"
COMMENT ON FUNCTION loyalty.verify() IS
    'Check the ledger invariants; returns one row per violation and no rows when the books are sound';



-- == tier programs: an earn reads the qualification window only when it could upgrade ==
#include-replace "udfs/tier_after_write/1.3.sql"
COMMENT ON FUNCTION loyalty.tier_after_write(bigint, text) IS
    'Internal: upgrade at once after an earn; after a refund, demote only if the program says so';


-- == retention (issue 8): lots and allocations leave with archived partitions ==
#include-replace "udfs/archive_ledger/1.3.sql"
COMMENT ON FUNCTION loyalty.archive_ledger(timestamptz, text) IS
    'Retire the ledger partitions that end at or before a time: one carry_forward entry per member keeps balances and held points, then the partitions are detached into archive_schema (NULL: dropped), and with them the allocations of archived debits and the closed old lots no later debit names (archive_schema.lots and .allocations); one row per partition, then one for lots and one for allocations (entries = rows moved); refused while an open lot, active hold, tier window or DEFAULT-partition row needs them';


-- == Citus (issue 8) ==========================================================
-- 1.3 closes gaps of the Citus mode (README "Scale-out on Citus"); every
-- change below also holds on a database without Citus.

-- balance(): every table of its query filtered by the member itself, so Citus
-- plans the statement as one task on the member's shard.

#include-replace "udfs/balance/1.3.sql"
COMMENT ON FUNCTION loyalty.balance(bigint) IS
    'Balances of a member now: available (spendable), pending (vesting), held, expired but not yet written down, debt, posted balance, lifetime totals, next expiry';


-- merge_members(): the two account locks as two single-member statements.

#include-replace "udfs/merge_members/1.3.sql"
COMMENT ON FUNCTION loyalty.merge_members(bigint, bigint, text) IS
    'Merge two records of one person: lots (with their expiry), debt, statistics and identities move to the survivor through merge ledger entries; the absorbed member is closed; returns the points moved';


-- The rules-version trigger bumps the node's own copy of loyalty.programs
-- when it fires on a shard of a Citus reference table;
-- create_earning_rule() without CASE x WHEN (Citus deparses it wrongly).

#include-replace "udfs/rules_version_bump/1.3.sql"
COMMENT ON FUNCTION loyalty.rules_version_bump() IS 'Trigger: bump programs.rules_version when an earning rule or a tier changes';


#include-replace "udfs/create_earning_rule/1.3.sql"
COMMENT ON FUNCTION loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric) IS
    'Add a multiplier or bonus rule to a program; returns its id (see README "Earning rules" for stacking)';


-- tier_metric() and qualified_tier(): no call of a querying function inside a
-- query that Citus routes to a shard.

#include-replace "udfs/tier_metric/1.3.sql"
COMMENT ON FUNCTION loyalty.tier_metric(bigint, timestamptz) IS
    'The member''s qualifying metric (spend, points earned or visits, net of refunds) over the window ending at as_of (default now)';


#include-replace "udfs/qualified_tier/1.3.sql"
COMMENT ON FUNCTION loyalty.qualified_tier(bigint, timestamptz) IS
    'The highest tier (not invitation-only) whose threshold the member''s metric reaches at as_of';


-- Vouchers start with the member id: distinct by construction, checked per
-- member (one shard).

COMMENT ON COLUMN loyalty.redemptions.voucher IS 'Voucher code: the member id in hex, a dash, 16 random hex digits (gen_random_uuid); distinct across redemptions by construction';

#include-replace "udfs/redeem_reward/1.3.sql"
COMMENT ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) IS
    'Redeem a catalog reward: checks window, tier gate, per-member limit and stock atomically, spends the points, issues a voucher code';


-- refer(): the referral chain walked one member at a time; both account
-- locks as single-member statements.

#include-replace "udfs/referral_refusal/1.3.sql"
COMMENT ON FUNCTION loyalty.referral_refusal(bigint, bigint) IS
    'Internal: the reason a referral of new_member by referrer is refused for good (already referred, already bought, a loop), or NULL';


#include-replace "udfs/refer/1.3.sql"
COMMENT ON FUNCTION loyalty.refer(bigint, text) IS
    'Link a new member (before any purchase) to the owner of a referral code; refuses self-referral, a second referrer, loops and capped referrers (LY020); returns the referrer';


-- claim_events() and ack_events() in PL/pgSQL; on Citus claim_events() lists
-- across shards and claims member by member.

#include-replace "udfs/claim_events/1.3.sql"
COMMENT ON FUNCTION loyalty.claim_events(integer, text, interval) IS
    'Claim up to max_events pending events, oldest first, skipping those other consumers hold; unacknowledged claims come back after the visibility interval';


#include-replace "udfs/ack_events/1.3.sql"
COMMENT ON FUNCTION loyalty.ack_events(bigint[]) IS
    'Acknowledge processed events (by id); returns how many were newly acknowledged; acknowledging twice is harmless';


-- kpi_summary: points pending by a join instead of a correlated subquery.

#include-replace "udfs/kpi_summary/1.3.sql"

-- review_tiers_batch() (and so review_tiers() and review_member_tier()): on
-- Citus the batch is listed without a lock and reviewed member by member with
-- single-shard statements (a locking query cannot span shards); the same
-- decision rules; unchanged without Citus.

#include-replace "udfs/review_tiers_batch/1.3.sql"
COMMENT ON FUNCTION loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) IS
    'One step of loyalty.review_tiers: review up to batch_size members of a program after a member id, set-based (on Citus member by member, same rules)';

-- == partitioning (issue 8) ====================================================
-- ledger_restore_indexes(): serialise the sessions of a parallel restore
-- (pg_restore -j), which could each create the same parent index.
#include-replace "udfs/ledger_restore_indexes/1.3.sql"

-- The C write path keeps the program row of its last call in each backend
-- (src/direct.c); after any change of programs every backend drops it, at
-- commit.  ALWAYS: also under session_replication_role = replica (logical
-- replication's apply, some restores), or a changed rate could go unseen.
CREATE FUNCTION loyalty.programs_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'loyalty_programs_changed' LANGUAGE C SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.programs_changed() IS
    'Trigger: makes every session re-read changed program rows after the change commits';
REVOKE ALL ON FUNCTION loyalty.programs_changed() FROM PUBLIC;
CREATE TRIGGER programs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.programs
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.programs_changed();
ALTER TABLE loyalty.programs ENABLE ALWAYS TRIGGER programs_changed;
