-- loyalty 1.1 -> 1.2 (ALTER EXTENSION loyalty UPDATE TO '1.2')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.2'" to load this file. \quit

-- == write path (issue 3) =====================================================

-- Room on each accounts page for HOT updates.  Rows already stored keep their
-- pages until the table is rewritten (VACUUM FULL or CLUSTER, at a quiet time).
ALTER TABLE loyalty.accounts SET (fillfactor = 70);


-- == Citus (issue 8) ==========================================================
-- Functions whose queries take parameters are PL/pgSQL instead of SQL: Citus
-- cannot plan a parameterised statement of an SQL-language function on
-- distributed tables ("could not create distributed plan").  Same queries,
-- same results; the member is checked once, so the queries filter by a
-- constant that Citus routes to one shard.
#include-replace "udfs/balance/1.2.sql"

#include-replace "udfs/balance_at/1.2-interim.sql"

#include-replace "udfs/history/1.2.sql"

#include-replace "udfs/earn_explanation/1.2.sql"

#include-replace "udfs/tier_window_start/1.2.sql"

#include-replace "udfs/tier_metric/1.2.sql"

#include-replace "udfs/qualified_tier/1.2.sql"

#include-replace "udfs/tier_at/1.2.sql"

#include-replace "udfs/purchase_summary/1.2.sql"

-- loyalty.distribute() (src/sql/95_distribute.sql), as a fresh install has it.
-- ---------------------------------------------------------------------------
-- Scale-out on Citus (issue 8): loyalty.distribute() turns the extension's
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
--     rules-version bumps on earning_rules and tiers, program_roles_changed)
--     are allowed by citus.enable_unsafe_triggers for the conversion only;
--     they fire on the shard of the row: member-local for the ledger;
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

-- == partitioning (issue 8) ==================================================

-- the archive horizon (30_ledger.sql)
CREATE TABLE loyalty.ledger_partitioning (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    period          interval NOT NULL,
    partitioned_at  timestamptz NOT NULL DEFAULT now(),
    archived_before timestamptz
);
COMMENT ON TABLE loyalty.ledger_partitioning IS 'Partitioning of loyalty.ledger by created_at (set by loyalty.partition_ledger) and its archive horizon';
COMMENT ON COLUMN loyalty.ledger_partitioning.period IS 'Range of created_at one partition holds (whole months or whole days, aligned in UTC)';
COMMENT ON COLUMN loyalty.ledger_partitioning.archived_before IS 'Archive horizon: entries recorded before it were summed into carry_forward entries and detached by loyalty.archive_ledger';
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_partitioning', '');
GRANT SELECT ON loyalty.ledger_partitioning TO loyalty_admin;

-- balance_at() refuses a time before the archive horizon; verify() knows
-- carry_forward entries and the lots whose entries were archived (40_api.sql)
#include-replace "udfs/balance_at/1.2.sql"
#include-replace "udfs/verify/1.2.sql"

-- partitioning, retention and restore of a partitioned ledger (85_partitioning.sql)
-- Internal: statements a restore still owes the partitioned ledger.
CREATE TABLE loyalty.ledger_pending_ddl (
    seq     integer PRIMARY KEY,
    ddl     text NOT NULL
);
COMMENT ON TABLE loyalty.ledger_pending_ddl IS 'Internal: index definitions of the partitioned ledger still to create during a restore (empty otherwise)';

-- Internal: the start of the partition period holding t.  Periods are whole
-- months (from January 2000) or whole days (from Monday 3 January 2000), in
-- UTC, so partitions of '1 month', '3 months', '1 year', '1 day' or '7 days'
-- start where one expects.
#include "udfs/ledger_period_start/1.2.sql"
COMMENT ON FUNCTION loyalty.ledger_period_start(timestamptz, interval) IS
    'Internal: start (UTC-aligned) of the ledger partition period that holds a time';

-- Internal: the partitions of the ledger and their bounds.
#include "udfs/ledger_partitions/1.2.sql"
COMMENT ON FUNCTION loyalty.ledger_partitions() IS
    'The partitions of loyalty.ledger with their created_at bounds (lower inclusive, upper exclusive); the DEFAULT partition last';

-- Internal: what every ledger partition carries besides the parent's cloned
-- row triggers: the TRUNCATE refusal (statement triggers are not cloned) and
-- the parent's row-level security, for whoever is ever given the partition.
#include "udfs/ledger_partition_setup/1.2.sql"
COMMENT ON FUNCTION loyalty.ledger_partition_setup(regclass) IS
    'Internal: give a new ledger partition the TRUNCATE refusal and the parent''s row-level security';

-- Internal: create and attach one partition [start, stop) (or the DEFAULT
-- one when start is NULL).  Created apart and attached, which locks the
-- parent only in SHARE UPDATE EXCLUSIVE mode (writers go on).  Rows the
-- DEFAULT partition holds for the new range move into it first.  Returns
-- false when a partition already covers part of the range.
#include "udfs/ledger_add_partition/1.2.sql"
COMMENT ON FUNCTION loyalty.ledger_add_partition(timestamptz, timestamptz) IS
    'Internal: create and attach one ledger partition (NULL start: the DEFAULT one), moving rows the DEFAULT partition holds for its range';

-- Internal: replace the plain ledger by a partitioned one.  restore: during a
-- restore (called by the event trigger below): no data, no partitions, and
-- the parent's indexes are left to ledger_restore_indexes().
#include "udfs/ledger_convert/1.2.sql"
COMMENT ON FUNCTION loyalty.ledger_convert(interval, integer, boolean) IS
    'Internal: replace the plain ledger by a partitioned one with the same rows, identity, indexes, triggers, grants, policies, dependent views and functions';

#include "udfs/partition_ledger/1.2.sql"
COMMENT ON FUNCTION loyalty.partition_ledger(interval, integer) IS
    'Convert loyalty.ledger (with its rows) into a table partitioned by created_at in periods of whole months or days, with partitions for the existing rows, ahead periods to come and a DEFAULT partition; locks the ledger for the whole conversion; returns the rows moved';

#include "udfs/create_ledger_partitions/1.2.sql"
COMMENT ON FUNCTION loyalty.create_ledger_partitions(integer, timestamptz) IS
    'Create the ledger partitions missing from the current period (or from since, moving rows out of the DEFAULT partition) to ahead periods to come, and the DEFAULT partition; idempotent, for a daily pg_cron job; returns the partitions created';

#include "udfs/archive_ledger/1.2.sql"
COMMENT ON FUNCTION loyalty.archive_ledger(timestamptz, text) IS
    'Retire the ledger partitions that end at or before a time: one carry_forward entry per member keeps balances and held points, then the partitions are detached into archive_schema (NULL: dropped); refused while an open lot, active hold, tier window or DEFAULT-partition row needs them';

#include "udfs/purge_idempotency_keys/1.2.sql"
COMMENT ON FUNCTION loyalty.purge_idempotency_keys(interval) IS
    'Delete idempotency keys older than older_than (at least a day): a replay after that is a new call; returns the keys deleted';

#include "udfs/purge_events/1.2.sql"
COMMENT ON FUNCTION loyalty.purge_events(interval) IS
    'Delete outbox events acknowledged more than older_than ago (pending ones stay); returns the events deleted';

-- Restore of a partitioned ledger (see the top of this file).  SECURITY
-- DEFINER: they fire for every user's DDL and read the extension's tables.
#include "udfs/ledger_restore_convert/1.2.sql"
COMMENT ON FUNCTION loyalty.ledger_restore_convert() IS
    'Internal event trigger: when a restore creates a ledger partition while loyalty.ledger is still the plain, empty table of CREATE EXTENSION, partition it';

#include "udfs/ledger_restore_indexes/1.2.sql"
COMMENT ON FUNCTION loyalty.ledger_restore_indexes() IS
    'Internal event trigger: before a restore attaches the ledger partitions'' indexes, create the partitioned ledger''s own';

CREATE EVENT TRIGGER loyalty_ledger_restore_convert ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION loyalty.ledger_restore_convert();
CREATE EVENT TRIGGER loyalty_ledger_restore_indexes ON ddl_command_start
    WHEN TAG IN ('ALTER INDEX')
    EXECUTE FUNCTION loyalty.ledger_restore_indexes();

-- Administrators only.
REVOKE ALL ON FUNCTION
    loyalty.ledger_period_start(timestamptz, interval),
    loyalty.ledger_partitions(),
    loyalty.ledger_partition_setup(regclass),
    loyalty.ledger_add_partition(timestamptz, timestamptz),
    loyalty.ledger_convert(interval, integer, boolean),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval),
    loyalty.ledger_restore_convert(),
    loyalty.ledger_restore_indexes()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.ledger_partitions(),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval)
TO loyalty_admin;
GRANT SELECT ON loyalty.ledger_pending_ddl TO loyalty_admin;
