-- ---------------------------------------------------------------------------
-- Scale-out on Citus: loyalty.distribute() turns the extension's
-- tables into Citus tables on a coordinator and routes the member-first API
-- to the member's worker.  README.md, "Scale-out on Citus", is the manual.
-- ---------------------------------------------------------------------------
-- Citus is optional: this fragment only defines the function, so CREATE
-- EXTENSION loyalty works without it; without Citus the call fails with 55000
-- before changing anything.  On a coordinator (citus in
-- shared_preload_libraries, CREATE EXTENSION citus before loyalty, the workers
-- added) the extension owner runs it once, preferably before loading data:
--   SELECT * FROM loyalty.distribute();           -- or distribute(shard_count => 64)
--
-- What it does, in one transaction:
--   catalog tables (no member_id: programs, tiers, earning and activity rules,
--     rewards, redemption and referral rules, event kinds, program roles,
--     RFM segments, models) become reference tables, copied to every node;
--   per-member tables (member_id in every primary key and unique index:
--     members, accounts, ledger, lots, allocations, holds, idempotency keys,
--     events, activities, redemptions, referrals, tier history) are
--     distributed by member_id, co-located with loyalty.members, so a
--     member's rows are on one worker; a table with member_id and a unique
--     key without it is refused (42P16) before anything changes;
--   the two global lookups are keyed by what they are found by: identities
--     by external_id and referral codes by code (co-located with each other),
--     so enroll(), member_id() and refer() find a row with one shard lookup
--     and their unique keys still hold; the foreign key identities -> members
--     cannot be kept (two distributions), enroll() and link_identity() keep it;
--   foreign keys between loyalty tables are dropped first (Citus converts one
--     table at a time) and re-added afterwards, except identities -> members;
--   triggers (ledger_append_only and ledger_no_truncate on the ledger, the
--     rules-version bumps on earning_rules and tiers, program_roles_changed,
--     programs_changed)
--     are allowed by citus.enable_unsafe_triggers for the conversion only;
--     they fire on the shard of the row: member-local for the ledger; on
--     every node's copy for the reference tables, where the rules-version
--     bump writes that node's copy of programs (loyalty.rules_version_bump);
--   identity columns get a per-node range on the workers (group id << 48), as
--     Citus gives tables it creates itself, so ids never collide (and nothing
--     orders by them);
--   API functions whose first argument is the member (earn, award, redeem,
--     hold, reverse, adjust, balance, history, tiers, rewards, referrals...:
--     every SECURITY DEFINER function granted to loyalty_app or loyalty_admin
--     whose first argument is `member` or `new_member`) are registered with
--     create_distributed_function(..., '$1', colocate_with => members), and
--     member_id()/enroll() by '$3' co-located with identities: a top-level
--     SELECT f(<member>, ...) outside an explicit transaction block then runs
--     on the member's worker in one round trip.
-- Not routed (they run on the coordinator, which Citus routes statement by
-- statement): capture() and release() (a hold id), merge_members() (two
-- members), batch jobs, verify() and the views (all members), and any call
-- inside an explicit transaction block.

#include "udfs/distribute/1.2.sql"
COMMENT ON FUNCTION loyalty.distribute(integer) IS
    'Admin, once, on a Citus coordinator: catalog tables become reference tables, per-member tables are distributed by member_id (co-located), identities and referral codes by their lookup key, workers get their own identity ranges, and the member-first API is routed to the member''s worker; fails with 55000 (changing nothing) without Citus';

REVOKE ALL ON FUNCTION loyalty.distribute(integer) FROM PUBLIC;
