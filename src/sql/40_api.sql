-- ---------------------------------------------------------------------------
-- The public API of the ledger core.
-- ---------------------------------------------------------------------------
-- Every API function is SECURITY DEFINER because the application role may
-- call it but has no privilege on the tables it writes (that is the point:
-- every write goes through the checks below).  Each one pins search_path.

-- programs ------------------------------------------------------------------

#include "udfs/create_program/1.4.sql"
COMMENT ON FUNCTION loyalty.create_program(text, text, anycompatible, anycompatible, text, interval, interval, text, interval) IS
    'Create a loyalty program (currency, value of a point, base earn rate, rounding, expiry, pending period, refund policy); returns its id';

-- members and identities ----------------------------------------------------

#include "udfs/check_identity/1.4.sql"
COMMENT ON FUNCTION loyalty.check_identity(text, text) IS
    'Refuses a blank (in any whitespace) or over-long channel or external id (22023, 22001); used by enroll() and link_identity()';
REVOKE ALL ON FUNCTION loyalty.check_identity(text, text) FROM PUBLIC;

-- Internal: a new member's account, through the C write path.
#include "udfs/open_account/1.4.sql"
COMMENT ON FUNCTION loyalty.open_account(bigint, bigint) IS
    'Internal: the account of a member enroll() just created, written by the C write path';
REVOKE ALL ON FUNCTION loyalty.open_account(bigint, bigint) FROM PUBLIC;

#include "udfs/enroll/1.4.sql"
COMMENT ON FUNCTION loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text) IS
    'Enrol a member under a channel identity (optionally with a referral code); enrolling an existing identity returns the same member (also when two channels race)';

#include "udfs/member_id/1.1.sql"
COMMENT ON FUNCTION loyalty.member_id(bigint, text, text) IS
    'The member known under a channel identity, or NULL';

#include "udfs/link_identity/1.4.sql"
COMMENT ON FUNCTION loyalty.link_identity(bigint, text, text) IS
    'Attach another channel identity to a member; true if added, false if it was already this member''s';

#include "udfs/set_member_status/1.4.sql"
COMMENT ON FUNCTION loyalty.set_member_status(bigint, text) IS
    'Set a member active, suspended (no earning or spending) or closed';

-- the write path (C, src/ledger.c) -------------------------------------------

#include "udfs/earn/1.4.sql"
#include "udfs/earn/1.4-float8.sql"
COMMENT ON FUNCTION loyalty.earn(bigint, numeric, text, text, text, timestamptz, anycompatible, text) IS
    'Credit points for a purchase of amount (numeric, or double precision read to 15 significant digits), or of order lines (a JSON array [{category, product, quantity, amount}] as jsonb, json or text, or an array of lines), by the program''s rate and earning rules; the ledger row''s details say why; records purchase statistics; returns the points credited';
COMMENT ON FUNCTION loyalty.earn(bigint, double precision, text, text, text, timestamptz, anycompatible, text) IS
    'Credit points for a purchase of amount (numeric, or double precision read to 15 significant digits), or of order lines (a JSON array [{category, product, quantity, amount}] as jsonb, json or text, or an array of lines), by the program''s rate and earning rules; the ledger row''s details say why; records purchase statistics; returns the points credited';

#include "udfs/award/1.4.sql"
COMMENT ON FUNCTION loyalty.award(bigint, numeric, text, text, text, text, timestamptz, timestamptz) IS
    'Credit points for a non-purchase reason (sign-up, review, goodwill...); returns the ledger entry id';

#include "udfs/redeem/1.4.sql"
COMMENT ON FUNCTION loyalty.redeem(bigint, numeric, text, text, text, timestamptz) IS
    'Spend points now, first-to-expire-first; never below zero (LY001); returns the ledger entry id';

#include "udfs/hold/1.4.sql"
COMMENT ON FUNCTION loyalty.hold(bigint, numeric, interval, text, text, text) IS
    'Reserve points for ttl (two-phase redemption); returns the hold id for loyalty.capture() or loyalty.release()';

#include "udfs/capture/1.4.sql"
COMMENT ON FUNCTION loyalty.capture(bigint, numeric, text) IS
    'Redeem a hold (all of it, or points of it, the rest returning to the member); returns the ledger entry id';

#include "udfs/release/1.4.sql"
COMMENT ON FUNCTION loyalty.release(bigint, text) IS
    'Cancel a hold, returning its points to the lots they came from; returns the points released';

#include "udfs/reverse/1.4.sql"
COMMENT ON FUNCTION loyalty.reverse(bigint, bigint, numeric, anycompatible, text, text, text) IS
    'Undo an entry fully or partly (by points, or by refunded amount in proportion: amount is any number type or a string); never more than the entry; returns points reversed';

-- orders that failed under on_error 'skip' (earn_batch, order_trigger)
CREATE TABLE loyalty.rejected_orders (
    reject_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    reference   text,
    member      bigint,
    amount      numeric,
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    detail      text
);
COMMENT ON TABLE loyalty.rejected_orders IS
    'Orders a bulk load skipped (loyalty.earn_batch or loyalty.order_trigger with on_error skip): nothing of them was written; fix and load them again';
COMMENT ON COLUMN loyalty.rejected_orders.source IS 'loyalty.earn_batch, or the orders table whose trigger skipped the order';
COMMENT ON COLUMN loyalty.rejected_orders.member IS 'The member the order named (it may not exist: that can be why)';
COMMENT ON COLUMN loyalty.rejected_orders.sqlstate IS 'The error''s SQLSTATE (LY002: a replay with another amount; P0002: no such member; ...)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.rejected_orders', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rejected_orders_reject_id_seq', '');
#include "udfs/earn_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.earn_batch(bigint[], numeric[], text[], timestamptz[], text[], jsonb[], text) IS
    'Earn for many orders at once (one array element per order), as loyalty.order_trigger earns an inserted order: keyed by order reference (a replay writes nothing), member by member and each member''s orders by occurred_at; guests (NULL member) are skipped; a failing order fails the call, or with on_error ''skip'' goes to loyalty.rejected_orders; returns the orders, those that earned now, those replayed, those rejected, and the points credited';

#include "udfs/import_orders/1.4.sql"
COMMENT ON PROCEDURE loyalty.import_orders(regclass, text, text, text, text, text, integer, text) IS
    'Earn for the orders of a table or view (its member, amount, reference and optional occurred_at and channel columns) through loyalty.earn_batch, batch_size members per transaction in member_id order, committing after each batch with progress; online calls wait at most for one batch; CALL it outside a transaction block';

#include "udfs/refund/1.4.sql"
#include "udfs/refund/1.4-float8.sql"
COMMENT ON FUNCTION loyalty.refund(bigint, text, numeric, text, text) IS
    'Refund a purchase known by its reference (the order), the member''s or that of a member merged into it: all that is left of it, or amount of it (numeric, or double precision read to 15 significant digits), taking back points in proportion; returns the points taken back';
COMMENT ON FUNCTION loyalty.refund(bigint, text, double precision, text, text) IS
    'Refund a purchase known by its reference (the order), the member''s or that of a member merged into it: all that is left of it, or amount of it (numeric, or double precision read to 15 significant digits), taking back points in proportion; returns the points taken back';

CREATE FUNCTION loyalty.last_entry()
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_last_entry'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.last_entry() IS
    'The ledger entry id written by this session''s last write call (earn, award, redeem, hold, capture, release, reverse, refund, adjust, merge_members, an order''s insert), as lastval() is for sequences: for a replay, the entry the first call wrote; NULL if that call wrote none; 55000 before any (or after a rollback of it)';

#include "udfs/adjust/1.4.sql"
COMMENT ON FUNCTION loyalty.adjust(bigint, numeric, text, text, text) IS
    'Administrator correction by a signed number of points, with a reason; returns the ledger entry id';

CREATE FUNCTION loyalty.release_expired(member bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_release_expired'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.release_expired(bigint) IS
    'Release the member''s holds whose time is up; returns how many';

-- merge ---------------------------------------------------------------------

#include "udfs/merge_members/1.4.sql"
COMMENT ON FUNCTION loyalty.merge_members(bigint, bigint, text) IS
    'Merge two records of one person: lots (with their expiry), debt, statistics and identities move to the survivor through merge ledger entries; the absorbed member is closed; returns the points moved';

-- expiry ----------------------------------------------------------------------

#include "udfs/expire_member/1.4.sql"
COMMENT ON FUNCTION loyalty.expire_member(bigint, timestamptz) IS
    'Write off the unspent remainder of the member''s lots expired by as_of (default now); idempotent';

#include "udfs/expire_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.expire_batch(timestamptz, integer) IS
    'Expire the lots of up to batch_size members (one step of loyalty.expire_points)';

-- A procedure that COMMITs cannot carry a SET search_path clause (PostgreSQL
-- forbids transaction control there), so this body names every object with
-- its schema and does its work in pinned functions.
#include "udfs/expire_points/1.0.sql"
COMMENT ON PROCEDURE loyalty.expire_points(timestamptz, integer) IS
    'Batch job: write off expired lots as of a time, committing every batch_size members and reporting progress; safe to rerun';

#include "udfs/release_expired_batch/1.0.sql"
COMMENT ON FUNCTION loyalty.release_expired_batch(integer) IS
    'Release the expired holds of up to batch_size members (one step of loyalty.release_expired_holds)';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/release_expired_holds/1.0.sql"
COMMENT ON PROCEDURE loyalty.release_expired_holds(integer) IS
    'Batch job: release every hold whose time is up, committing per batch; holds also release themselves on the member''s next write';

-- reads -----------------------------------------------------------------------

#include "udfs/balance/1.4.sql"
COMMENT ON FUNCTION loyalty.balance(bigint) IS
    'Balances of a member now: available (spendable), pending (vesting), held, expired but not yet written down, debt, posted balance, lifetime totals, next expiry';

#include "udfs/balance_at/1.4.sql"
COMMENT ON FUNCTION loyalty.balance_at(bigint, timestamptz) IS
    'Posted balance (sum of the ledger) as recorded at a past time; answers disputes and month-end questions from the ledger alone';

#include "udfs/history/1.4.sql"
COMMENT ON FUNCTION loyalty.history(bigint, timestamptz, integer) IS
    'A member''s ledger entries, newest first: the ledger''s columns, with points and held_delta as bigint';

#include "udfs/verify/1.4.sql"
COMMENT ON FUNCTION loyalty.verify() IS
    'Check the ledger invariants; returns one row per violation and no rows when the books are sound';

#include "udfs/write_store/1.4.sql"
COMMENT ON FUNCTION loyalty.write_store() IS
    'Which store writes each table of the books now (fast: the executor''s row routines; sql: SQL statements) and, for sql, the first reason why';
