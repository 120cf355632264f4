-- loyalty extension install script.
-- Assembled by the Makefile from src/sql/*.sql; edit the fragments, not the output.

\echo Use "CREATE EXTENSION loyalty" to load this file. \quit

-- The schema is created by CREATE EXTENSION (loyalty.control: schema = loyalty).
-- Nothing in it is usable by PUBLIC; the roles below get exactly what they need.
REVOKE ALL ON SCHEMA loyalty FROM PUBLIC;


-- The three roles (privileges in 90_security.sql and at the end of each
-- fragment):
--   loyalty_admin    configuration, adjustments, merges, batch jobs, verify
--   loyalty_app      the write/read API that channels call, nothing else
--   loyalty_analyst  read-only views
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_admin') THEN
        CREATE ROLE loyalty_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_app') THEN
        CREATE ROLE loyalty_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_analyst') THEN
        CREATE ROLE loyalty_analyst NOLOGIN;
    END IF;
END $$;

-- The version of the C library; test/scripts/version_check.sh compares it
-- with the extension's version and the packaging files.
CREATE FUNCTION loyalty.version() RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_version' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.version() IS 'Version of the loyalty library in use';
-- ---------------------------------------------------------------------------
-- points: an exact signed 64-bit count of points (src/points.c)
-- ---------------------------------------------------------------------------
-- Stored like int8, so ordering and hashing reuse PostgreSQL's int8 support
-- functions (LANGUAGE internal, as contrib/isn does); arithmetic that can
-- overflow or round is our C, raising 22003 and never wrapping.

CREATE TYPE loyalty.points;

CREATE FUNCTION loyalty.points_in(cstring) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_out(loyalty.points) RETURNS cstring
    AS 'MODULE_PATHNAME', 'points_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_recv(internal) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_send(loyalty.points) RETURNS bytea
    AS 'MODULE_PATHNAME', 'points_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE loyalty.points (
    INPUT = loyalty.points_in,
    OUTPUT = loyalty.points_out,
    RECEIVE = loyalty.points_recv,
    SEND = loyalty.points_send,
    LIKE = pg_catalog.int8,
    CATEGORY = 'N'
);
COMMENT ON TYPE loyalty.points IS
    'Exact signed 64-bit count of loyalty points; arithmetic is overflow-checked (SQLSTATE 22003)';

-- comparison: int8's own functions, valid because the representation is int8's
CREATE FUNCTION loyalty.points_eq(loyalty.points, loyalty.points) RETURNS boolean
    AS 'int8eq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_ne(loyalty.points, loyalty.points) RETURNS boolean
    AS 'int8ne' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_lt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'int8lt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_le(loyalty.points, loyalty.points) RETURNS boolean
    AS 'int8le' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_gt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'int8gt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_ge(loyalty.points, loyalty.points) RETURNS boolean
    AS 'int8ge' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_cmp(loyalty.points, loyalty.points) RETURNS integer
    AS 'btint8cmp' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_sortsupport(internal) RETURNS void
    AS 'btint8sortsupport' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_hash(loyalty.points) RETURNS integer
    AS 'hashint8' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_hash_extended(loyalty.points, bigint) RETURNS bigint
    AS 'hashint8extended' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;

CREATE OPERATOR loyalty.= (
    LEFTARG = loyalty.points, RIGHTARG = loyalty.points, FUNCTION = loyalty.points_eq,
    COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR loyalty.<> (
    LEFTARG = loyalty.points, RIGHTARG = loyalty.points, FUNCTION = loyalty.points_ne,
    COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR loyalty.< (
    LEFTARG = loyalty.points, RIGHTARG = loyalty.points, FUNCTION = loyalty.points_lt,
    COMMUTATOR = OPERATOR(loyalty.>), NEGATOR = OPERATOR(loyalty.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR loyalty.<= (
    LEFTARG = loyalty.points, RIGHTARG = loyalty.points, FUNCTION = loyalty.points_le,
    COMMUTATOR = OPERATOR(loyalty.>=), NEGATOR = OPERATOR(loyalty.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR loyalty.> (
    LEFTARG = loyalty.points, RIGHTARG = loyalty.points, FUNCTION = loyalty.points_gt,
    COMMUTATOR = OPERATOR(loyalty.<), NEGATOR = OPERATOR(loyalty.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR loyalty.>= (
    LEFTARG = loyalty.points, RIGHTARG = loyalty.points, FUNCTION = loyalty.points_ge,
    COMMUTATOR = OPERATOR(loyalty.<=), NEGATOR = OPERATOR(loyalty.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);

CREATE OPERATOR CLASS loyalty.points_ops DEFAULT FOR TYPE loyalty.points USING btree AS
    OPERATOR 1 loyalty.< ,
    OPERATOR 2 loyalty.<= ,
    OPERATOR 3 loyalty.= ,
    OPERATOR 4 loyalty.>= ,
    OPERATOR 5 loyalty.> ,
    FUNCTION 1 loyalty.points_cmp(loyalty.points, loyalty.points),
    FUNCTION 2 loyalty.points_sortsupport(internal);

CREATE OPERATOR CLASS loyalty.points_hash_ops DEFAULT FOR TYPE loyalty.points USING hash AS
    OPERATOR 1 loyalty.= ,
    FUNCTION 1 loyalty.points_hash(loyalty.points),
    FUNCTION 2 loyalty.points_hash_extended(loyalty.points, bigint);

-- arithmetic
CREATE FUNCTION loyalty.points_pl(loyalty.points, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_pl' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mi(loyalty.points, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mi' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_um(loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_um' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mul_int4(loyalty.points, integer) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mul_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.int4_mul_points(integer, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'int4_mul_points' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mul_numeric(loyalty.points, numeric) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mul_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.numeric_mul_points(numeric, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'numeric_mul_points' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_div(loyalty.points, loyalty.points) RETURNS numeric
    AS 'MODULE_PATHNAME', 'points_div' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR loyalty.+ (LEFTARG = loyalty.points, RIGHTARG = loyalty.points,
    FUNCTION = loyalty.points_pl, COMMUTATOR = OPERATOR(loyalty.+));
CREATE OPERATOR loyalty.- (LEFTARG = loyalty.points, RIGHTARG = loyalty.points,
    FUNCTION = loyalty.points_mi);
CREATE OPERATOR loyalty.- (RIGHTARG = loyalty.points, FUNCTION = loyalty.points_um);
CREATE OPERATOR loyalty.* (LEFTARG = loyalty.points, RIGHTARG = integer,
    FUNCTION = loyalty.points_mul_int4, COMMUTATOR = OPERATOR(loyalty.*));
CREATE OPERATOR loyalty.* (LEFTARG = integer, RIGHTARG = loyalty.points,
    FUNCTION = loyalty.int4_mul_points, COMMUTATOR = OPERATOR(loyalty.*));
CREATE OPERATOR loyalty.* (LEFTARG = loyalty.points, RIGHTARG = numeric,
    FUNCTION = loyalty.points_mul_numeric, COMMUTATOR = OPERATOR(loyalty.*));
CREATE OPERATOR loyalty.* (LEFTARG = numeric, RIGHTARG = loyalty.points,
    FUNCTION = loyalty.numeric_mul_points, COMMUTATOR = OPERATOR(loyalty.*));
CREATE OPERATOR loyalty./ (LEFTARG = loyalty.points, RIGHTARG = loyalty.points,
    FUNCTION = loyalty.points_div);

COMMENT ON FUNCTION loyalty.points_mul_numeric(loyalty.points, numeric) IS
    'points * numeric: the exact product rounded half away from zero (as numeric round())';

CREATE FUNCTION loyalty.points_mul_floor(loyalty.points, numeric) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mul_floor' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mul_ceil(loyalty.points, numeric) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mul_ceil' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mul_round(loyalty.points, numeric) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mul_round' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mul_trunc(loyalty.points, numeric) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mul_trunc' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mul(loyalty.points, numeric, rounding text) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mul_rounded' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.abs(loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_abs' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_value(loyalty.points, rate numeric) RETURNS numeric
    AS 'MODULE_PATHNAME', 'points_value' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION loyalty.points_mul_floor(loyalty.points, numeric) IS
    'points times a rate, rounded towards minus infinity';
COMMENT ON FUNCTION loyalty.points_mul_ceil(loyalty.points, numeric) IS
    'points times a rate, rounded towards plus infinity';
COMMENT ON FUNCTION loyalty.points_mul_round(loyalty.points, numeric) IS
    'points times a rate, rounded half away from zero (same as the * operator)';
COMMENT ON FUNCTION loyalty.points_mul_trunc(loyalty.points, numeric) IS
    'points times a rate, rounded towards zero';
COMMENT ON FUNCTION loyalty.points_mul(loyalty.points, numeric, text) IS
    'points times a rate, rounded by the named rule: round, floor, ceil or trunc';
COMMENT ON FUNCTION loyalty.abs(loyalty.points) IS 'absolute value of a points count';
COMMENT ON FUNCTION loyalty.points_value(loyalty.points, numeric) IS
    'monetary value of points when one point is worth rate (e.g. 0.01); exact, no rounding';

-- casts: into points by assignment (INSERT of an integer works, expressions
-- stay typed); numeric only explicitly, and only whole numbers; out of points
-- by assignment, so no implicit cast can silently pick a non-points operator.
CREATE FUNCTION loyalty.points(numeric) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_from_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points(integer) RETURNS loyalty.points
    AS 'int48' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_to_int4(loyalty.points) RETURNS integer
    AS 'MODULE_PATHNAME', 'points_to_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_to_numeric(loyalty.points) RETURNS numeric
    AS 'int8_numeric' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;

CREATE CAST (integer AS loyalty.points) WITH FUNCTION loyalty.points(integer) AS ASSIGNMENT;
CREATE CAST (bigint AS loyalty.points) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (numeric AS loyalty.points) WITH FUNCTION loyalty.points(numeric);
CREATE CAST (loyalty.points AS integer) WITH FUNCTION loyalty.points_to_int4(loyalty.points) AS ASSIGNMENT;
CREATE CAST (loyalty.points AS bigint) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (loyalty.points AS numeric) WITH FUNCTION loyalty.points_to_numeric(loyalty.points) AS ASSIGNMENT;

COMMENT ON FUNCTION loyalty.points(numeric) IS
    'whole numeric to points; a fraction, NaN or infinity is an error, never rounded silently';

-- aggregates
CREATE FUNCTION loyalty.points_smaller(loyalty.points, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_smaller' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_larger(loyalty.points, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_larger' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- avg keeps PostgreSQL's own int8 average state (128-bit sum and count, with
-- its serial/combine functions); only the transition needs our type in its
-- signature, and the int8 transition reads the same 8 bytes.
CREATE FUNCTION loyalty.points_avg_accum(internal, loyalty.points) RETURNS internal
    AS 'int8_avg_accum' LANGUAGE internal IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE loyalty.sum(loyalty.points) (
    SFUNC = loyalty.points_pl, STYPE = loyalty.points,
    COMBINEFUNC = loyalty.points_pl, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.min(loyalty.points) (
    SFUNC = loyalty.points_smaller, STYPE = loyalty.points,
    COMBINEFUNC = loyalty.points_smaller, SORTOP = OPERATOR(loyalty.<), PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.max(loyalty.points) (
    SFUNC = loyalty.points_larger, STYPE = loyalty.points,
    COMBINEFUNC = loyalty.points_larger, SORTOP = OPERATOR(loyalty.>), PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.avg(loyalty.points) (
    SFUNC = loyalty.points_avg_accum, STYPE = internal, SSPACE = 48,
    FINALFUNC = pg_catalog.numeric_poly_avg,
    COMBINEFUNC = pg_catalog.int8_avg_combine,
    SERIALFUNC = pg_catalog.int8_avg_serialize,
    DESERIALFUNC = pg_catalog.int8_avg_deserialize,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.sum(loyalty.points) IS 'sum of points; overflow raises 22003';
COMMENT ON AGGREGATE loyalty.min(loyalty.points) IS 'smallest points value';
COMMENT ON AGGREGATE loyalty.max(loyalty.points) IS 'largest points value';
COMMENT ON AGGREGATE loyalty.avg(loyalty.points) IS 'average of points as numeric';

-- ---------------------------------------------------------------------------
-- tier: a tier level, ordered by rank and read by name (src/tier.c)
-- ---------------------------------------------------------------------------
-- Text form RANK:NAME ('2:Gold'): the value carries its rank, so input reads
-- no table and values survive COPY and dump/restore in any order.

CREATE TYPE loyalty.tier;

CREATE FUNCTION loyalty.tier_in(cstring) RETURNS loyalty.tier
    AS 'MODULE_PATHNAME', 'tier_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_out(loyalty.tier) RETURNS cstring
    AS 'MODULE_PATHNAME', 'tier_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_recv(internal) RETURNS loyalty.tier
    AS 'MODULE_PATHNAME', 'tier_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_send(loyalty.tier) RETURNS bytea
    AS 'MODULE_PATHNAME', 'tier_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE loyalty.tier (
    INPUT = loyalty.tier_in,
    OUTPUT = loyalty.tier_out,
    RECEIVE = loyalty.tier_recv,
    SEND = loyalty.tier_send,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = int4,
    STORAGE = main
);
COMMENT ON TYPE loyalty.tier IS
    'Tier level: text RANK:NAME (e.g. 2:Gold), rank 0..32767, name 1..64 bytes; ordered by rank, then name';

CREATE FUNCTION loyalty.tier(rank integer, name text) RETURNS loyalty.tier
    AS 'MODULE_PATHNAME', 'tier_make' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_rank(loyalty.tier) RETURNS integer
    AS 'MODULE_PATHNAME', 'tier_rank' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_name(loyalty.tier) RETURNS text
    AS 'MODULE_PATHNAME', 'tier_name' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.tier(integer, text) IS 'build a tier from its rank and name (same checks as text input)';
COMMENT ON FUNCTION loyalty.tier_rank(loyalty.tier) IS 'rank of a tier (0 is the lowest)';
COMMENT ON FUNCTION loyalty.tier_name(loyalty.tier) IS 'name of a tier';

CREATE FUNCTION loyalty.tier_lt(loyalty.tier, loyalty.tier) RETURNS boolean
    AS 'MODULE_PATHNAME', 'tier_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_le(loyalty.tier, loyalty.tier) RETURNS boolean
    AS 'MODULE_PATHNAME', 'tier_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_eq(loyalty.tier, loyalty.tier) RETURNS boolean
    AS 'MODULE_PATHNAME', 'tier_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_ne(loyalty.tier, loyalty.tier) RETURNS boolean
    AS 'MODULE_PATHNAME', 'tier_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_ge(loyalty.tier, loyalty.tier) RETURNS boolean
    AS 'MODULE_PATHNAME', 'tier_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_gt(loyalty.tier, loyalty.tier) RETURNS boolean
    AS 'MODULE_PATHNAME', 'tier_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_cmp(loyalty.tier, loyalty.tier) RETURNS integer
    AS 'MODULE_PATHNAME', 'tier_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_hash(loyalty.tier) RETURNS integer
    AS 'MODULE_PATHNAME', 'tier_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_hash_extended(loyalty.tier, bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'tier_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR loyalty.= (
    LEFTARG = loyalty.tier, RIGHTARG = loyalty.tier, FUNCTION = loyalty.tier_eq,
    COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR loyalty.<> (
    LEFTARG = loyalty.tier, RIGHTARG = loyalty.tier, FUNCTION = loyalty.tier_ne,
    COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR loyalty.< (
    LEFTARG = loyalty.tier, RIGHTARG = loyalty.tier, FUNCTION = loyalty.tier_lt,
    COMMUTATOR = OPERATOR(loyalty.>), NEGATOR = OPERATOR(loyalty.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR loyalty.<= (
    LEFTARG = loyalty.tier, RIGHTARG = loyalty.tier, FUNCTION = loyalty.tier_le,
    COMMUTATOR = OPERATOR(loyalty.>=), NEGATOR = OPERATOR(loyalty.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR loyalty.> (
    LEFTARG = loyalty.tier, RIGHTARG = loyalty.tier, FUNCTION = loyalty.tier_gt,
    COMMUTATOR = OPERATOR(loyalty.<), NEGATOR = OPERATOR(loyalty.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR loyalty.>= (
    LEFTARG = loyalty.tier, RIGHTARG = loyalty.tier, FUNCTION = loyalty.tier_ge,
    COMMUTATOR = OPERATOR(loyalty.<=), NEGATOR = OPERATOR(loyalty.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);

CREATE OPERATOR CLASS loyalty.tier_ops DEFAULT FOR TYPE loyalty.tier USING btree AS
    OPERATOR 1 loyalty.< ,
    OPERATOR 2 loyalty.<= ,
    OPERATOR 3 loyalty.= ,
    OPERATOR 4 loyalty.>= ,
    OPERATOR 5 loyalty.> ,
    FUNCTION 1 loyalty.tier_cmp(loyalty.tier, loyalty.tier);

CREATE OPERATOR CLASS loyalty.tier_hash_ops DEFAULT FOR TYPE loyalty.tier USING hash AS
    OPERATOR 1 loyalty.= ,
    FUNCTION 1 loyalty.tier_hash(loyalty.tier),
    FUNCTION 2 loyalty.tier_hash_extended(loyalty.tier, bigint);

CREATE FUNCTION loyalty.tier_smaller(loyalty.tier, loyalty.tier) RETURNS loyalty.tier
    AS 'MODULE_PATHNAME', 'tier_smaller' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.tier_larger(loyalty.tier, loyalty.tier) RETURNS loyalty.tier
    AS 'MODULE_PATHNAME', 'tier_larger' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE loyalty.min(loyalty.tier) (
    SFUNC = loyalty.tier_smaller, STYPE = loyalty.tier,
    COMBINEFUNC = loyalty.tier_smaller, SORTOP = OPERATOR(loyalty.<), PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.max(loyalty.tier) (
    SFUNC = loyalty.tier_larger, STYPE = loyalty.tier,
    COMBINEFUNC = loyalty.tier_larger, SORTOP = OPERATOR(loyalty.>), PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.min(loyalty.tier) IS 'lowest tier';
COMMENT ON AGGREGATE loyalty.max(loyalty.tier) IS 'highest tier';

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

CREATE TABLE loyalty.accounts (
    member_id           bigint PRIMARY KEY REFERENCES loyalty.members,
    program_id          bigint NOT NULL REFERENCES loyalty.programs,
    balance             loyalty.points NOT NULL DEFAULT '0',
    held                loyalty.points NOT NULL DEFAULT '0',
    debt                loyalty.points NOT NULL DEFAULT '0',
    lifetime_earned     loyalty.points NOT NULL DEFAULT '0',
    lifetime_redeemed   loyalty.points NOT NULL DEFAULT '0',
    lifetime_expired    loyalty.points NOT NULL DEFAULT '0',
    first_purchase_at   timestamptz,
    last_purchase_at    timestamptz,
    purchase_count      bigint NOT NULL DEFAULT 0,
    purchase_days       bigint NOT NULL DEFAULT 0,
    purchase_amount     numeric NOT NULL DEFAULT 0,
    status              text NOT NULL DEFAULT 'active',
    tier                loyalty.tier,
    referral_pending    boolean NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- balance = sum(lots.remaining) - debt, so it is below zero only while a
    -- debt is open (refund_policy = 'debt').  One constraint, not three: the
    -- executor rebuilds every CHECK expression of a table for each statement
    -- that writes it, and this table is written by every call.
    CONSTRAINT accounts_sound CHECK (
        (balance OPERATOR(loyalty.>=) '0'::loyalty.points OR debt OPERATOR(loyalty.>) '0'::loyalty.points)
        AND held OPERATOR(loyalty.>=) '0'::loyalty.points
        AND debt OPERATOR(loyalty.>=) '0'::loyalty.points)
);
COMMENT ON TABLE loyalty.accounts IS 'Per-member balances and purchase statistics, kept in step with the ledger in the same transaction';
COMMENT ON COLUMN loyalty.accounts.balance IS 'Sum of the ledger = sum of lot remainders - debt (pending and not-yet-written-down expired points included)';
COMMENT ON COLUMN loyalty.accounts.held IS 'Points reserved by active holds (already taken out of lots)';
COMMENT ON COLUMN loyalty.accounts.debt IS 'Points owed after a refund under the debt policy; repaid first from later credits';
COMMENT ON COLUMN loyalty.accounts.status IS 'Copy of members.status, changed under the account lock, so a write learns it from the row it locks';
COMMENT ON COLUMN loyalty.accounts.tier IS 'The member''s current tier (NULL: none); gates rewards and scales earning';
COMMENT ON COLUMN loyalty.accounts.referral_pending IS 'The member was referred and its qualifying purchase has not happened yet (earn then settles the referral)';
COMMENT ON COLUMN loyalty.accounts.purchase_days IS 'Distinct days with a purchase (the frequency measure of RFM and BG/NBD)';

-- The append-only ledger.  points moves the balance (= lots); held_delta moves
-- the held bucket (hold +, capture/release -).  Every row is final.
CREATE TABLE loyalty.ledger (
    member_id       bigint NOT NULL,
    entry_id        bigint GENERATED ALWAYS AS IDENTITY,
    program_id      bigint NOT NULL,
    -- earn, award, redeem, hold, capture, release, reverse, expire, adjust or
    -- merge: written only by the extension, checked by loyalty.verify()
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
    PRIMARY KEY (member_id, lot_id)
);
-- Lots, allocations and the ledger are written only by the extension's own
-- functions (no role may write them directly), so their relationships and
-- bounds are checked by loyalty.verify() rather than by foreign keys and
-- CHECKs, whose per-statement cost the write path would pay on every call.
CREATE INDEX lots_open_idx ON loyalty.lots (member_id, expires_at, created_at) WHERE remaining OPERATOR(loyalty.>) '0'::loyalty.points;
CREATE INDEX lots_expiry_idx ON loyalty.lots (expires_at) WHERE remaining OPERATOR(loyalty.>) '0'::loyalty.points AND expires_at IS NOT NULL;
COMMENT ON TABLE loyalty.lots IS 'Credited points as lots with vesting and expiry; remaining is what is left unspent';
COMMENT ON COLUMN loyalty.lots.lot_id IS 'The crediting entry''s entry_id (a credit has one lot); lots moved by a merge take fresh numbers from the ledger''s sequence';

-- Which lots a debit (redeem, hold, expire, reverse of a credit, merge out) used,
-- so that undoing it restores exactly those lots.
CREATE TABLE loyalty.allocations (
    member_id       bigint NOT NULL,
    entry_id        bigint NOT NULL,
    lot_id          bigint NOT NULL,
    points          loyalty.points NOT NULL,
    returned        loyalty.points NOT NULL DEFAULT '0',
    PRIMARY KEY (member_id, entry_id, lot_id)
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

-- The ledger is append-only for everybody, the owner included.
#include "udfs/ledger_refuse_change/1.0.sql"
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON loyalty.ledger
    FOR EACH ROW EXECUTE FUNCTION loyalty.ledger_refuse_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON loyalty.ledger
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.ledger_refuse_change();

SELECT pg_catalog.pg_extension_config_dump('loyalty.programs', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.members', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.identities', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.accounts', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.lots', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.allocations', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.holds', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.idempotency_keys', '');
-- identity sequences too, or a restored database would hand out used ids again
SELECT pg_catalog.pg_extension_config_dump('loyalty.programs_program_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.members_member_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.holds_hold_id_seq', '');
-- ---------------------------------------------------------------------------
-- Lifecycle events: a transactional outbox plus NOTIFY.
-- ---------------------------------------------------------------------------
-- An event row is written by the same transaction as the fact it reports, so
-- a rolled-back sale emits nothing, and a NOTIFY on channel 'loyalty_events'
-- (delivered only at commit) wakes consumers, which then claim rows with
-- loyalty.claim_events() and acknowledge them with loyalty.ack_events().
--
-- Order: a member's events are written under the member's account lock, so
-- per member they are in commit order; across members there is no global
-- order (event_id is not a commit sequence).  Claims take pending events
-- oldest first and skip rows another consumer holds.

CREATE TABLE loyalty.event_kinds (
    kind        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO loyalty.event_kinds VALUES
    ('member.enrolled', 'A member was enrolled (welcome)'),
    ('points.earned', 'A purchase earned points'),
    ('reward.redeemed', 'A reward was redeemed from the catalog'),
    ('points.expiring', 'Points of the member expire soon (from loyalty.notify_expiring)'),
    ('tier.changed', 'The member moved to another tier');
COMMENT ON TABLE loyalty.event_kinds IS 'The event kinds the outbox carries';

CREATE TABLE loyalty.events (
    member_id       bigint NOT NULL,
    event_id        bigint GENERATED ALWAYS AS IDENTITY,
    program_id      bigint NOT NULL,
    kind            text NOT NULL REFERENCES loyalty.event_kinds,
    payload         jsonb NOT NULL DEFAULT '{}',
    dedup_key       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    claimed_by      text,
    acked_at        timestamptz,
    PRIMARY KEY (member_id, event_id)
);
-- the consumers' queue: pending events only
CREATE INDEX events_pending_idx ON loyalty.events (created_at, event_id) WHERE acked_at IS NULL;
-- an event with a dedup key is emitted once per member (e.g. one "expiring"
-- notice per expiry date)
CREATE UNIQUE INDEX events_dedup_idx ON loyalty.events (member_id, kind, dedup_key) WHERE dedup_key IS NOT NULL;
COMMENT ON TABLE loyalty.events IS 'Outbox of lifecycle events, written in the transaction of the fact; consumers claim and acknowledge them';
COMMENT ON COLUMN loyalty.events.dedup_key IS 'When set, the event is emitted at most once per member, kind and key';

-- Which kinds a program emits (all by default).
ALTER TABLE loyalty.programs ADD COLUMN event_kinds text[] NOT NULL
    DEFAULT ARRAY['member.enrolled', 'points.earned', 'reward.redeemed', 'points.expiring', 'tier.changed'];
COMMENT ON COLUMN loyalty.programs.event_kinds IS 'Event kinds this program writes to the outbox (an empty array: none)';

-- Internal: used by the extension's own functions (not granted to anyone).
#include "udfs/emit_event/1.0.sql"
COMMENT ON FUNCTION loyalty.emit_event(bigint, text, jsonb, text) IS
    'Internal: write one outbox event for a member (if the program emits that kind) and NOTIFY loyalty_events; returns the event id, or NULL when not emitted or a duplicate';

#include "udfs/claim_events/1.0.sql"
COMMENT ON FUNCTION loyalty.claim_events(integer, text, interval) IS
    'Claim up to max_events pending events, oldest first, skipping those other consumers hold; unacknowledged claims come back after the visibility interval';

#include "udfs/ack_events/1.0.sql"
COMMENT ON FUNCTION loyalty.ack_events(bigint[]) IS
    'Acknowledge processed events (by id); returns how many were newly acknowledged; acknowledging twice is harmless';

#include "udfs/notify_expiring/1.0.sql"
COMMENT ON FUNCTION loyalty.notify_expiring(interval, integer) IS
    'Emit one points.expiring event per member and expiry day for spendable points expiring within the interval; safe to run repeatedly (schedule daily)';

SELECT pg_catalog.pg_extension_config_dump('loyalty.events', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.events_event_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.emit_event(bigint, text, jsonb, text),
    loyalty.claim_events(integer, text, interval), loyalty.ack_events(bigint[]),
    loyalty.notify_expiring(interval, integer) FROM PUBLIC;
-- consumers are applications
GRANT EXECUTE ON FUNCTION loyalty.claim_events(integer, text, interval), loyalty.ack_events(bigint[])
    TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.notify_expiring(interval, integer) TO loyalty_admin;
-- ---------------------------------------------------------------------------
-- The public API of the ledger core.
-- ---------------------------------------------------------------------------
-- Every API function is SECURITY DEFINER because the application role may
-- call it but has no privilege on the tables it writes (that is the point:
-- every write goes through the checks below).  Each one pins search_path.

-- programs ------------------------------------------------------------------

#include "udfs/create_program/1.0.sql"
COMMENT ON FUNCTION loyalty.create_program(text, text, numeric, numeric, text, interval, interval, text, interval) IS
    'Create a loyalty program (currency, value of a point, base earn rate, rounding, expiry, pending period, refund policy); returns its id';

-- members and identities ----------------------------------------------------

#include "udfs/enroll/1.0.sql"
COMMENT ON FUNCTION loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text) IS
    'Enrol a member under a channel identity (optionally with a referral code); enrolling an existing identity returns the same member (also when two channels race)';

#include "udfs/member_id/1.0.sql"
COMMENT ON FUNCTION loyalty.member_id(bigint, text, text) IS
    'The member known under a channel identity, or NULL';

#include "udfs/link_identity/1.0.sql"
COMMENT ON FUNCTION loyalty.link_identity(bigint, text, text) IS
    'Attach another channel identity to a member; true if added, false if it was already this member''s';

#include "udfs/set_member_status/1.0.sql"
COMMENT ON FUNCTION loyalty.set_member_status(bigint, text) IS
    'Set a member active, suspended (no earning or spending) or closed';

-- the write path (C, src/ledger.c) -------------------------------------------

CREATE FUNCTION loyalty.earn(
    member bigint, amount numeric,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
    lines jsonb DEFAULT NULL, store text DEFAULT NULL)
RETURNS loyalty.points
AS 'MODULE_PATHNAME', 'loyalty_earn'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.earn(bigint, numeric, text, text, text, timestamptz, jsonb, text) IS
    'Credit points for a purchase of amount, or of order lines (jsonb [{category, product, quantity, amount}]), by the program''s rate and earning rules; the ledger row''s details say why; records purchase statistics; returns the points credited';

CREATE FUNCTION loyalty.award(
    member bigint, points loyalty.points, reason text,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_award'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.award(bigint, loyalty.points, text, text, text, text, timestamptz, timestamptz) IS
    'Credit points for a non-purchase reason (sign-up, review, goodwill...); returns the ledger entry id';

CREATE FUNCTION loyalty.redeem(
    member bigint, points loyalty.points,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_redeem'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.redeem(bigint, loyalty.points, text, text, text, timestamptz) IS
    'Spend points now, first-to-expire-first; never below zero (LY001); returns the ledger entry id';

CREATE FUNCTION loyalty.hold(
    member bigint, points loyalty.points, ttl interval DEFAULT interval '15 minutes',
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_hold'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.hold(bigint, loyalty.points, interval, text, text, text) IS
    'Reserve points for ttl (two-phase redemption); returns the hold id for loyalty.capture() or loyalty.release()';

CREATE FUNCTION loyalty.capture(hold bigint, points loyalty.points DEFAULT NULL,
                                idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_capture'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.capture(bigint, loyalty.points, text) IS
    'Redeem a hold (all of it, or points of it, the rest returning to the member); returns the ledger entry id';

CREATE FUNCTION loyalty.release(hold bigint, idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
AS 'MODULE_PATHNAME', 'loyalty_release'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.release(bigint, text) IS
    'Cancel a hold, returning its points to the lots they came from; returns the points released';

CREATE FUNCTION loyalty.reverse(
    member bigint, entry bigint,
    points loyalty.points DEFAULT NULL, amount numeric DEFAULT NULL,
    reference text DEFAULT NULL, reason text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
AS 'MODULE_PATHNAME', 'loyalty_reverse'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.reverse(bigint, bigint, loyalty.points, numeric, text, text, text) IS
    'Undo an entry fully or partly (by points, or by refunded amount in proportion); never more than the entry; returns points reversed';

CREATE FUNCTION loyalty.adjust(
    member bigint, points loyalty.points, reason text,
    idempotency_key text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_adjust'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.adjust(bigint, loyalty.points, text, text, text) IS
    'Administrator correction by a signed number of points, with a reason; returns the ledger entry id';

CREATE FUNCTION loyalty.release_expired(member bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_release_expired'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.release_expired(bigint) IS
    'Release the member''s holds whose time is up; returns how many';

-- merge ---------------------------------------------------------------------

#include "udfs/merge_members/1.0.sql"
COMMENT ON FUNCTION loyalty.merge_members(bigint, bigint, text) IS
    'Merge two records of one person: lots (with their expiry), debt, statistics and identities move to the survivor through merge ledger entries; the absorbed member is closed; returns the points moved';

-- expiry ----------------------------------------------------------------------

#include "udfs/expire_member/1.0.sql"
COMMENT ON FUNCTION loyalty.expire_member(bigint, timestamptz) IS
    'Write off the unspent remainder of the member''s lots expired by as_of (default now); idempotent';

#include "udfs/expire_batch/1.0.sql"
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

#include "udfs/balance/1.0.sql"
COMMENT ON FUNCTION loyalty.balance(bigint) IS
    'Balances of a member now: available (spendable), pending (vesting), held, expired but not yet written down, debt, posted balance, lifetime totals, next expiry';

#include "udfs/balance_at/1.0.sql"
COMMENT ON FUNCTION loyalty.balance_at(bigint, timestamptz) IS
    'Posted balance (sum of the ledger) as recorded at a past time; answers disputes and month-end questions from the ledger alone';

#include "udfs/history/1.0.sql"
COMMENT ON FUNCTION loyalty.history(bigint, timestamptz, integer) IS
    'A member''s ledger entries, newest first';

#include "udfs/verify/1.0.sql"
COMMENT ON FUNCTION loyalty.verify() IS
    'Check the ledger invariants; returns one row per violation and no rows when the books are sound';
-- ---------------------------------------------------------------------------
-- Earning rules (evaluated in C by src/rules.c) and non-purchase activities.
-- ---------------------------------------------------------------------------
-- How an earn is computed (README "Earning rules"):
--   1. The earn base is the purchase: one implicit line of `amount`, or the
--      order lines given ({category, product, quantity, amount}); a line's
--      amount is what the program earns on (net of discounts; send tax and
--      shipping as lines of their own category and give them a x0 rule to
--      exclude them).
--   2. Base points of a line = amount x programs.earn_rate (exact).
--   3. Multiplier rules are taken in (priority, name) order; each that
--      applies to a line contributes by its stacking:
--        multiply  M := M x m          (compounds)
--        add       A := A + (m - 1)    (adds its extra only)
--        best_of   B := max(B, m)      (only the best of these counts)
--      and the line earns base x (M x B + A).  A rule with stop = true ends
--      the evaluation for what it applied to (later rules are skipped).
--   4. Bonus rules (fixed points: first purchase, spend threshold...) apply
--      once per earn; `add` bonuses sum, of the `best_of` ones the largest
--      counts.
--   5. The sum of the lines is rounded once by the program's rounding rule,
--      then bonuses are added.  The ledger row's details record every step.

ALTER TABLE loyalty.programs
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN rules_version bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN loyalty.programs.time_zone IS 'Time zone in which rule weekdays, hours and birthdays are read';
COMMENT ON COLUMN loyalty.programs.rules_version IS 'Bumped by every change of the program''s earning rules; backends cache rules per version';

ALTER TABLE loyalty.accounts ADD COLUMN segment text;
COMMENT ON COLUMN loyalty.accounts.segment IS 'The member''s current segment (set by the analytics refresh or by the application); earning rules can target it';

CREATE TABLE loyalty.earning_rules (
    rule_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    name            text NOT NULL CHECK (name <> ''),
    effect          text NOT NULL CHECK (effect IN ('multiply', 'bonus')),
    multiplier      numeric CHECK (multiplier >= 0 AND multiplier < 1000),
    bonus_points    loyalty.points,
    stacking        text NOT NULL DEFAULT 'multiply' CHECK (stacking IN ('multiply', 'add', 'best_of')),
    priority        integer NOT NULL DEFAULT 100,
    stop            boolean NOT NULL DEFAULT false,
    active          boolean NOT NULL DEFAULT true,
    valid_from      timestamptz,
    valid_until     timestamptz,
    weekdays        integer[] CHECK (weekdays <@ ARRAY[1, 2, 3, 4, 5, 6, 7]),
    hour_from       integer CHECK (hour_from BETWEEN 0 AND 23),
    hour_to         integer CHECK (hour_to BETWEEN 1 AND 24),
    channels        text[],
    stores          text[],
    categories      text[],
    products        text[],
    min_tier        loyalty.tier,
    segments        text[],
    birthday        text CHECK (birthday IN ('day', 'month')),
    first_purchase  boolean NOT NULL DEFAULT false,
    min_amount      numeric CHECK (min_amount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, name),
    CHECK ((effect = 'multiply' AND multiplier IS NOT NULL AND bonus_points IS NULL)
        OR (effect = 'bonus' AND bonus_points IS NOT NULL AND multiplier IS NULL
            AND bonus_points::bigint > 0 AND stacking <> 'multiply')),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from),
    CHECK ((hour_from IS NULL) = (hour_to IS NULL) AND (hour_from IS NULL OR hour_to > hour_from))
);
COMMENT ON TABLE loyalty.earning_rules IS 'Multiplier and bonus rules of a program with their conditions; evaluated in C in (priority, name) order';
COMMENT ON COLUMN loyalty.earning_rules.effect IS 'multiply: scales the base points of the lines it applies to; bonus: fixed points once per earn';
COMMENT ON COLUMN loyalty.earning_rules.stacking IS 'multiply (compounds), add (adds its extra), best_of (only the best best_of rule counts)';
COMMENT ON COLUMN loyalty.earning_rules.stop IS 'When the rule applies, later rules are not evaluated for the same lines (bonus: for the earn)';
COMMENT ON COLUMN loyalty.earning_rules.weekdays IS 'ISO weekdays (1 = Monday .. 7 = Sunday) in the program time zone; NULL: any day';
COMMENT ON COLUMN loyalty.earning_rules.hour_from IS 'Applies from this hour (inclusive, program time zone) to hour_to (exclusive)';
COMMENT ON COLUMN loyalty.earning_rules.categories IS 'Lines of these categories only (a bonus: the basket must contain one); NULL: every line';
COMMENT ON COLUMN loyalty.earning_rules.birthday IS 'day: only on the member''s birthday; month: in the birthday month (program time zone)';
COMMENT ON COLUMN loyalty.earning_rules.min_amount IS 'Spend threshold: the earn base of the matching lines must reach this amount';

CREATE INDEX earning_rules_program_idx ON loyalty.earning_rules (program_id) WHERE active;

-- Every change of a program's rules (and of its tiers, whose earn multipliers
-- the rules engine applies) bumps its version, so each backend's cached copy
-- is replaced on the next earn.
#include "udfs/rules_version_bump/1.0.sql"
COMMENT ON FUNCTION loyalty.rules_version_bump() IS 'Trigger: bump programs.rules_version when an earning rule or a tier changes';
CREATE TRIGGER earning_rules_bump AFTER INSERT OR UPDATE OR DELETE ON loyalty.earning_rules
    FOR EACH ROW EXECUTE FUNCTION loyalty.rules_version_bump();

#include "udfs/create_earning_rule/1.0.sql"
COMMENT ON FUNCTION loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric) IS
    'Add a multiplier or bonus rule to a program; returns its id (see README "Earning rules" for stacking)';

#include "udfs/set_earning_rule_active/1.0.sql"
COMMENT ON FUNCTION loyalty.set_earning_rule_active(bigint, boolean) IS 'Switch an earning rule on or off (history keeps the rule name in each earn''s details)';

-- Non-purchase activities ---------------------------------------------------

CREATE TABLE loyalty.activity_rules (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    activity        text NOT NULL CHECK (activity ~ '^(signup|profile_completed|review|survey|social_share|app_download|custom:[a-z0-9_.-]+)$'),
    points          loyalty.points NOT NULL CHECK (points::bigint > 0),
    cap_per_day     integer CHECK (cap_per_day > 0),
    cap_per_week    integer CHECK (cap_per_week > 0),
    cap_per_month   integer CHECK (cap_per_month > 0),
    cap_lifetime    integer CHECK (cap_lifetime > 0),
    budget          loyalty.points CHECK (budget::bigint > 0),
    budget_used     loyalty.points NOT NULL DEFAULT '0',
    active          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (program_id, activity),
    CHECK (budget IS NULL OR budget_used::bigint <= budget::bigint)
);
COMMENT ON TABLE loyalty.activity_rules IS 'Points for non-purchase activities, with per-member caps (day, ISO week, month, lifetime) and a program budget';

CREATE TABLE loyalty.activities (
    member_id       bigint NOT NULL,
    activity_id     bigint GENERATED ALWAYS AS IDENTITY,
    program_id      bigint NOT NULL,
    activity        text NOT NULL,
    points          loyalty.points NOT NULL,
    entry_id        bigint,
    outcome         text NOT NULL CHECK (outcome IN ('awarded', 'capped', 'budget_exhausted')),
    reference       text,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, activity_id)
);
CREATE INDEX activities_member_idx ON loyalty.activities (member_id, activity, occurred_at) WHERE outcome = 'awarded';
COMMENT ON TABLE loyalty.activities IS 'Every recorded activity and its outcome (awarded, capped, budget_exhausted)';

#include "udfs/set_activity_rule/1.0.sql"
COMMENT ON FUNCTION loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points) IS
    'Define (or replace) the points, caps and budget of a non-purchase activity';

#include "udfs/record_activity/1.0.sql"
COMMENT ON FUNCTION loyalty.record_activity(bigint, text, text, text) IS
    'Record a non-purchase activity (signup, review, survey...); awards its points unless a cap or the budget is reached (then 0); the outcome is kept in loyalty.activities';

CREATE FUNCTION loyalty.preview_earn(member bigint, amount numeric DEFAULT NULL, lines jsonb DEFAULT NULL,
                                     channel text DEFAULT NULL, store text DEFAULT NULL,
                                     occurred_at timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'loyalty_preview_earn'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.preview_earn(bigint, numeric, jsonb, text, text, timestamptz) IS
    'The points a purchase (amount or order lines) would earn and why, as jsonb, without writing anything';

-- "Why did I get 37 points?": every earn with rules or lines keeps its
-- explanation in the ledger row's details.
#include "udfs/earn_explanation/1.0.sql"
COMMENT ON FUNCTION loyalty.earn_explanation(bigint, bigint) IS
    'Why an earn entry credited what it did: earn base, rate, every rule applied with its effect and lines, rounding and bonuses';

SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activity_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activities', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activities_activity_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.rules_version_bump(),
    loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
        timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric),
    loyalty.set_earning_rule_active(bigint, boolean),
    loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points),
    loyalty.record_activity(bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
        timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric),
    loyalty.set_earning_rule_active(bigint, boolean),
    loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points)
TO loyalty_admin;
REVOKE ALL ON FUNCTION loyalty.preview_earn(bigint, numeric, jsonb, text, text, timestamptz),
    loyalty.earn_explanation(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.record_activity(bigint, text, text, text),
    loyalty.preview_earn(bigint, numeric, jsonb, text, text, timestamptz),
    loyalty.earn_explanation(bigint, bigint) TO loyalty_app, loyalty_admin;

-- The channel trigger --------------------------------------------------------

-- SECURITY DEFINER: the trigger runs in the application's transaction as the
-- role that writes the orders table, which has no rights on the extension's
-- tables; the function only ever earns and reverses through the ledger API.
-- Only loyalty_admin may attach it (EXECUTE is checked at CREATE TRIGGER).
CREATE FUNCTION loyalty.order_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'loyalty_order_trigger'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.order_trigger() IS
    'AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW trigger for an application''s orders table: order_trigger(member_col, amount_col, reference_col, status_col [, channel_col, occurred_at_col] [, ''cancel=s1,s2''] [, ''earn=s1,s2'']); earns on insert, reverses on cancel status, lowered amount or delete; idempotent by order reference';
REVOKE ALL ON FUNCTION loyalty.order_trigger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.order_trigger() TO loyalty_admin;
-- ---------------------------------------------------------------------------
-- Tiers: ladders, qualification windows, upgrades at once, downgrades at
-- review with grace, benefits, history.
-- ---------------------------------------------------------------------------
-- A program with a tier policy (programs.tier_metric not NULL) has a ladder
-- in loyalty.tiers.  The qualifying metric is computed from the ledger and
-- lots over the program's window:
--   spend   purchase amounts less refunded amounts (earn entries)
--   points  points earned by purchases less their reversals (never the
--           spendable balance; awards and adjustments do not qualify)
--   visits  distinct UTC days with a purchase not fully refunded
-- A purchase counts while its occurred_at lies inside the window; for a
-- rolling window of N months it ages out exactly N months after it happened
-- (window = (as_of - N months, as_of]).
--
-- Upgrades happen in the transaction of the qualifying earn (the C earn path
-- calls loyalty.tier_after_write).  Downgrades happen only at review
-- (loyalty.review_tiers), after the grace period, by one step or to the
-- qualified tier as the program says; manual assignments with an end date
-- and invitation-only tiers are kept until that date.

ALTER TABLE loyalty.programs
    ADD COLUMN tier_metric text CHECK (tier_metric IN ('spend', 'points', 'visits')),
    ADD COLUMN tier_window text NOT NULL DEFAULT 'rolling' CHECK (tier_window IN ('rolling', 'calendar', 'anniversary')),
    ADD COLUMN tier_window_months integer NOT NULL DEFAULT 12 CHECK (tier_window_months BETWEEN 1 AND 120),
    ADD COLUMN tier_downgrade text NOT NULL DEFAULT 'one_step' CHECK (tier_downgrade IN ('one_step', 'to_qualified')),
    ADD COLUMN tier_grace interval NOT NULL DEFAULT interval '0' CHECK (tier_grace >= interval '0'),
    ADD COLUMN tier_refund_demotes boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN loyalty.programs.tier_metric IS 'Tier qualification metric: spend, points (earned by purchases) or visits (purchase days); NULL: no tiers';
COMMENT ON COLUMN loyalty.programs.tier_window IS 'rolling (the last N months), calendar (N-month periods from 1 January) or anniversary (N-month periods from the join date)';
COMMENT ON COLUMN loyalty.programs.tier_downgrade IS 'At review, a member who no longer qualifies falls one_step or to_qualified';
COMMENT ON COLUMN loyalty.programs.tier_grace IS 'A member who stops qualifying keeps the tier this long before a review may lower it';
COMMENT ON COLUMN loyalty.programs.tier_refund_demotes IS 'Whether a refund that lowers the metric can demote at once (otherwise only at review)';

CREATE TABLE loyalty.tiers (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    rank            integer NOT NULL CHECK (rank BETWEEN 0 AND 32767),
    name            text NOT NULL,
    threshold       numeric NOT NULL CHECK (threshold >= 0 AND threshold < 'Infinity'),
    earn_multiplier numeric NOT NULL DEFAULT 1 CHECK (earn_multiplier >= 0 AND earn_multiplier < 100),
    invitation_only boolean NOT NULL DEFAULT false,
    benefits        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (program_id, rank),
    UNIQUE (program_id, name)
);
COMMENT ON TABLE loyalty.tiers IS 'Tier ladders: rank, name, qualification threshold, earn multiplier (applied by the earning rules), invitation-only flag, custom benefits';

ALTER TABLE loyalty.accounts
    ADD COLUMN tier_since timestamptz,
    ADD COLUMN tier_locked_until timestamptz,
    ADD COLUMN tier_grace_until timestamptz;
COMMENT ON COLUMN loyalty.accounts.tier_locked_until IS 'A manually assigned or invitation tier is kept until then (infinity: until changed by hand)';
COMMENT ON COLUMN loyalty.accounts.tier_grace_until IS 'The member stopped qualifying; a review may lower the tier from then on';

CREATE TABLE loyalty.tier_history (
    member_id       bigint NOT NULL,
    change_id       bigint GENERATED ALWAYS AS IDENTITY,
    from_tier       loyalty.tier,
    to_tier         loyalty.tier,
    reason          text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, change_id)
);
CREATE INDEX tier_history_time_idx ON loyalty.tier_history (member_id, changed_at);
COMMENT ON TABLE loyalty.tier_history IS 'Every tier change of a member: from, to, why, when';

-- a tier change moves the earn multiplier the rules engine caches
CREATE TRIGGER tiers_bump AFTER INSERT OR UPDATE OR DELETE ON loyalty.tiers
    FOR EACH ROW EXECUTE FUNCTION loyalty.rules_version_bump();

#include "udfs/set_tier_policy/1.0.sql"
COMMENT ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean) IS
    'Set how a program''s members qualify for tiers: metric, window, downgrade rule, grace period, refund effect';

#include "udfs/define_tier/1.0.sql"
COMMENT ON FUNCTION loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb) IS
    'Add or change a rung of a program''s tier ladder; returns the tier value';

-- Start of the qualification window ending at as_of.
#include "udfs/tier_window_start/1.0.sql"
COMMENT ON FUNCTION loyalty.tier_window_start(bigint, timestamptz) IS
    'Start of the member''s qualification window ending at as_of (rolling: exclusive; calendar and anniversary: inclusive)';

#include "udfs/tier_metric/1.0.sql"
COMMENT ON FUNCTION loyalty.tier_metric(bigint, timestamptz) IS
    'The member''s qualifying metric (spend, points earned or visits, net of refunds) over the window ending at as_of (default now)';

#include "udfs/qualified_tier/1.0.sql"
COMMENT ON FUNCTION loyalty.qualified_tier(bigint, timestamptz) IS
    'The highest tier (not invitation-only) whose threshold the member''s metric reaches at as_of';

-- Internal: record a change on the locked account.
#include "udfs/tier_change/1.0.sql"
COMMENT ON FUNCTION loyalty.tier_change(bigint, loyalty.tier, text, timestamptz) IS
    'Internal: set the member''s tier (account locked by the caller), write history and the tier.changed event';

-- Internal: called by the C write path after an earn (upgrade) or a refund
-- (demotion only when the program allows it), with the account locked.
#include "udfs/tier_after_write/1.0.sql"
COMMENT ON FUNCTION loyalty.tier_after_write(bigint, text) IS
    'Internal: upgrade at once after an earn; after a refund, demote only if the program says so';

#include "udfs/evaluate_tier/1.0.sql"
COMMENT ON FUNCTION loyalty.evaluate_tier(bigint) IS
    'The member''s tier now, the tier the metric qualifies for, the metric and its value, the next tier and the distance to it; applies an upgrade';

#include "udfs/assign_tier/1.0.sql"
COMMENT ON FUNCTION loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text) IS
    'Assign a tier by hand (status match, invitation); reviews keep it until the end date';

#include "udfs/tier_at/1.0.sql"
COMMENT ON FUNCTION loyalty.tier_at(bigint, timestamptz) IS 'The member''s tier at a past time (NULL: none then)';

-- The review, set-based: up to batch_size members of a program after a
-- member id, locked together (in member_id order), their metric computed in
-- one query; only members whose tier changes go through tier_change (history
-- and event).  Returns the last member id reviewed, how many were reviewed
-- and how many changed tier.
#include "udfs/review_tiers_batch/1.0.sql"
COMMENT ON FUNCTION loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) IS
    'One step of loyalty.review_tiers: review up to batch_size members of a program after a member id, set-based';

-- Review one member (locking it): the batch review of just that member.
#include "udfs/review_member_tier/1.0.sql"
COMMENT ON FUNCTION loyalty.review_member_tier(bigint, timestamptz) IS
    'Review one member''s tier as of a time: upgrade if qualified, start or honour grace, then downgrade by the program''s rule';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/review_tiers/1.0.sql"
COMMENT ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) IS
    'Batch job: review every member''s tier as of a time (default now), committing every batch_size members and reporting progress; safe to rerun or run concurrently';

SELECT pg_catalog.pg_extension_config_dump('loyalty.tiers', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history_change_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean),
    loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb),
    loyalty.tier_window_start(bigint, timestamptz),
    loyalty.tier_metric(bigint, timestamptz),
    loyalty.qualified_tier(bigint, timestamptz),
    loyalty.tier_change(bigint, loyalty.tier, text, timestamptz),
    loyalty.tier_after_write(bigint, text),
    loyalty.evaluate_tier(bigint),
    loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text),
    loyalty.tier_at(bigint, timestamptz),
    loyalty.review_member_tier(bigint, timestamptz),
    loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.evaluate_tier(bigint), loyalty.tier_at(bigint, timestamptz),
    loyalty.tier_metric(bigint, timestamptz), loyalty.qualified_tier(bigint, timestamptz)
TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean),
    loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb),
    loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text),
    loyalty.review_member_tier(bigint, timestamptz),
    loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer)
TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) TO loyalty_admin;
-- ---------------------------------------------------------------------------
-- Rewards catalog, redemptions with voucher codes, money off an order.
-- ---------------------------------------------------------------------------
-- A redemption checks, under the member's lock: the reward is active and in
-- its window, the member's tier reaches its gate, the per-member limit; then
-- it takes a unit of stock with one conditional UPDATE (the reward row lock
-- orders concurrent buyers of the last unit: the second sees 0 and fails),
-- and spends the points through loyalty.redeem (first-to-expire-first).  Any
-- failure rolls all of it back.

CREATE TABLE loyalty.rewards (
    reward_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id       bigint NOT NULL REFERENCES loyalty.programs,
    code             text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name             text NOT NULL CHECK (name <> ''),
    point_cost       loyalty.points NOT NULL CHECK (point_cost::bigint > 0),
    stock            bigint CHECK (stock >= 0),
    valid_from       timestamptz,
    valid_until      timestamptz,
    min_tier         loyalty.tier,
    per_member_limit integer CHECK (per_member_limit > 0),
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, code),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from)
);
COMMENT ON TABLE loyalty.rewards IS 'Reward catalog: point cost, stock (NULL: unlimited), validity window, tier gate, per-member limit';

CREATE TABLE loyalty.redemptions (
    member_id       bigint NOT NULL,
    redemption_id   bigint GENERATED ALWAYS AS IDENTITY,
    reward_id       bigint NOT NULL,
    points          loyalty.points NOT NULL,
    entry_id        bigint NOT NULL,
    voucher         text NOT NULL,
    status          text NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'cancelled')),
    idempotency_key text,
    channel         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz,
    cancel_entry    bigint,
    PRIMARY KEY (member_id, redemption_id),
    UNIQUE (member_id, idempotency_key)
);
-- A voucher is presented at the till, so it is looked up by itself.  Unique
-- keys of per-member tables include member_id (they must hold on a sharded
-- cluster, issue 8), so the index on the voucher alone is not UNIQUE: 64
-- random bits and the check in redeem_reward keep vouchers distinct.
CREATE UNIQUE INDEX redemptions_member_voucher_idx ON loyalty.redemptions (member_id, voucher);
CREATE INDEX redemptions_voucher_idx ON loyalty.redemptions (voucher);
CREATE INDEX redemptions_reward_idx ON loyalty.redemptions (member_id, reward_id) WHERE status = 'issued';
COMMENT ON TABLE loyalty.redemptions IS 'Rewards redeemed by members, with their voucher code and the redeem ledger entry';
COMMENT ON COLUMN loyalty.redemptions.voucher IS 'Random voucher code (16 hex digits from gen_random_uuid), distinct across redemptions';
COMMENT ON COLUMN loyalty.redemptions.entry_id IS 'The redeem ledger entry that paid for the reward';
COMMENT ON COLUMN loyalty.redemptions.cancel_entry IS 'The reverse ledger entry that gave the points back (cancelled redemptions)';

CREATE TABLE loyalty.redemption_rules (
    program_id          bigint PRIMARY KEY REFERENCES loyalty.programs,
    min_points          loyalty.points NOT NULL DEFAULT '1' CHECK (min_points::bigint > 0),
    max_points          loyalty.points CHECK (max_points::bigint > 0),
    max_share_of_order  numeric CHECK (max_share_of_order > 0 AND max_share_of_order <= 1),
    CHECK (max_points IS NULL OR max_points::bigint >= min_points::bigint)
);
COMMENT ON TABLE loyalty.redemption_rules IS 'Limits on paying part of an order with points: minimum and maximum points per order, maximum share of the order';

#include "udfs/create_reward/1.0.sql"
COMMENT ON FUNCTION loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer) IS
    'Add a reward to a program''s catalog; returns its id';

#include "udfs/restock_reward/1.0.sql"
COMMENT ON FUNCTION loyalty.restock_reward(bigint, bigint) IS 'Add (or, negative, remove) units of a reward''s stock; returns the new stock';

#include "udfs/redeem_reward/1.0.sql"
COMMENT ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) IS
    'Redeem a catalog reward: checks window, tier gate, per-member limit and stock atomically, spends the points, issues a voucher code';

#include "udfs/cancel_redemption/1.0.sql"
COMMENT ON FUNCTION loyalty.cancel_redemption(bigint, bigint, text) IS
    'Cancel a redemption: points back to their original lots, the unit back to stock; returns the points given back';

#include "udfs/set_redemption_rules/1.0.sql"
COMMENT ON FUNCTION loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric) IS
    'Limits on paying part of an order with points: minimum and maximum points per order, maximum share of the order amount';

#include "udfs/redeem_for_discount/1.0.sql"
COMMENT ON FUNCTION loyalty.redeem_for_discount(bigint, numeric, loyalty.points, text, text) IS
    'Pay part of an order with points within the program''s limits; returns the discount (points x point value)';

SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards_reward_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.redemptions', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.redemptions_redemption_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.redemption_rules', '');

REVOKE ALL ON FUNCTION
    loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer),
    loyalty.restock_reward(bigint, bigint),
    loyalty.redeem_reward(bigint, bigint, text, text),
    loyalty.cancel_redemption(bigint, bigint, text),
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric),
    loyalty.redeem_for_discount(bigint, numeric, loyalty.points, text, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.redeem_reward(bigint, bigint, text, text),
    loyalty.cancel_redemption(bigint, bigint, text),
    loyalty.redeem_for_discount(bigint, numeric, loyalty.points, text, text)
TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer),
    loyalty.restock_reward(bigint, bigint),
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric)
TO loyalty_admin;
-- ---------------------------------------------------------------------------
-- Referrals: codes per member, links from new members, bonuses on the new
-- member's first qualifying purchase.
-- ---------------------------------------------------------------------------
-- loyalty.refer links a new member (no purchase yet) to the owner of a code
-- and sets accounts.referral_pending; the C earn path then calls
-- loyalty.referral_purchase on each purchase while it is pending, in the
-- purchase's transaction, and the first purchase that reaches the program's
-- minimum pays both bonuses (awards keyed per referral, so never twice).

CREATE TABLE loyalty.referral_rules (
    program_id                  bigint PRIMARY KEY REFERENCES loyalty.programs,
    referrer_points             loyalty.points NOT NULL CHECK (referrer_points::bigint >= 0),
    referee_points              loyalty.points NOT NULL CHECK (referee_points::bigint >= 0),
    min_purchase_amount         numeric NOT NULL DEFAULT 0 CHECK (min_purchase_amount >= 0),
    max_referrals_per_referrer  integer CHECK (max_referrals_per_referrer > 0)
);
COMMENT ON TABLE loyalty.referral_rules IS 'Referral bonuses of a program, the qualifying purchase amount, and the cap per referrer';

CREATE TABLE loyalty.referral_codes (
    member_id   bigint NOT NULL,
    code        text NOT NULL,
    program_id  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, code)
);
-- codes are looked up by their text; unique per program
CREATE UNIQUE INDEX referral_codes_code_idx ON loyalty.referral_codes (program_id, code);
COMMENT ON TABLE loyalty.referral_codes IS 'Referral codes of members (unique per program)';

CREATE TABLE loyalty.referrals (
    member_id    bigint NOT NULL PRIMARY KEY,
    referrer     bigint NOT NULL,
    code         text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'rewarded')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewarded_at  timestamptz,
    entry_id     bigint
);
CREATE INDEX referrals_referrer_idx ON loyalty.referrals (referrer);
COMMENT ON TABLE loyalty.referrals IS 'Who referred whom (one referrer per member), and whether the bonuses were paid';

#include "udfs/set_referral_rules/1.0.sql"
COMMENT ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer) IS
    'Set a program''s referral bonuses, qualifying purchase amount and cap per referrer';

#include "udfs/referral_code/1.0.sql"
COMMENT ON FUNCTION loyalty.referral_code(bigint) IS 'The member''s referral code (8 unambiguous characters), created on first call';

-- Internal: why new_member may not be referred by referrer, or NULL.  Each
-- reason, once true, stays true (referrals are never deleted, purchases never
-- uncounted), so refer checks them before it locks anything as well as after.
#include "udfs/referral_refusal/1.0.sql"
COMMENT ON FUNCTION loyalty.referral_refusal(bigint, bigint) IS
    'Internal: the reason a referral of new_member by referrer is refused for good (already referred, already bought, a loop), or NULL';

#include "udfs/refer/1.0.sql"
COMMENT ON FUNCTION loyalty.refer(bigint, text) IS
    'Link a new member (before any purchase) to the owner of a referral code; refuses self-referral, a second referrer, loops and capped referrers (LY020); returns the referrer';

-- Internal: called by the C earn path with the member's account locked.
#include "udfs/referral_purchase/1.0.sql"
COMMENT ON FUNCTION loyalty.referral_purchase(bigint, bigint, numeric) IS
    'Internal: on a referred member''s purchase, pay both referral bonuses once the purchase qualifies';

SELECT pg_catalog.pg_extension_config_dump('loyalty.referral_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.referral_codes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.referrals', '');

REVOKE ALL ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer),
    loyalty.referral_code(bigint), loyalty.refer(bigint, text),
    loyalty.referral_refusal(bigint, bigint),
    loyalty.referral_purchase(bigint, bigint, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.referral_code(bigint), loyalty.refer(bigint, text) TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer) TO loyalty_admin;
-- ---------------------------------------------------------------------------
-- Analytics: the RFM aggregate, RFM scores and segments, buy-till-you-die
-- models (BG/NBD, Gamma-Gamma) with predictions, and the BI views.
-- ---------------------------------------------------------------------------

-- RFM aggregate (src/rfm.c) -----------------------------------------------------

CREATE TYPE loyalty.rfm_summary AS (
    first_purchase  timestamptz,
    last_purchase   timestamptz,
    recency_days    integer,
    frequency       bigint,
    monetary        numeric,
    average         numeric
);
COMMENT ON TYPE loyalty.rfm_summary IS 'Result of loyalty.rfm(): first and last purchase, whole days since the last one, number of purchases, total and average amount';

CREATE FUNCTION loyalty.rfm_trans(internal, timestamptz, numeric) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_trans(internal, timestamptz, numeric, timestamptz) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_trans_asof' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'rfm_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- STABLE: without as_of, recency is counted to the transaction's start
CREATE FUNCTION loyalty.rfm_final(internal) RETURNS loyalty.rfm_summary
    AS 'MODULE_PATHNAME', 'rfm_final' LANGUAGE C STABLE PARALLEL SAFE;

CREATE AGGREGATE loyalty.rfm(timestamptz, numeric) (
    SFUNC = loyalty.rfm_trans, STYPE = internal, FINALFUNC = loyalty.rfm_final,
    COMBINEFUNC = loyalty.rfm_combine, SERIALFUNC = loyalty.rfm_serialize,
    DESERIALFUNC = loyalty.rfm_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.rfm(timestamptz, numeric, timestamptz) (
    SFUNC = loyalty.rfm_trans, STYPE = internal, FINALFUNC = loyalty.rfm_final,
    COMBINEFUNC = loyalty.rfm_combine, SERIALFUNC = loyalty.rfm_serialize,
    DESERIALFUNC = loyalty.rfm_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.rfm(timestamptz, numeric) IS
    'RFM of purchases (time, amount): first/last purchase, recency in days to now, frequency, monetary, average; parallel-safe, usable on any table';
COMMENT ON AGGREGATE loyalty.rfm(timestamptz, numeric, timestamptz) IS
    'RFM of purchases (time, amount) with recency counted to as_of (the third argument)';

-- RFM scores and segments --------------------------------------------------------

-- The usual 11 segments from the recency score (R) and the mean of the
-- frequency and monetary scores (FM = round((F + M) / 2)), first match by
-- priority.  The standard mapping ships in rfm_segments_standard; to change
-- it, fill loyalty.rfm_segments (dumped with the data; while it has rows it
-- replaces the standard mapping), e.g.
--   INSERT INTO loyalty.rfm_segments SELECT * FROM loyalty.rfm_segments_standard;
--   UPDATE loyalty.rfm_segments SET r_min = 3 WHERE segment = 'Champions';
CREATE TABLE loyalty.rfm_segments_standard (
    segment     text PRIMARY KEY,
    priority    integer NOT NULL UNIQUE,
    r_min       integer NOT NULL CHECK (r_min BETWEEN 1 AND 5),
    r_max       integer NOT NULL CHECK (r_max BETWEEN 1 AND 5),
    fm_min      integer NOT NULL CHECK (fm_min BETWEEN 1 AND 5),
    fm_max      integer NOT NULL CHECK (fm_max BETWEEN 1 AND 5),
    description text NOT NULL,
    CHECK (r_min <= r_max AND fm_min <= fm_max)
);
INSERT INTO loyalty.rfm_segments_standard VALUES
    ('Champions',          1, 4, 5, 4, 5, 'Bought recently, buy often and spend the most'),
    ('Loyal',              2, 3, 5, 3, 5, 'Buy regularly and spend well'),
    ('Cannot Lose Them',   3, 1, 1, 4, 5, 'Used to buy often and spend big, long ago'),
    ('At Risk',            4, 1, 2, 3, 5, 'Spent big and often, but not for a long time'),
    ('Potential Loyalist', 5, 4, 5, 2, 3, 'Recent customers with average frequency and spend'),
    ('New',                6, 5, 5, 1, 1, 'Bought most recently, but not often'),
    ('Promising',          7, 4, 4, 1, 1, 'Recent shoppers who have not spent much'),
    ('Need Attention',     8, 3, 3, 2, 3, 'Above average recency, frequency and spend, slipping'),
    ('About to Sleep',     9, 2, 3, 1, 2, 'Below average recency, frequency and spend'),
    ('Hibernating',       10, 2, 2, 1, 2, 'Last purchase long ago, few and small orders'),
    ('Lost',              11, 1, 1, 1, 3, 'Lowest recency; gone');
COMMENT ON TABLE loyalty.rfm_segments_standard IS 'The standard mapping of RFM scores to the 11 named segments (R range x FM range, first match by priority)';
CREATE TABLE loyalty.rfm_segments (LIKE loyalty.rfm_segments_standard INCLUDING ALL);
COMMENT ON TABLE loyalty.rfm_segments IS 'Your mapping of RFM scores to segments; while it has rows it replaces rfm_segments_standard';
#include "udfs/rfm_segment_map/1.0.sql"
COMMENT ON VIEW loyalty.rfm_segment_map IS 'The RFM segment mapping in force: loyalty.rfm_segments if it has rows, else the standard one';

#include "udfs/member_rfm/1.0.sql"

#include "udfs/segment_summary/1.0.sql"

-- Buy-till-you-die models (src/btyd.c) ---------------------------------------------

CREATE TYPE loyalty.bgnbd_params AS (r float8, alpha float8, a float8, b float8, loglik float8, customers float8);
CREATE TYPE loyalty.gamma_gamma_params AS (p float8, q float8, gamma float8, loglik float8, customers float8);
COMMENT ON TYPE loyalty.bgnbd_params IS 'A fitted BG/NBD model: r, alpha (purchase rate), a, b (dropout), log-likelihood, customers';
COMMENT ON TYPE loyalty.gamma_gamma_params IS 'A fitted Gamma-Gamma spend model: p, q, gamma, log-likelihood, repeat customers';

CREATE FUNCTION loyalty.bgnbd_trans(internal, float8, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_bgnbd_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_trans(internal, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_gg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'btyd_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_final(internal) RETURNS loyalty.bgnbd_params
    AS 'MODULE_PATHNAME', 'btyd_bgnbd_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_final(internal) RETURNS loyalty.gamma_gamma_params
    AS 'MODULE_PATHNAME', 'btyd_gg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE loyalty.bgnbd_fit(x float8, t_x float8, "T" float8) (
    SFUNC = loyalty.bgnbd_trans, STYPE = internal, FINALFUNC = loyalty.bgnbd_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.gamma_gamma_fit(x float8, m_x float8) (
    SFUNC = loyalty.gamma_gamma_trans, STYPE = internal, FINALFUNC = loyalty.gamma_gamma_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.bgnbd_fit(float8, float8, float8) IS
    'Maximum-likelihood BG/NBD fit over customers (x repeat purchases, t_x time of the last, T age, in one time unit); LY030 when the data do not identify the model';
COMMENT ON AGGREGATE loyalty.gamma_gamma_fit(float8, float8) IS
    'Maximum-likelihood Gamma-Gamma fit over repeat customers (x repeat purchases, m_x their mean value); LY030 when not identified';

CREATE FUNCTION loyalty.bgnbd_loglik(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_loglik' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_expected(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8, t float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_expected' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_p_alive(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_p_alive' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_expected(p float8, q float8, gamma float8, x float8, m_x float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_gg_expected' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.bgnbd_loglik(float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD log-likelihood of one customer';
COMMENT ON FUNCTION loyalty.bgnbd_expected(float8, float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD: expected purchases of a customer in the next t time units';
COMMENT ON FUNCTION loyalty.bgnbd_p_alive(float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD: probability that the customer is still active';
COMMENT ON FUNCTION loyalty.gamma_gamma_expected(float8, float8, float8, float8, float8) IS 'Gamma-Gamma: expected average transaction value of a customer';

-- Customer summaries for the models, from the ledger: one purchase per day
-- (in the program's time zone), calibration up to and including `calibration_end`.
#include "udfs/purchase_summary/1.0.sql"
COMMENT ON FUNCTION loyalty.purchase_summary(bigint, date, text) IS
    'Per member of a program, as of calibration_end: x (repeat purchases, one per day), t_x (last - first purchase), T (calibration_end - first purchase) in days or weeks, m_x (mean repeat-day spend)';

CREATE TABLE loyalty.models (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    fitted_at       timestamptz NOT NULL DEFAULT now(),
    calibration_end date NOT NULL,
    time_unit       text NOT NULL CHECK (time_unit IN ('day', 'week')),
    bgnbd           loyalty.bgnbd_params NOT NULL,
    gamma_gamma     loyalty.gamma_gamma_params,
    PRIMARY KEY (program_id, fitted_at)
);
COMMENT ON TABLE loyalty.models IS 'Fitted BG/NBD and Gamma-Gamma models per program, with fit time, calibration end and log-likelihoods';

#include "udfs/fit_models/1.0.sql"
COMMENT ON FUNCTION loyalty.fit_models(bigint, date, text) IS
    'Fit BG/NBD and Gamma-Gamma on a program''s purchases up to calibration_end and store them; LY030 if the data do not identify a model';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/refresh_models/1.0.sql"
COMMENT ON PROCEDURE loyalty.refresh_models(text, date) IS
    'Batch job (e.g. nightly with pg_cron): refit the models of every program on its purchases up to calibration_end (default today), one commit per program; programs whose data cannot identify a model are reported and skipped';

-- CLV over `horizon` time units with a discount rate per unit: expected spend
-- per purchase times the discounted expected purchases of each unit.
#include "udfs/clv/1.0.sql"
COMMENT ON FUNCTION loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) IS
    'Customer lifetime value over horizon time units, discounted per unit (default 52 weeks at 10% a year)';

#include "udfs/member_predictions/1.0.sql"

#include "udfs/churn_risk/1.0.sql"

-- KPI and distribution views --------------------------------------------------------

#include "udfs/kpi_daily/1.0.sql"

#include "udfs/kpi_monthly/1.0.sql"

#include "udfs/kpi_summary/1.0.sql"

#include "udfs/tier_distribution/1.0.sql"

#include "udfs/channel_distribution/1.0.sql"

#include "udfs/member_mix/1.0.sql"

#include "udfs/cohort_retention/1.0.sql"

#include "udfs/reward_popularity/1.0.sql"

-- Comments on every view column (BI tools show them) --------------------------------
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('member_rfm', NULL, 'RFM per member from the account''s purchase statistics: scores 1-5 by quintile within the program (equal values, equal scores), and the named segment'),
        ('member_rfm', 'program_id', 'Program'), ('member_rfm', 'member_id', 'Member'),
        ('member_rfm', 'first_purchase', 'Date of the first purchase'), ('member_rfm', 'last_purchase', 'Date of the last purchase'),
        ('member_rfm', 'recency_days', 'Days since the last purchase'), ('member_rfm', 'frequency', 'Number of purchases'),
        ('member_rfm', 'purchase_days', 'Distinct days with a purchase'), ('member_rfm', 'monetary', 'Total purchase amount, net of refunds'),
        ('member_rfm', 'r_score', 'Recency quintile, 5 = most recent'), ('member_rfm', 'f_score', 'Frequency quintile, 5 = most purchases'),
        ('member_rfm', 'm_score', 'Monetary quintile, 5 = highest spend'), ('member_rfm', 'rfm_cell', 'R, F and M scores as a three-digit code'),
        ('member_rfm', 'segment', 'Named segment from loyalty.rfm_segment_map'),
        ('segment_summary', NULL, 'Members, share and averages per RFM segment'),
        ('segment_summary', 'program_id', 'Program'), ('segment_summary', 'segment', 'RFM segment'),
        ('segment_summary', 'members', 'Members in the segment'), ('segment_summary', 'share', 'Share of the program''s buyers'),
        ('segment_summary', 'avg_recency_days', 'Average days since the last purchase'), ('segment_summary', 'avg_frequency', 'Average number of purchases'),
        ('segment_summary', 'avg_monetary', 'Average total spend'), ('segment_summary', 'total_monetary', 'Total spend of the segment'),
        ('member_predictions', NULL, 'Per member, from the latest fitted models: P(alive), expected purchases and spend, CLV over a year'),
        ('member_predictions', 'program_id', 'Program'), ('member_predictions', 'member_id', 'Member'),
        ('member_predictions', 'fitted_at', 'When the models used were fitted'), ('member_predictions', 'time_unit', 'Time unit of the model (day or week)'),
        ('member_predictions', 'repeat_purchases', 'Repeat purchase days in the calibration period (x)'),
        ('member_predictions', 't_x', 'Time from the first to the last purchase (t_x)'), ('member_predictions', 'customer_age', 'Time from the first purchase to the calibration end (T)'),
        ('member_predictions', 'p_alive', 'Probability the member is still active (BG/NBD)'),
        ('member_predictions', 'expected_purchases_year', 'Expected purchases in the next year (BG/NBD)'),
        ('member_predictions', 'expected_avg_spend', 'Expected spend per purchase (Gamma-Gamma)'),
        ('member_predictions', 'clv_year', 'Expected discounted spend over the next year'),
        ('churn_risk', NULL, 'Churn risk per member: 1 - P(alive), in bands, with value at stake'),
        ('churn_risk', 'program_id', 'Program'), ('churn_risk', 'member_id', 'Member'), ('churn_risk', 'p_alive', 'Probability the member is still active'),
        ('churn_risk', 'churn_risk', '1 - P(alive)'), ('churn_risk', 'risk_band', 'high (P(alive) < 0.3), medium (< 0.6) or low'),
        ('churn_risk', 'expected_purchases_year', 'Expected purchases in the next year'), ('churn_risk', 'clv_year', 'Expected discounted spend over the next year'),
        ('churn_risk', 'last_purchase', 'Date of the last purchase'), ('churn_risk', 'purchases', 'Number of purchases'),
        ('kpi_daily', NULL, 'Daily KPIs per program (days in the program time zone)'),
        ('kpi_daily', 'program_id', 'Program'), ('kpi_daily', 'day', 'Day'), ('kpi_daily', 'new_members', 'Members who joined'),
        ('kpi_daily', 'active_members', 'Members who bought'), ('kpi_daily', 'purchases', 'Purchases'), ('kpi_daily', 'revenue', 'Purchase amounts'),
        ('kpi_daily', 'avg_order_value', 'Revenue per purchase'), ('kpi_daily', 'points_issued', 'Points credited (earn, award, positive adjust)'),
        ('kpi_daily', 'points_redeemed', 'Points spent (redeem, hold, less released)'), ('kpi_daily', 'points_expired', 'Points written off by expiry'),
        ('kpi_monthly', NULL, 'Monthly KPIs per program, with repeat-purchase rate, redemption rate and breakage'),
        ('kpi_monthly', 'program_id', 'Program'), ('kpi_monthly', 'month', 'First day of the month'), ('kpi_monthly', 'new_members', 'Members who joined'),
        ('kpi_monthly', 'active_members', 'Members who bought'), ('kpi_monthly', 'purchases', 'Purchases'), ('kpi_monthly', 'revenue', 'Purchase amounts'),
        ('kpi_monthly', 'avg_order_value', 'Revenue per purchase'), ('kpi_monthly', 'repeat_purchase_rate', 'Share of the month''s buyers who had bought in an earlier month'),
        ('kpi_monthly', 'points_issued', 'Points credited'), ('kpi_monthly', 'points_redeemed', 'Points spent'), ('kpi_monthly', 'points_expired', 'Points expired'),
        ('kpi_monthly', 'redemption_rate', 'Points redeemed / points issued in the month'), ('kpi_monthly', 'breakage', 'Points expired / points issued in the month'),
        ('kpi_summary', NULL, 'Current KPIs per program: members, activity, points outstanding and the liability in money'),
        ('kpi_summary', 'program_id', 'Program'), ('kpi_summary', 'program', 'Program name'), ('kpi_summary', 'currency', 'Currency of amounts and liability'),
        ('kpi_summary', 'members', 'Members (not closed)'), ('kpi_summary', 'active_members_90d', 'Members who bought in the last 90 days'),
        ('kpi_summary', 'repeat_purchase_rate', 'Share of buyers with more than one purchase'), ('kpi_summary', 'avg_order_value', 'Purchase amount per purchase'),
        ('kpi_summary', 'points_outstanding', 'Posted balances (spendable and pending)'), ('kpi_summary', 'points_held', 'Points held by active holds'), ('kpi_summary', 'points_pending', 'Points earned but still vesting (part of points_outstanding)'),
        ('kpi_summary', 'points_issued', 'Points ever credited'), ('kpi_summary', 'points_redeemed', 'Points ever redeemed'),
        ('kpi_summary', 'points_expired', 'Points ever expired'), ('kpi_summary', 'redemption_rate', 'Redeemed / issued'),
        ('kpi_summary', 'breakage', 'Expired / issued'), ('kpi_summary', 'liability', 'Outstanding and held points at the program''s point value'),
        ('tier_distribution', NULL, 'Members per tier'), ('tier_distribution', 'program_id', 'Program'), ('tier_distribution', 'tier', 'Tier name (none: no tier)'),
        ('tier_distribution', 'tier_rank', 'Tier rank'), ('tier_distribution', 'members', 'Members'), ('tier_distribution', 'share', 'Share of the program''s members'),
        ('channel_distribution', NULL, 'Purchases per channel'), ('channel_distribution', 'program_id', 'Program'), ('channel_distribution', 'channel', 'Channel of the purchase'),
        ('channel_distribution', 'purchases', 'Purchases'), ('channel_distribution', 'members', 'Distinct buyers'), ('channel_distribution', 'revenue', 'Purchase amounts'),
        ('channel_distribution', 'points_issued', 'Points earned'),
        ('member_mix', NULL, 'Members by source channel and region'), ('member_mix', 'program_id', 'Program'), ('member_mix', 'source_channel', 'Channel the member joined through'),
        ('member_mix', 'region', 'Region'), ('member_mix', 'members', 'Members'), ('member_mix', 'buyers', 'Members with a purchase'),
        ('cohort_retention', NULL, 'Monthly cohorts by first purchase: members buying again n months later'),
        ('cohort_retention', 'program_id', 'Program'), ('cohort_retention', 'cohort_month', 'Month of the first purchase'),
        ('cohort_retention', 'months_since_first', 'Months after the first purchase'), ('cohort_retention', 'active_members', 'Cohort members buying in that month'),
        ('cohort_retention', 'cohort_size', 'Members in the cohort'), ('cohort_retention', 'retention', 'active_members / cohort_size'),
        ('reward_popularity', NULL, 'Redemptions per reward'), ('reward_popularity', 'program_id', 'Program'), ('reward_popularity', 'reward_id', 'Reward'),
        ('reward_popularity', 'code', 'Reward code'), ('reward_popularity', 'name', 'Reward name'), ('reward_popularity', 'redemptions', 'Redemptions (with cancelled)'),
        ('reward_popularity', 'cancelled', 'Cancelled redemptions'), ('reward_popularity', 'points_spent', 'Points spent on issued redemptions'),
        ('reward_popularity', 'members', 'Distinct members'), ('reward_popularity', 'stock', 'Units left (NULL: unlimited)')
    ) v(view, col, txt) LOOP
        IF c.col IS NULL THEN
            EXECUTE format('COMMENT ON VIEW loyalty.%I IS %L', c.view, c.txt);
        ELSE
            EXECUTE format('COMMENT ON COLUMN loyalty.%I.%I IS %L', c.view, c.col, c.txt);
        END IF;
    END LOOP;
END $$;

SELECT pg_catalog.pg_extension_config_dump('loyalty.rfm_segments', '');   -- empty until you change the mapping
SELECT pg_catalog.pg_extension_config_dump('loyalty.models', '');

REVOKE ALL ON FUNCTION loyalty.purchase_summary(bigint, date, text), loyalty.fit_models(bigint, date, text),
    loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.refresh_models(text, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.purchase_summary(bigint, date, text), loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8)
    TO loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.purchase_summary(bigint, date, text), loyalty.fit_models(bigint, date, text),
    loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.refresh_models(text, date) TO loyalty_admin;
-- the analyst reads views, nothing else (the views run with their owner's rights)
GRANT SELECT ON loyalty.rfm_segment_map, loyalty.member_rfm, loyalty.segment_summary, loyalty.member_predictions, loyalty.churn_risk,
    loyalty.kpi_daily, loyalty.kpi_monthly, loyalty.kpi_summary, loyalty.tier_distribution,
    loyalty.channel_distribution, loyalty.member_mix, loyalty.cohort_retention, loyalty.reward_popularity
TO loyalty_analyst, loyalty_admin;
-- ---------------------------------------------------------------------------
-- Roles and privileges.  Three NOLOGIN roles; grant them to login roles.
--   loyalty_admin    configuration, adjustments, merges, batch jobs, verify
--   loyalty_app      the write/read API that channels call, nothing else
--   loyalty_analyst  read-only views (the BI views arrive with analytics)
-- Tables are reachable only through the API (SECURITY DEFINER functions).
-- The roles are created in 00_schema.sql; fragments after 40_api.sql revoke
-- and grant their own functions at their end, in the same way.
-- ---------------------------------------------------------------------------

GRANT USAGE ON SCHEMA loyalty TO loyalty_admin, loyalty_app, loyalty_analyst;
REVOKE ALL ON ALL TABLES IN SCHEMA loyalty FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA loyalty FROM PUBLIC;

-- API functions: nobody by default...
REVOKE ALL ON FUNCTION
    loyalty.create_program(text, text, numeric, numeric, text, interval, interval, text, interval),
    loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text),
    loyalty.member_id(bigint, text, text),
    loyalty.link_identity(bigint, text, text),
    loyalty.set_member_status(bigint, text),
    loyalty.earn(bigint, numeric, text, text, text, timestamptz, jsonb, text),
    loyalty.award(bigint, loyalty.points, text, text, text, text, timestamptz, timestamptz),
    loyalty.redeem(bigint, loyalty.points, text, text, text, timestamptz),
    loyalty.hold(bigint, loyalty.points, interval, text, text, text),
    loyalty.capture(bigint, loyalty.points, text),
    loyalty.release(bigint, text),
    loyalty.reverse(bigint, bigint, loyalty.points, numeric, text, text, text),
    loyalty.adjust(bigint, loyalty.points, text, text, text),
    loyalty.release_expired(bigint),
    loyalty.merge_members(bigint, bigint, text),
    loyalty.expire_member(bigint, timestamptz),
    loyalty.expire_batch(timestamptz, integer),
    loyalty.release_expired_batch(integer),
    loyalty.balance(bigint),
    loyalty.balance_at(bigint, timestamptz),
    loyalty.history(bigint, timestamptz, integer),
    loyalty.verify(),
    loyalty.ledger_refuse_change()
FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.expire_points(timestamptz, integer),
    loyalty.release_expired_holds(integer) FROM PUBLIC;

-- ...the channels' API to the application role...
GRANT EXECUTE ON FUNCTION
    loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text),
    loyalty.member_id(bigint, text, text),
    loyalty.link_identity(bigint, text, text),
    loyalty.earn(bigint, numeric, text, text, text, timestamptz, jsonb, text),
    loyalty.award(bigint, loyalty.points, text, text, text, text, timestamptz, timestamptz),
    loyalty.redeem(bigint, loyalty.points, text, text, text, timestamptz),
    loyalty.hold(bigint, loyalty.points, interval, text, text, text),
    loyalty.capture(bigint, loyalty.points, text),
    loyalty.release(bigint, text),
    loyalty.reverse(bigint, bigint, loyalty.points, numeric, text, text, text),
    loyalty.balance(bigint),
    loyalty.balance_at(bigint, timestamptz),
    loyalty.history(bigint, timestamptz, integer)
TO loyalty_app, loyalty_admin;

-- ...and configuration, corrections and batch jobs to the administrator.
GRANT EXECUTE ON FUNCTION
    loyalty.create_program(text, text, numeric, numeric, text, interval, interval, text, interval),
    loyalty.set_member_status(bigint, text),
    loyalty.adjust(bigint, loyalty.points, text, text, text),
    loyalty.release_expired(bigint),
    loyalty.merge_members(bigint, bigint, text),
    loyalty.expire_member(bigint, timestamptz),
    loyalty.expire_batch(timestamptz, integer),
    loyalty.release_expired_batch(integer),
    loyalty.verify()
TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.expire_points(timestamptz, integer),
    loyalty.release_expired_holds(integer) TO loyalty_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA loyalty TO loyalty_admin;
GRANT UPDATE (name, point_value, earn_rate, rounding, expiry_period, pending_period, refund_policy,
              max_hold_ttl, closed_through) ON loyalty.programs TO loyalty_admin;
