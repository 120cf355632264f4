-- ---------------------------------------------------------------------------
-- Partitioning and retention of the ledger (one node).
-- ---------------------------------------------------------------------------
-- loyalty.partition_ledger() turns the ledger into a table RANGE-partitioned
-- on created_at (recording time, set by the database: a row's partition is
-- known when it is written and never changes), keeping its rows, identity,
-- indexes, triggers, grants, row-level security, comments, the views and
-- functions built on it, and its extension membership.  The primary key
-- becomes (member_id, entry_id, created_at): a key must contain the partition
-- key; entry_id still comes from one sequence, so it stays unique.
--
-- loyalty.create_ledger_partitions() creates partitions ahead of time (daily
-- from pg_cron); a DEFAULT partition catches any row no partition covers, so
-- an insert never fails.  loyalty.archive_ledger() retires whole old
-- partitions: per member, one carry_forward entry (dated at the horizon)
-- holds what the archived entries summed to, so balances, held points and
-- every sum from the horizon on are unchanged.
--
-- pg_partman can create the partitions instead (partman.create_parent() on
-- the converted ledger, then partman.run_maintenance()): the extension names
-- its partitions as pg_partman does, an event trigger gives every partition,
-- whoever made it, what the extension's own get, and another refuses that a
-- partition holding entries not carried forward leave the ledger (detached or
-- dropped, e.g. by pg_partman's retention): archive_ledger() stays the way to
-- retire partitions.
--
-- What is not partitioned: lots, allocations and holds are working state
-- (open lots are few per member, and closed ones are read by reversals of
-- later entries); idempotency keys and delivered events only need deleting
-- once old (loyalty.purge_idempotency_keys, loyalty.purge_events).
--
-- Dumps: partitions are ordinary tables (not extension members), so pg_dump
-- writes their definition and rows; the partitioned parent is a member.  A
-- restore creates the extension (with a plain ledger) before the partitions,
-- so two event triggers finish the job: the first CREATE TABLE of a ledger
-- partition converts the (still empty) ledger, and the first ALTER INDEX
-- (attaching the partitions' indexes to the parent's) creates the parent's
-- indexes, which must not exist while the dump attaches its partitions.

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

-- Internal: the name of the partition [start, stop), as pg_partman names it
-- (ledger_pYYYY_MM for months, _pYYYY_MM_DD for days, _pYYYYwWW for weeks,
-- _pYYYYqQ for quarters, _pYYYY for years), so that it finds the partitions
-- it would make and makes the others next to them.
#include "udfs/ledger_partition_name/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_partition_name(timestamptz, timestamptz) IS
    'Internal: the name pg_partman gives the ledger partition of a period (ledger_pYYYY_MM, ledger_pYYYY_MM_DD, ledger_pYYYYwWW, ledger_pYYYYqQ, ledger_pYYYY)';

-- Internal: create and attach one partition [start, stop) (or the DEFAULT
-- one when start is NULL).  Created apart and attached, which locks the
-- parent only in SHARE UPDATE EXCLUSIVE mode (writers go on).  Rows the
-- DEFAULT partition holds for the new range move into it first.  Returns
-- false when a partition already covers part of the range.
#include "udfs/ledger_add_partition/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_add_partition(timestamptz, timestamptz) IS
    'Internal: create and attach one ledger partition (NULL start: the DEFAULT one), moving rows the DEFAULT partition holds for its range';

-- Internal: replace the plain ledger by a partitioned one.  restore: during a
-- restore (called by the event trigger below): no data, no partitions, and
-- the parent's indexes are left to ledger_restore_indexes().
#include "udfs/ledger_convert/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_convert(interval, integer, boolean) IS
    'Internal: replace the plain ledger by a partitioned one with the same rows, identity, indexes, triggers, grants, policies, dependent views and functions';

#include "udfs/partition_ledger/1.2.sql"
COMMENT ON FUNCTION loyalty.partition_ledger(interval, integer) IS
    'Convert loyalty.ledger (with its rows) into a table partitioned by created_at in periods of whole months or days, with partitions for the existing rows, ahead periods to come and a DEFAULT partition; locks the ledger for the whole conversion; returns the rows moved';

#include "udfs/create_ledger_partitions/1.2.sql"
COMMENT ON FUNCTION loyalty.create_ledger_partitions(integer, timestamptz) IS
    'Create the ledger partitions missing from the current period (or from since, moving rows out of the DEFAULT partition) to ahead periods to come, and the DEFAULT partition; idempotent, for a daily pg_cron job; returns the partitions created';

-- Internal: archive_ledger's writes of the books, through the C write path.
#include "udfs/archive_books/1.4.sql"
COMMENT ON FUNCTION loyalty.archive_books(regclass[], timestamptz, text) IS
    'Internal: for archive_ledger, one carry_forward entry per member of the archived partitions, then the archived debits'' allocations and the closed old lots leave (into archive_schema unless NULL); returns the entries written and the rows moved';

#include "udfs/archive_ledger/1.4.sql"
COMMENT ON FUNCTION loyalty.archive_ledger(timestamptz, text) IS
    'Retire the ledger partitions that end at or before a time: one carry_forward entry per member keeps balances and held points, then the partitions are detached into archive_schema (NULL: dropped), and with them the allocations of archived debits and the closed old lots no later debit names (archive_schema.lots and .allocations); one row per partition, then one for lots and one for allocations (entries = rows moved); refused while an open lot, active hold, tier window or DEFAULT-partition row needs them';

#include "udfs/purge_idempotency_keys/1.2.sql"
COMMENT ON FUNCTION loyalty.purge_idempotency_keys(interval) IS
    'Delete idempotency keys older than older_than (at least a day): a replay after that is a new call; returns the keys deleted';

#include "udfs/purge_events/1.2.sql"
COMMENT ON FUNCTION loyalty.purge_events(interval) IS
    'Delete outbox events acknowledged more than older_than ago (pending ones stay); returns the events deleted';

-- Restore of a partitioned ledger (see the top of this file).  SECURITY
-- DEFINER: they fire for every user's DDL and read the extension's tables.
#include "udfs/ledger_restore_convert/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_restore_convert() IS
    'Internal event trigger: when a restore creates a ledger partition while loyalty.ledger is still the plain, empty table of CREATE EXTENSION, partition it';

#include "udfs/ledger_restore_indexes/1.3.sql"
COMMENT ON FUNCTION loyalty.ledger_restore_indexes() IS
    'Internal event trigger: before a restore attaches the ledger partitions'' indexes, create the partitioned ledger''s own';

CREATE EVENT TRIGGER loyalty_ledger_restore_convert ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION loyalty.ledger_restore_convert();
CREATE EVENT TRIGGER loyalty_ledger_restore_indexes ON ddl_command_start
    WHEN TAG IN ('ALTER INDEX')
    EXECUTE FUNCTION loyalty.ledger_restore_indexes();

-- Partitions made by other tools (pg_partman, a DBA's CREATE TABLE ...
-- PARTITION OF or ATTACH PARTITION) get what ledger_add_partition gives its
-- own: the ledger_no_truncate trigger and row-level security.  pg_partman
-- 4's template table cannot carry them (it copies indexes, tablespace and
-- persistence only).  SECURITY DEFINER: fires for every user's DDL.
#include "udfs/ledger_partition_added/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_partition_added() IS
    'Internal event trigger: give every ledger partition without it (created or attached by any tool, pg_partman included) the TRUNCATE refusal and the parent''s row-level security';
CREATE EVENT TRIGGER loyalty_ledger_partition_added ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION loyalty.ledger_partition_added();

-- A ledger partition holding entries that were not carried forward may not
-- leave the ledger (src/partitions.c), whoever detaches or drops it.  No
-- search_path of its own: it resolves the names the command gives as the
-- command will (it runs no SQL).
#include "udfs/ledger_keep_entries/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_keep_entries() IS
    'Internal event trigger: refuse (55000) to detach or drop a partition of loyalty.ledger that holds entries loyalty.archive_ledger() has not carried forward';
CREATE EVENT TRIGGER loyalty_ledger_keep_entries ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE', 'DROP TABLE')
    EXECUTE FUNCTION loyalty.ledger_keep_entries();

-- Administrators only.
REVOKE ALL ON FUNCTION
    loyalty.ledger_period_start(timestamptz, interval),
    loyalty.ledger_partitions(),
    loyalty.ledger_partition_setup(regclass),
    loyalty.ledger_partition_name(timestamptz, timestamptz),
    loyalty.ledger_add_partition(timestamptz, timestamptz),
    loyalty.ledger_convert(interval, integer, boolean),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.archive_books(regclass[], timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval),
    loyalty.ledger_restore_convert(),
    loyalty.ledger_restore_indexes(),
    loyalty.ledger_partition_added(),
    loyalty.ledger_keep_entries()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.ledger_partitions(),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval)
TO loyalty_admin;
