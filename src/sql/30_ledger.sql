-- ---------------------------------------------------------------------------
-- The ledger core: programs, members, identities, accounts, the append-only
-- ledger, lots, allocations, holds and idempotency keys (src/ledger.c).
-- ---------------------------------------------------------------------------
-- Sharding-ready keys: every per-member table has member_id first in its
-- primary key and unique constraints; ids are bigint identities and nothing
-- depends on their order (FEFO ties break on created_at, then lot_id only to
-- be deterministic).

CREATE TABLE loyalty.programs (
    program_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name <> ''),
    currency        text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    point_value     numeric NOT NULL DEFAULT 0.01 CHECK (point_value >= 0 AND point_value < 'Infinity'),
    earn_rate       numeric NOT NULL DEFAULT 1 CHECK (earn_rate >= 0 AND earn_rate < 'Infinity'),
    rounding        text NOT NULL DEFAULT 'floor' CHECK (rounding = ANY (ARRAY['floor', 'round', 'ceil', 'trunc'])),
    expiry_period   interval CHECK (expiry_period > interval '0'),
    pending_period  interval NOT NULL DEFAULT interval '0' CHECK (pending_period >= interval '0'),
    refund_policy   text NOT NULL DEFAULT 'forgive' CHECK (refund_policy = ANY (ARRAY['forgive', 'debt'])),
    max_hold_ttl    interval NOT NULL DEFAULT interval '1 day' CHECK (max_hold_ttl > interval '0'),
    closed_through  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.programs IS 'Loyalty programs: currency, value of a point, base earn rate and policies';
COMMENT ON COLUMN loyalty.programs.point_value IS 'Money value of one point in the program currency (liability = points x point_value)';
COMMENT ON COLUMN loyalty.programs.earn_rate IS 'Base points per currency unit of purchase amount';
COMMENT ON COLUMN loyalty.programs.rounding IS 'How fractional earned points become whole points: floor, round (half away from zero), ceil, trunc';
COMMENT ON COLUMN loyalty.programs.expiry_period IS 'Earned points expire this long after they were earned; NULL: never';
COMMENT ON COLUMN loyalty.programs.pending_period IS 'Earned points vest (become spendable) this long after the purchase, e.g. the return window';
COMMENT ON COLUMN loyalty.programs.refund_policy IS 'When a refund takes back points already spent: forgive (write the shortfall off) or debt (the member owes it; later earnings repay it first)';
COMMENT ON COLUMN loyalty.programs.max_hold_ttl IS 'Longest time a hold may reserve points';
COMMENT ON COLUMN loyalty.programs.closed_through IS 'Business time up to which the books are closed: nothing may be posted with occurred_at at or before it';

CREATE TABLE loyalty.members (
    member_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    status          text NOT NULL DEFAULT 'active' CHECK (status = ANY (ARRAY['active', 'suspended', 'closed'])),
    joined_at       timestamptz NOT NULL DEFAULT now(),
    source_channel  text,
    region          text,
    birthday        date,
    merged_into     bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX members_program_idx ON loyalty.members (program_id);
-- who was merged into a member (a merge repoints them; a refund looks through them)
CREATE INDEX members_merged_into_idx ON loyalty.members (merged_into) WHERE merged_into IS NOT NULL;
COMMENT ON TABLE loyalty.members IS 'Loyalty members; one per person per program (identities map channel ids to them)';
COMMENT ON COLUMN loyalty.members.merged_into IS 'For a member absorbed by loyalty.merge_members: the surviving member';

-- A global lookup (channel identity -> member): keyed by the identity, not by
-- member, because that is how it is found.
CREATE TABLE loyalty.identities (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    channel         text NOT NULL CHECK (channel <> ''),
    external_id     text NOT NULL CHECK (external_id <> ''),
    -- deferred: enroll() claims the identity before it creates the member
    member_id       bigint NOT NULL REFERENCES loyalty.members DEFERRABLE INITIALLY DEFERRED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, channel, external_id)
);
CREATE INDEX identities_member_idx ON loyalty.identities (member_id);
COMMENT ON TABLE loyalty.identities IS 'Channel identities (POS card, web account, app id, e-mail...) of members, unique per program';

-- Column order matters for the WAL: the update of a row that stays on its
-- page is logged without the bytes it shares with the old version at the
-- start and at the end of the row.  So the columns that rarely change come
-- first (and last: next_expiry_at and the columns added by later fragments),
-- and those every write changes are side by side: a redemption changes
-- lifetime_redeemed..updated_at, an earn balance..purchase_amount (the
-- earn's update record went from 177 to 132 bytes: bench/README.md).
-- Installs upgraded from 1.2 keep the old order; the C write path finds
-- columns by name.
CREATE TABLE loyalty.accounts (
    member_id           bigint PRIMARY KEY REFERENCES loyalty.members,
    program_id          bigint NOT NULL REFERENCES loyalty.programs,
    status              text NOT NULL DEFAULT 'active',
    tier                loyalty.tier,
    referral_pending    boolean NOT NULL DEFAULT false,
    first_purchase_at   timestamptz,
    held                loyalty.points NOT NULL DEFAULT '0',
    debt                loyalty.points NOT NULL DEFAULT '0',
    lifetime_expired    loyalty.points NOT NULL DEFAULT '0',
    lifetime_redeemed   loyalty.points NOT NULL DEFAULT '0',
    balance             loyalty.points NOT NULL DEFAULT '0',
    updated_at          timestamptz NOT NULL DEFAULT now(),
    lifetime_earned     loyalty.points NOT NULL DEFAULT '0',
    last_purchase_at    timestamptz,
    purchase_count      bigint NOT NULL DEFAULT 0,
    purchase_days       bigint NOT NULL DEFAULT 0,
    purchase_amount     numeric NOT NULL DEFAULT 0,
    -- A lower bound of the member's earliest expiry of an open lot (NULL: no
    -- open lot expires).  Kept low by every write that opens a lot, made exact
    -- by loyalty.expire_member(); the expiry job finds its members through it,
    -- so an earn writes no global expiry index (see bench/README.md).
    next_expiry_at      timestamptz,
    -- balance = sum(lots.remaining) - debt, so it is below zero only while a
    -- debt is open (refund_policy = 'debt').  One constraint, not three: the
    -- executor rebuilds every CHECK expression of a table for each statement
    -- that writes it, and this table is written by every call.
    CONSTRAINT accounts_sound CHECK (
        (balance OPERATOR(loyalty.>=) '0'::loyalty.points OR debt OPERATOR(loyalty.>) '0'::loyalty.points)
        AND held OPERATOR(loyalty.>=) '0'::loyalty.points
        AND debt OPERATOR(loyalty.>=) '0'::loyalty.points)
)
-- Every write updates its member's row: room on each page lets the update be
-- a heap-only tuple (HOT) instead of a new index entry and a page split.
WITH (fillfactor = 70);
COMMENT ON TABLE loyalty.accounts IS 'Per-member balances and purchase statistics, kept in step with the ledger in the same transaction';
COMMENT ON COLUMN loyalty.accounts.balance IS 'Sum of the ledger = sum of lot remainders - debt (pending and not-yet-written-down expired points included)';
COMMENT ON COLUMN loyalty.accounts.held IS 'Points reserved by active holds (already taken out of lots)';
COMMENT ON COLUMN loyalty.accounts.debt IS 'Points owed after a refund under the debt policy; repaid first from later credits';
COMMENT ON COLUMN loyalty.accounts.status IS 'Copy of members.status, changed under the account lock, so a write learns it from the row it locks';
COMMENT ON COLUMN loyalty.accounts.tier IS 'The member''s current tier (NULL: none); gates rewards and scales earning';
COMMENT ON COLUMN loyalty.accounts.referral_pending IS 'The member was referred and its qualifying purchase has not happened yet (earn then settles the referral)';
-- the expiry job's and notify_expiring's way in (written only when the bound moves)
CREATE INDEX accounts_next_expiry_idx ON loyalty.accounts (next_expiry_at) WHERE next_expiry_at IS NOT NULL;
COMMENT ON COLUMN loyalty.accounts.next_expiry_at IS 'No open lot of the member expires before this (NULL: none expires); may lie earlier than the true first expiry until loyalty.expire_member() runs';
COMMENT ON COLUMN loyalty.accounts.purchase_days IS 'Distinct days with a purchase (the frequency measure of RFM and BG/NBD)';

-- The append-only ledger.  points moves the balance (= lots); held_delta moves
-- the held bucket (hold +, capture/release -).  Every row is final.
CREATE TABLE loyalty.ledger (
    member_id       bigint NOT NULL,
    entry_id        bigint GENERATED ALWAYS AS IDENTITY,
    program_id      bigint NOT NULL,
    -- earn, award, redeem, hold, capture, release, reverse, expire, adjust,
    -- merge, transfer, forfeit or carry_forward (loyalty.archive_ledger): written only by the
    -- extension, checked by loyalty.verify()
    kind            text NOT NULL,
    points          loyalty.points NOT NULL,
    held_delta      loyalty.points NOT NULL DEFAULT '0',
    amount          numeric,
    channel         text,
    reference       text,
    reason          text,
    actor           text NOT NULL DEFAULT current_user,
    source_entry    bigint,
    hold_id         bigint,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    details         jsonb,
    PRIMARY KEY (member_id, entry_id)
);
-- No (member_id, created_at) or purchase-day index: a member's rows are found
-- through the primary key and sorted, which is cheap at any realistic count
-- per member, while each index costs every write (see bench/).
CREATE INDEX ledger_reference_idx ON loyalty.ledger (member_id, reference) WHERE reference IS NOT NULL;
COMMENT ON TABLE loyalty.ledger IS 'Append-only ledger: one immutable row per change of a balance; balances are derived from it';
COMMENT ON COLUMN loyalty.ledger.points IS 'Signed change of the balance (lots): + earn/award/release/reverse of a debit, - redeem/hold/expire/reverse of a credit';
COMMENT ON COLUMN loyalty.ledger.held_delta IS 'Signed change of held points: + hold, - capture or release';
COMMENT ON COLUMN loyalty.ledger.source_entry IS 'For reversals, captures, releases and merges: the entry this one undoes or completes';
COMMENT ON COLUMN loyalty.ledger.created_at IS 'Recording time: the database clock at commit-time transaction start, never the client';
COMMENT ON COLUMN loyalty.ledger.occurred_at IS 'Business time given by the client, bounded: not in the future, not in a closed period';

-- Lots: one per credit; debits consume them first-to-expire-first.
CREATE TABLE loyalty.lots (
    member_id       bigint NOT NULL,
    lot_id          bigint NOT NULL,
    entry_id        bigint NOT NULL,
    original        loyalty.points NOT NULL,
    remaining       loyalty.points NOT NULL,
    reversed        loyalty.points NOT NULL DEFAULT '0',
    reversed_amount numeric NOT NULL DEFAULT 0,
    vests_at        timestamptz NOT NULL,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The open-lot index is partial on this flag, not on remaining: an update
    -- of remaining that leaves the lot open then changes no indexed column and
    -- can be a heap-only (HOT) update, with no new index entries.
    is_open         boolean NOT NULL GENERATED ALWAYS AS (remaining OPERATOR(loyalty.>) '0'::loyalty.points) STORED,
    -- Lot id first: a credit's lot then goes to the right edge of the key (ids
    -- come from one sequence), not to a random leaf of the member (on a
    -- grown ledger that insertion was a tenth of an earn's time, bench/).  Lots are found by (lot, member)
    -- or, a member's spendable ones, through lots_open_idx; no query reads a
    -- member's closed lots by member alone.  (Only the write cost follows the
    -- ids; no rule does.)
    PRIMARY KEY (lot_id, member_id)
)
-- room on each page for those HOT updates
WITH (fillfactor = 90);
-- Lots, allocations and the ledger are written only by the extension's own
-- functions (no role may write them directly), so their relationships and
-- bounds are checked by loyalty.verify() rather than by foreign keys and
-- CHECKs, whose per-statement cost the write path would pay on every call.
CREATE INDEX lots_open_idx ON loyalty.lots (member_id, expires_at, created_at) WHERE is_open;
COMMENT ON TABLE loyalty.lots IS 'Credited points as lots with vesting and expiry; remaining is what is left unspent';
COMMENT ON COLUMN loyalty.lots.is_open IS 'remaining > 0 (generated): the lot still has points to spend or expire';
COMMENT ON COLUMN loyalty.lots.lot_id IS 'The crediting entry''s entry_id (a credit has one lot); lots moved by a merge take fresh numbers from the ledger''s sequence';

-- Which lots a debit (redeem, hold, expire, reverse of a credit, merge out) used,
-- so that undoing it restores exactly those lots.
CREATE TABLE loyalty.allocations (
    member_id       bigint NOT NULL,
    entry_id        bigint NOT NULL,
    lot_id          bigint NOT NULL,
    points          loyalty.points NOT NULL,
    returned        loyalty.points NOT NULL DEFAULT '0',
    -- debit entry first, for the same reason as the lots' key: a debit's
    -- allocations go to the right edge; they are read by (member, entry)
    PRIMARY KEY (entry_id, member_id, lot_id)
);
COMMENT ON TABLE loyalty.allocations IS 'Lots consumed by each debit entry, and how much of each was given back';

CREATE TABLE loyalty.holds (
    member_id       bigint NOT NULL,
    hold_id         bigint GENERATED ALWAYS AS IDENTITY,
    entry_id        bigint NOT NULL,
    points          loyalty.points NOT NULL CHECK (points OPERATOR(loyalty.>) '0'::loyalty.points),
    captured        loyalty.points NOT NULL DEFAULT '0',
    status          text NOT NULL DEFAULT 'active' CHECK (status = ANY (ARRAY['active', 'captured', 'released', 'expired'])),
    channel         text,
    reference       text,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolved_entry  bigint,
    PRIMARY KEY (member_id, hold_id),
    CHECK (captured OPERATOR(loyalty.<=) points)
);
CREATE INDEX holds_hold_idx ON loyalty.holds (hold_id);
CREATE INDEX holds_active_idx ON loyalty.holds (expires_at) WHERE status = 'active';
COMMENT ON TABLE loyalty.holds IS 'Two-phase redemptions: points reserved until captured, released, or expired (database time)';

CREATE TABLE loyalty.idempotency_keys (
    member_id       bigint NOT NULL,
    idempotency_key text NOT NULL CHECK (idempotency_key <> ''),
    operation       text NOT NULL,
    request_hash    bigint NOT NULL,
    result          bigint,
    entry_id        bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, idempotency_key)
);
COMMENT ON TABLE loyalty.idempotency_keys IS 'First result of every keyed call; a replay returns it and changes nothing (keys are scoped per member)';

-- How the ledger is partitioned and how far it was archived (one row, or none
-- while the ledger is a plain table): see 85_partitioning.sql.
CREATE TABLE loyalty.ledger_partitioning (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    period          interval NOT NULL,
    partitioned_at  timestamptz NOT NULL DEFAULT now(),
    archived_before timestamptz
);
COMMENT ON TABLE loyalty.ledger_partitioning IS 'Partitioning of loyalty.ledger by created_at (set by loyalty.partition_ledger) and its archive horizon';
COMMENT ON COLUMN loyalty.ledger_partitioning.period IS 'Range of created_at one partition holds (whole months or whole days, aligned in UTC)';
COMMENT ON COLUMN loyalty.ledger_partitioning.archived_before IS 'Archive horizon: entries recorded before it were summed into carry_forward entries and detached by loyalty.archive_ledger';

-- The ledger is append-only for everybody, the owner included.
#include "udfs/ledger_refuse_change/1.0.sql"
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON loyalty.ledger
    FOR EACH ROW EXECUTE FUNCTION loyalty.ledger_refuse_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON loyalty.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.ledger_refuse_change();

-- The C write path keeps the program row of its last call in each backend
-- (src/store_exec.c); after any change of programs every backend drops it, at
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

SELECT pg_catalog.pg_extension_config_dump('loyalty.programs', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.members', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.identities', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.accounts', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.lots', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.allocations', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.holds', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.idempotency_keys', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_partitioning', '');
-- identity sequences too, or a restored database would hand out used ids again
SELECT pg_catalog.pg_extension_config_dump('loyalty.programs_program_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.members_member_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.holds_hold_id_seq', '');
