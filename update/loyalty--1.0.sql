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
CREATE FUNCTION loyalty.ledger_refuse_change() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'the loyalty ledger is append-only'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('%s on loyalty.ledger is refused.', TG_OP),
              HINT = 'Correct an entry with a new one: loyalty.reverse() or loyalty.adjust().';
END $$;
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
CREATE FUNCTION loyalty.emit_event(member bigint, kind text, payload jsonb DEFAULT '{}', dedup_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_program bigint;
    v_id bigint;
BEGIN
    SELECT m.program_id INTO v_program FROM loyalty.members m
    JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) m.program_id
    WHERE m.member_id OPERATOR(pg_catalog.=) emit_event.member
      AND emit_event.kind OPERATOR(pg_catalog.=) ANY (p.event_kinds);
    IF NOT FOUND THEN
        RETURN NULL;            -- unknown member, or the program does not emit this kind
    END IF;
    INSERT INTO loyalty.events (member_id, program_id, kind, payload, dedup_key)
    VALUES (emit_event.member, v_program, emit_event.kind, coalesce(emit_event.payload, '{}'), emit_event.dedup_key)
    ON CONFLICT (member_id, kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING event_id INTO v_id;
    IF v_id IS NOT NULL THEN
        PERFORM pg_catalog.pg_notify('loyalty_events',
            pg_catalog.jsonb_build_object('event_id', v_id, 'member_id', emit_event.member, 'kind', emit_event.kind)::text);
    END IF;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.emit_event(bigint, text, jsonb, text) IS
    'Internal: write one outbox event for a member (if the program emits that kind) and NOTIFY loyalty_events; returns the event id, or NULL when not emitted or a duplicate';

CREATE FUNCTION loyalty.claim_events(max_events integer DEFAULT 100, consumer text DEFAULT NULL,
                                     visibility interval DEFAULT interval '5 minutes')
RETURNS SETOF loyalty.events
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- pending events, oldest first; a claim not acknowledged within
    -- `visibility` is handed out again (at-least-once delivery)
    WITH c AS (
        SELECT e.member_id, e.event_id FROM loyalty.events e
        WHERE e.acked_at IS NULL
          AND (e.claimed_at IS NULL OR e.claimed_at < now() - coalesce($3, interval '5 minutes'))
        ORDER BY e.created_at, e.event_id
        LIMIT greatest(coalesce($1, 100), 0)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE loyalty.events e SET claimed_at = now(), claimed_by = coalesce($2, session_user::text)
    FROM c WHERE e.member_id = c.member_id AND e.event_id = c.event_id
    RETURNING e.*
$$;
COMMENT ON FUNCTION loyalty.claim_events(integer, text, interval) IS
    'Claim up to max_events pending events, oldest first, skipping those other consumers hold; unacknowledged claims come back after the visibility interval';

CREATE FUNCTION loyalty.ack_events(event_ids bigint[])
RETURNS bigint
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH a AS (
        UPDATE loyalty.events e SET acked_at = now()
        WHERE e.event_id = ANY ($1) AND e.acked_at IS NULL
        RETURNING 1
    )
    SELECT count(*) FROM a
$$;
COMMENT ON FUNCTION loyalty.ack_events(bigint[]) IS
    'Acknowledge processed events (by id); returns how many were newly acknowledged; acknowledging twice is harmless';

CREATE FUNCTION loyalty.notify_expiring(within interval DEFAULT interval '30 days', batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint := 0;
    r record;
BEGIN
    IF within IS NULL OR within <= interval '0' THEN
        RAISE EXCEPTION 'within must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one notice per member and expiry day, however often this runs
    FOR r IN
        SELECT l.member_id, (l.expires_at AT TIME ZONE 'UTC')::date AS day,
               sum(l.remaining::bigint) AS points, min(l.expires_at) AS expires_at
        FROM loyalty.lots l
        WHERE l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
          AND l.expires_at IS NOT NULL AND l.expires_at > now() AND l.expires_at <= now() + within
          AND l.vests_at <= now()
        GROUP BY 1, 2
        ORDER BY 1, 2
        LIMIT coalesce(batch_size, 10000)
    LOOP
        IF loyalty.emit_event(r.member_id, 'points.expiring',
                              jsonb_build_object('points', r.points, 'expires_at', r.expires_at),
                              'expiring:' || r.day) IS NOT NULL THEN
            v_n := v_n + 1;
        END IF;
    END LOOP;
    RETURN v_n;
END $$;
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

CREATE FUNCTION loyalty.create_program(
    name            text,
    currency        text DEFAULT 'USD',
    point_value     numeric DEFAULT 0.01,
    earn_rate       numeric DEFAULT 1,
    rounding        text DEFAULT 'floor',
    expiry_period   interval DEFAULT NULL,
    pending_period  interval DEFAULT interval '0',
    refund_policy   text DEFAULT 'forgive',
    max_hold_ttl    interval DEFAULT interval '1 day')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF name IS NULL OR btrim(name) = '' THEN
        RAISE EXCEPTION 'a program needs a name' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF currency IS NULL OR currency !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION 'currency must be an ISO 4217 code such as USD, got %', coalesce(currency, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF point_value IS NULL OR point_value < 0 OR point_value = 'Infinity' OR point_value = 'NaN' THEN
        RAISE EXCEPTION 'point_value must be a finite, non-negative money value, got %', coalesce(point_value::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'One point worth one cent is 0.01.';
    END IF;
    IF earn_rate IS NULL OR earn_rate < 0 OR earn_rate = 'Infinity' OR earn_rate = 'NaN' THEN
        RAISE EXCEPTION 'earn_rate must be a finite, non-negative number of points per currency unit, got %',
            coalesce(earn_rate::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rounding IS NULL OR NOT rounding = ANY (ARRAY['floor', 'round', 'ceil', 'trunc']) THEN
        RAISE EXCEPTION 'unknown rounding rule "%"', coalesce(rounding, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use one of floor, round, ceil or trunc.';
    END IF;
    IF expiry_period IS NOT NULL AND expiry_period <= interval '0' THEN
        RAISE EXCEPTION 'expiry_period must be positive or NULL (never expire)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pending_period IS NULL OR pending_period < interval '0' THEN
        RAISE EXCEPTION 'pending_period must be zero or positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF refund_policy IS NULL OR NOT refund_policy = ANY (ARRAY['forgive', 'debt']) THEN
        RAISE EXCEPTION 'unknown refund policy "%"', coalesce(refund_policy, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use forgive or debt.';
    END IF;
    IF max_hold_ttl IS NULL OR max_hold_ttl <= interval '0' THEN
        RAISE EXCEPTION 'max_hold_ttl must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO loyalty.programs (name, currency, point_value, earn_rate, rounding, expiry_period,
                                  pending_period, refund_policy, max_hold_ttl)
    VALUES (create_program.name, create_program.currency, create_program.point_value,
            create_program.earn_rate, create_program.rounding, create_program.expiry_period,
            create_program.pending_period, create_program.refund_policy, create_program.max_hold_ttl)
    RETURNING program_id INTO v_id;
    RETURN v_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'a program named "%" already exists', create_program.name
        USING ERRCODE = 'unique_violation';
END $$;
COMMENT ON FUNCTION loyalty.create_program(text, text, numeric, numeric, text, interval, interval, text, interval) IS
    'Create a loyalty program (currency, value of a point, base earn rate, rounding, expiry, pending period, refund policy); returns its id';

-- members and identities ----------------------------------------------------

CREATE FUNCTION loyalty.enroll(
    program         bigint,
    channel         text,
    external_id     text,
    joined_at       timestamptz DEFAULT NULL,
    source_channel  text DEFAULT NULL,
    region          text DEFAULT NULL,
    birthday        date DEFAULT NULL,
    referral_code   text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF program IS NULL OR channel IS NULL OR external_id IS NULL THEN
        RAISE EXCEPTION 'program, channel and external_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(channel) = '' OR btrim(external_id) = '' THEN
        RAISE EXCEPTION 'channel and external_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF joined_at IS NOT NULL AND (NOT isfinite(joined_at) OR joined_at > now() + interval '5 minutes') THEN
        RAISE EXCEPTION 'joined_at must be a finite time, not in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) enroll.program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found',
            HINT = 'Create it with loyalty.create_program().';
    END IF;

    SELECT i.member_id INTO v_id FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) enroll.program
      AND i.channel OPERATOR(pg_catalog.=) enroll.channel
      AND i.external_id OPERATOR(pg_catalog.=) enroll.external_id;
    IF FOUND THEN
        RETURN v_id;
    END IF;

    -- Claim the identity first: a concurrent enrolment of the same identity
    -- waits on the unique key and then finds our member, so one identity
    -- never yields two members (the FK to members is checked at commit).
    v_id := nextval('loyalty.members_member_id_seq');
    INSERT INTO loyalty.identities (program_id, channel, external_id, member_id)
    VALUES (program, channel, external_id, v_id)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT i.member_id INTO STRICT v_id FROM loyalty.identities i
        WHERE i.program_id OPERATOR(pg_catalog.=) enroll.program
          AND i.channel OPERATOR(pg_catalog.=) enroll.channel
          AND i.external_id OPERATOR(pg_catalog.=) enroll.external_id;
        RETURN v_id;
    END IF;
    INSERT INTO loyalty.members (member_id, program_id, joined_at, source_channel, region, birthday)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, program, coalesce(joined_at, now()), coalesce(source_channel, channel), region, birthday);
    INSERT INTO loyalty.accounts (member_id, program_id) VALUES (v_id, program);
    PERFORM loyalty.emit_event(v_id, 'member.enrolled',
        pg_catalog.jsonb_build_object('channel', channel, 'external_id', external_id,
                                      'source_channel', coalesce(source_channel, channel)));
    IF referral_code IS NOT NULL THEN
        PERFORM loyalty.refer(v_id, referral_code);   -- a refused code fails the enrolment (LY020)
    END IF;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text) IS
    'Enrol a member under a channel identity (optionally with a referral code); enrolling an existing identity returns the same member (also when two channels race)';

CREATE FUNCTION loyalty.member_id(program bigint, channel text, external_id text)
RETURNS bigint
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.member_id FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) $1
      AND i.channel OPERATOR(pg_catalog.=) $2
      AND i.external_id OPERATOR(pg_catalog.=) $3
$$;
COMMENT ON FUNCTION loyalty.member_id(bigint, text, text) IS
    'The member known under a channel identity, or NULL';

CREATE FUNCTION loyalty.link_identity(member bigint, channel text, external_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_owner bigint;
BEGIN
    IF member IS NULL OR channel IS NULL OR external_id IS NULL THEN
        RAISE EXCEPTION 'member, channel and external_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(channel) = '' OR btrim(external_id) = '' THEN
        RAISE EXCEPTION 'channel and external_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.program_id INTO v_program FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) link_identity.member AND m.status OPERATOR(pg_catalog.<>) 'closed';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist or is closed', member USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.identities (program_id, channel, external_id, member_id)
    VALUES (v_program, channel, external_id, member)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    SELECT i.member_id INTO STRICT v_owner FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) v_program
      AND i.channel OPERATOR(pg_catalog.=) link_identity.channel
      AND i.external_id OPERATOR(pg_catalog.=) link_identity.external_id;
    IF v_owner OPERATOR(pg_catalog.=) member THEN
        RETURN false;
    END IF;
    RAISE EXCEPTION 'identity %:% already belongs to member %', channel, external_id, v_owner
        USING ERRCODE = 'unique_violation',
              HINT = 'If both members are the same person, merge them with loyalty.merge_members().';
END $$;
COMMENT ON FUNCTION loyalty.link_identity(bigint, text, text) IS
    'Attach another channel identity to a member; true if added, false if it was already this member''s';

CREATE FUNCTION loyalty.set_member_status(member bigint, status text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF status IS NULL OR NOT status = ANY (ARRAY['active', 'suspended', 'closed']) THEN
        RAISE EXCEPTION 'unknown member status "%"', coalesce(status, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use active, suspended or closed.';
    END IF;
    -- the account row is the member's lock: status changes serialise with writes
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) set_member_status.member FOR UPDATE;
    UPDATE loyalty.members m SET status = set_member_status.status
    WHERE m.member_id OPERATOR(pg_catalog.=) set_member_status.member AND m.merged_into IS NULL;
    IF FOUND THEN
        UPDATE loyalty.accounts a SET status = set_member_status.status, updated_at = now()
        WHERE a.member_id OPERATOR(pg_catalog.=) set_member_status.member;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist or was merged away', member USING ERRCODE = 'no_data_found';
    END IF;
END $$;
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

CREATE FUNCTION loyalty.merge_members(survivor bigint, absorbed bigint, idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog_s bigint;
    v_prog_a bigint;
    v_status text;
    a_acc loyalty.accounts;
    v_hold bigint;
    v_out bigint;
    v_in bigint;
    v_moved bigint;
    v_lot record;
    v_hash bigint;
    v_prev record;
BEGIN
    IF survivor IS NULL OR absorbed IS NULL THEN
        RAISE EXCEPTION 'survivor and absorbed must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF survivor OPERATOR(pg_catalog.=) absorbed THEN
        RAISE EXCEPTION 'cannot merge member % into itself', survivor USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- both account rows, always in member_id order, so merges never deadlock
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) ANY (ARRAY[survivor, absorbed])
    ORDER BY a.member_id FOR UPDATE;

    SELECT m.program_id, m.status INTO v_prog_s, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) survivor;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', survivor USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'surviving member % is closed', survivor USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    v_hash := pg_catalog.hashtextextended(pg_catalog.concat_ws('|', 'merge', survivor, absorbed), 0);
    IF idempotency_key IS NOT NULL THEN
        SELECT k.operation, k.request_hash, k.result INTO v_prev FROM loyalty.idempotency_keys k
        WHERE k.member_id OPERATOR(pg_catalog.=) survivor
          AND k.idempotency_key OPERATOR(pg_catalog.=) merge_members.idempotency_key;
        IF FOUND THEN
            IF v_prev.operation OPERATOR(pg_catalog.<>) 'merge' OR v_prev.request_hash OPERATOR(pg_catalog.<>) v_hash THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN v_prev.result::loyalty.points;
        END IF;
    END IF;

    SELECT m.program_id, m.status INTO v_prog_a, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', absorbed USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'member % is closed (already merged?)', absorbed USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_prog_s OPERATOR(pg_catalog.<>) v_prog_a THEN
        RAISE EXCEPTION 'members % and % belong to different programs', survivor, absorbed
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- open holds of the absorbed member go back to it before its lots move
    -- (those whose time is up first, as on any write: releasing them by id
    -- would be refused as expired)
    PERFORM loyalty.release_expired(absorbed);
    FOR v_hold IN SELECT h.hold_id FROM loyalty.holds h
                  WHERE h.member_id OPERATOR(pg_catalog.=) absorbed AND h.status OPERATOR(pg_catalog.=) 'active'
                  ORDER BY h.hold_id LOOP
        PERFORM loyalty.release(v_hold);
    END LOOP;

    SELECT * INTO STRICT a_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;
    v_moved := a_acc.balance::bigint;

    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, details)
    VALUES (absorbed, v_prog_a, 'merge', (OPERATOR(pg_catalog.-) v_moved)::loyalty.points,
            'merged into member ' || survivor, NULL,
            pg_catalog.jsonb_build_object('merged_into', survivor, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_out;
    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, idempotency_key, details)
    VALUES (survivor, v_prog_s, 'merge', v_moved::loyalty.points,
            'merged from member ' || absorbed, v_out, idempotency_key,
            pg_catalog.jsonb_build_object('merged_from', absorbed, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_in;

    -- every open lot moves with its vesting and expiry dates
    FOR v_lot IN SELECT l.lot_id, l.remaining, l.vests_at, l.expires_at FROM loyalty.lots l
                 WHERE l.member_id OPERATOR(pg_catalog.=) absorbed
                   AND l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
                 ORDER BY l.lot_id LOOP
        INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
        VALUES (absorbed, v_out, v_lot.lot_id, v_lot.remaining);
        UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
        WHERE l.member_id OPERATOR(pg_catalog.=) absorbed AND l.lot_id OPERATOR(pg_catalog.=) v_lot.lot_id;
        -- one merge entry brings many lots: they number from the ledger's
        -- sequence, so they never collide with a credit's lot (= its entry_id)
        INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at, expires_at)
        VALUES (survivor, pg_catalog.nextval('loyalty.ledger_entry_id_seq'::pg_catalog.regclass), v_in,
                v_lot.remaining, v_lot.remaining, v_lot.vests_at, v_lot.expires_at);
    END LOOP;

    UPDATE loyalty.accounts s SET
        balance = (s.balance::bigint OPERATOR(pg_catalog.+) a_acc.balance::bigint)::loyalty.points,
        debt = (s.debt::bigint OPERATOR(pg_catalog.+) a_acc.debt::bigint)::loyalty.points,
        lifetime_earned = (s.lifetime_earned::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_earned::bigint)::loyalty.points,
        lifetime_redeemed = (s.lifetime_redeemed::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_redeemed::bigint)::loyalty.points,
        lifetime_expired = (s.lifetime_expired::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_expired::bigint)::loyalty.points,
        first_purchase_at = LEAST(s.first_purchase_at, a_acc.first_purchase_at),
        last_purchase_at = GREATEST(s.last_purchase_at, a_acc.last_purchase_at),
        purchase_count = s.purchase_count OPERATOR(pg_catalog.+) a_acc.purchase_count,
        purchase_days = s.purchase_days OPERATOR(pg_catalog.+) a_acc.purchase_days,
        purchase_amount = s.purchase_amount OPERATOR(pg_catalog.+) a_acc.purchase_amount,
        updated_at = now()
    WHERE s.member_id OPERATOR(pg_catalog.=) survivor;
    UPDATE loyalty.accounts a SET
        balance = '0', debt = '0', lifetime_earned = '0', lifetime_redeemed = '0', lifetime_expired = '0',
        first_purchase_at = NULL, last_purchase_at = NULL, purchase_count = 0, purchase_days = 0,
        purchase_amount = 0, status = 'closed', updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;

    UPDATE loyalty.identities i SET member_id = survivor WHERE i.member_id OPERATOR(pg_catalog.=) absorbed;
    UPDATE loyalty.members m SET status = 'closed', merged_into = survivor
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    -- members merged into the absorbed one now point at the survivor
    UPDATE loyalty.members m SET merged_into = survivor WHERE m.merged_into OPERATOR(pg_catalog.=) absorbed;

    IF idempotency_key IS NOT NULL THEN
        INSERT INTO loyalty.idempotency_keys (member_id, idempotency_key, operation, request_hash, result, entry_id)
        VALUES (survivor, idempotency_key, 'merge', v_hash, v_moved, v_in);
    END IF;
    RETURN v_moved::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.merge_members(bigint, bigint, text) IS
    'Merge two records of one person: lots (with their expiry), debt, statistics and identities move to the survivor through merge ledger entries; the absorbed member is closed; returns the points moved';

-- expiry ----------------------------------------------------------------------

CREATE FUNCTION loyalty.expire_member(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_as_of timestamptz := coalesce(as_of, now());
    v_program bigint;
    v_total bigint;
    v_entry bigint;
BEGIN
    IF v_as_of > now() THEN
        RAISE EXCEPTION 'cannot expire points as of a future time %', v_as_of USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id INTO v_program FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT pg_catalog.sum(l.remaining::bigint) INTO v_total FROM loyalty.lots l
    WHERE l.member_id OPERATOR(pg_catalog.=) member
      AND l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
      AND l.expires_at OPERATOR(pg_catalog.<=) v_as_of;
    IF v_total IS NULL THEN
        RETURN '0'::loyalty.points;       -- nothing (left) to expire: running twice changes nothing
    END IF;
    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, occurred_at)
    VALUES (member, v_program, 'expire', (OPERATOR(pg_catalog.-) v_total)::loyalty.points, 'points expired', v_as_of)
    RETURNING entry_id INTO v_entry;
    WITH x AS (
        UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
        FROM (SELECT l2.lot_id, l2.remaining FROM loyalty.lots l2
              WHERE l2.member_id OPERATOR(pg_catalog.=) member
                AND l2.remaining OPERATOR(loyalty.>) '0'::loyalty.points
                AND l2.expires_at OPERATOR(pg_catalog.<=) v_as_of) o
        WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.lot_id OPERATOR(pg_catalog.=) o.lot_id
        RETURNING l.lot_id, o.remaining)
    INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
    SELECT member, v_entry, x.lot_id, x.remaining FROM x;
    UPDATE loyalty.accounts a SET
        balance = (a.balance::bigint OPERATOR(pg_catalog.-) v_total)::loyalty.points,
        lifetime_expired = (a.lifetime_expired::bigint OPERATOR(pg_catalog.+) v_total)::loyalty.points,
        updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    RETURN v_total::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.expire_member(bigint, timestamptz) IS
    'Write off the unspent remainder of the member''s lots expired by as_of (default now); idempotent';

CREATE FUNCTION loyalty.expire_batch(as_of timestamptz, batch_size integer)
RETURNS TABLE (members bigint, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
    v_pts bigint := 0;
BEGIN
    FOR v_member IN
        SELECT DISTINCT l.member_id FROM loyalty.lots l
        WHERE l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
          AND l.expires_at IS NOT NULL AND l.expires_at OPERATOR(pg_catalog.<=) as_of
        LIMIT batch_size
    LOOP
        v_pts := v_pts OPERATOR(pg_catalog.+) loyalty.expire_member(v_member, as_of)::bigint;
        v_n := v_n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN QUERY SELECT v_n, v_pts::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.expire_batch(timestamptz, integer) IS
    'Expire the lots of up to batch_size members (one step of loyalty.expire_points)';

-- A procedure that COMMITs cannot carry a SET search_path clause (PostgreSQL
-- forbids transaction control there), so this body names every object with
-- its schema and does its work in pinned functions.
CREATE PROCEDURE loyalty.expire_points(as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_as_of timestamptz := COALESCE(as_of, pg_catalog.now());
    v_step record;
    v_members bigint := 0;
    v_points bigint := 0;
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_as_of OPERATOR(pg_catalog.>) pg_catalog.now() THEN
        RAISE EXCEPTION 'cannot expire points as of a future time %', v_as_of
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Expiry only writes down what has already happened.';
    END IF;
    LOOP
        SELECT * INTO v_step FROM loyalty.expire_batch(v_as_of, batch_size);
        EXIT WHEN v_step.members OPERATOR(pg_catalog.=) 0;
        v_members := v_members OPERATOR(pg_catalog.+) v_step.members;
        v_points := v_points OPERATOR(pg_catalog.+) v_step.points::bigint;
        COMMIT;
        RAISE NOTICE 'loyalty.expire_points: % members, % points expired so far', v_members, v_points;
    END LOOP;
    RAISE NOTICE 'loyalty.expire_points: done: % members, % points expired', v_members, v_points;
END $$;
COMMENT ON PROCEDURE loyalty.expire_points(timestamptz, integer) IS
    'Batch job: write off expired lots as of a time, committing every batch_size members and reporting progress; safe to rerun';

CREATE FUNCTION loyalty.release_expired_batch(batch_size integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
BEGIN
    FOR v_member IN
        SELECT DISTINCT h.member_id FROM loyalty.holds h
        WHERE h.status OPERATOR(pg_catalog.=) 'active' AND h.expires_at OPERATOR(pg_catalog.<=) now()
        LIMIT batch_size
    LOOP
        v_n := v_n OPERATOR(pg_catalog.+) loyalty.release_expired(v_member);
    END LOOP;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.release_expired_batch(integer) IS
    'Release the expired holds of up to batch_size members (one step of loyalty.release_expired_holds)';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
CREATE PROCEDURE loyalty.release_expired_holds(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_n bigint;
    v_total bigint := 0;
BEGIN
    LOOP
        v_n := loyalty.release_expired_batch(batch_size);
        EXIT WHEN v_n OPERATOR(pg_catalog.=) 0;
        v_total := v_total OPERATOR(pg_catalog.+) v_n;
        COMMIT;
        RAISE NOTICE 'loyalty.release_expired_holds: % holds released so far', v_total;
    END LOOP;
END $$;
COMMENT ON PROCEDURE loyalty.release_expired_holds(integer) IS
    'Batch job: release every hold whose time is up, committing per batch; holds also release themselves on the member''s next write';

-- reads -----------------------------------------------------------------------

CREATE FUNCTION loyalty.balance(member bigint)
RETURNS TABLE (
    member_id bigint, available loyalty.points, pending loyalty.points, held loyalty.points,
    expired_unposted loyalty.points, debt loyalty.points, balance loyalty.points,
    lifetime_earned loyalty.points, lifetime_redeemed loyalty.points, lifetime_expired loyalty.points,
    next_expiry timestamptz, next_expiry_points loyalty.points, as_of timestamptz)
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- Expiry and hold timeouts are exact at read time: a lot past its expiry
    -- is not available even before the batch runs, and an expired hold's
    -- points are available again before anything releases it.
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = $1 AND remaining OPERATOR(loyalty.>) '0'::loyalty.points
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = h.member_id AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = $1 AND h.status = 'active' AND h.expires_at <= now()
    )
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::loyalty.points,
           coalesce(l.pending, 0)::loyalty.points,
           (a.held::bigint - coalesce(h.points, 0))::loyalty.points,
           coalesce(l.expired, 0)::loyalty.points,
           a.debt, a.balance, a.lifetime_earned, a.lifetime_redeemed, a.lifetime_expired,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = $1 AND x.expires_at = l.next_expiry
                       AND x.remaining OPERATOR(loyalty.>) '0'::loyalty.points AND x.vests_at <= now()), 0)::loyalty.points,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = $1
$$;
COMMENT ON FUNCTION loyalty.balance(bigint) IS
    'Balances of a member now: available (spendable), pending (vesting), held, expired but not yet written down, debt, posted balance, lifetime totals, next expiry';

CREATE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS loyalty.points
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(l.points::bigint), 0)::loyalty.points
    FROM loyalty.ledger l
    WHERE l.member_id = $1 AND l.created_at <= $2
$$;
COMMENT ON FUNCTION loyalty.balance_at(bigint, timestamptz) IS
    'Posted balance (sum of the ledger) as recorded at a past time; answers disputes and month-end questions from the ledger alone';

CREATE FUNCTION loyalty.history(member bigint, since timestamptz DEFAULT '-infinity', max_rows integer DEFAULT 1000)
RETURNS SETOF loyalty.ledger
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.ledger l
    WHERE l.member_id = $1 AND l.created_at >= coalesce($2, '-infinity')
    ORDER BY l.created_at DESC, l.entry_id DESC
    LIMIT coalesce($3, 1000)
$$;
COMMENT ON FUNCTION loyalty.history(bigint, timestamptz, integer) IS
    'A member''s ledger entries, newest first';

CREATE FUNCTION loyalty.verify()
RETURNS TABLE (invariant text, member_id bigint, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH led AS (
        SELECT l.member_id, sum(l.points::bigint) AS points, sum(l.held_delta::bigint) AS held
        FROM loyalty.ledger l GROUP BY l.member_id
    ), lots AS (
        SELECT l.member_id, sum(l.remaining::bigint) AS remaining
        FROM loyalty.lots l GROUP BY l.member_id
    ), holds AS (
        SELECT h.member_id, sum(h.points::bigint) AS held
        FROM loyalty.holds h WHERE h.status = 'active' GROUP BY h.member_id
    ), alloc AS (
        SELECT a.member_id, a.entry_id, sum(a.points::bigint) AS points
        FROM loyalty.allocations a GROUP BY a.member_id, a.entry_id
    )
    SELECT 'balance = sum(ledger)', a.member_id,
           format('balance %s, ledger %s', a.balance, coalesce(led.points, 0))
    FROM loyalty.accounts a LEFT JOIN led USING (member_id)
    WHERE a.balance::bigint <> coalesce(led.points, 0)
    UNION ALL
    SELECT 'balance = sum(lots) - debt', a.member_id,
           format('balance %s, lots %s, debt %s', a.balance, coalesce(lots.remaining, 0), a.debt)
    FROM loyalty.accounts a LEFT JOIN lots USING (member_id)
    WHERE a.balance::bigint <> coalesce(lots.remaining, 0) - a.debt::bigint
    UNION ALL
    SELECT 'held = sum(active holds) = sum(ledger.held_delta)', a.member_id,
           format('held %s, active holds %s, ledger %s', a.held, coalesce(holds.held, 0), coalesce(led.held, 0))
    FROM loyalty.accounts a LEFT JOIN holds USING (member_id) LEFT JOIN led USING (member_id)
    WHERE a.held::bigint <> coalesce(holds.held, 0) OR a.held::bigint <> coalesce(led.held, 0)
    UNION ALL
    SELECT 'no negative balance without debt', a.member_id, format('balance %s, debt %s', a.balance, a.debt)
    FROM loyalty.accounts a
    WHERE a.balance::bigint < 0 AND a.balance::bigint + a.debt::bigint < 0
    UNION ALL
    SELECT 'a debit consumed exactly its points from lots', l.member_id,
           format('entry %s (%s) of %s points, allocations %s', l.entry_id, l.kind, l.points, coalesce(al.points, 0))
    FROM loyalty.ledger l LEFT JOIN alloc al USING (member_id, entry_id)
    WHERE l.kind = ANY (ARRAY['redeem', 'hold', 'expire', 'merge', 'adjust'])
      AND l.points::bigint < 0 AND coalesce(al.points, 0) <> -l.points::bigint
    UNION ALL
    SELECT 'a credit has one lot of its points', l.member_id,
           format('entry %s (%s) of %s points, lots %s', l.entry_id, l.kind, l.points, coalesce(lo.original, 0))
    FROM loyalty.ledger l
    LEFT JOIN (SELECT x.member_id, x.entry_id, sum(x.original::bigint) AS original, count(*) AS n
               FROM loyalty.lots x GROUP BY 1, 2) lo USING (member_id, entry_id)
    WHERE l.kind = ANY (ARRAY['earn', 'award', 'adjust']) AND l.points::bigint > 0
      AND (lo.n IS DISTINCT FROM 1 OR lo.original <> l.points::bigint)
    UNION ALL
    SELECT 'a resolved hold has a resolving entry', h.member_id, format('hold %s is %s', h.hold_id, h.status)
    FROM loyalty.holds h
    WHERE (h.status = 'active') <> (h.resolved_entry IS NULL)
    UNION ALL
    SELECT 'reversals of a debit never exceed it', l.member_id,
           format('entry %s (%s) of %s points, given back %s', l.entry_id, l.kind, l.points, r.back)
    FROM loyalty.ledger l
    JOIN (SELECT x.member_id, x.source_entry, sum(x.points::bigint) AS back FROM loyalty.ledger x
          WHERE x.kind = 'reverse' AND x.points::bigint > 0 GROUP BY 1, 2) r
      ON r.member_id = l.member_id AND r.source_entry = l.entry_id
    WHERE r.back > -l.points::bigint AND l.kind <> 'capture'
    UNION ALL
    SELECT 'a ledger entry has a known kind', l.member_id, format('entry %s has kind %s', l.entry_id, l.kind)
    FROM loyalty.ledger l
    WHERE NOT l.kind = ANY (ARRAY['earn', 'award', 'redeem', 'hold', 'capture', 'release', 'reverse',
                                  'expire', 'adjust', 'merge'])    UNION ALL
    SELECT 'lot bounds: 0 <= reversed, remaining <= original', l.member_id,
           format('lot %s: original %s, remaining %s, reversed %s', l.lot_id, l.original, l.remaining, l.reversed)
    FROM loyalty.lots l
    WHERE NOT (l.original::bigint > 0 AND l.remaining::bigint >= 0 AND l.remaining::bigint <= l.original::bigint
               AND l.reversed::bigint >= 0 AND l.reversed::bigint <= l.original::bigint)
    UNION ALL
    SELECT 'a lot belongs to a ledger entry', l.member_id, format('lot %s, entry %s', l.lot_id, l.entry_id)
    FROM loyalty.lots l
    WHERE NOT EXISTS (SELECT 1 FROM loyalty.ledger x WHERE x.member_id = l.member_id AND x.entry_id = l.entry_id)
    UNION ALL
    SELECT 'allocation bounds: 0 <= returned <= points, points > 0', a.member_id,
           format('entry %s lot %s: points %s, returned %s', a.entry_id, a.lot_id, a.points, a.returned)
    FROM loyalty.allocations a
    WHERE NOT (a.points::bigint > 0 AND a.returned::bigint >= 0 AND a.returned::bigint <= a.points::bigint)
    UNION ALL
    SELECT 'an allocation names a lot of its member', a.member_id, format('entry %s, lot %s', a.entry_id, a.lot_id)
    FROM loyalty.allocations a
    WHERE NOT EXISTS (SELECT 1 FROM loyalty.lots l WHERE l.member_id = a.member_id AND l.lot_id = a.lot_id)
    UNION ALL
    SELECT 'account status = member status', a.member_id, format('account %s, member %s', a.status, m.status)
    FROM loyalty.accounts a JOIN loyalty.members m USING (member_id)
    WHERE a.status <> m.status
    UNION ALL
    SELECT 'at most one effect per idempotency key', l.member_id,
           format('key %s used by %s entries', l.idempotency_key, count(*))
    FROM loyalty.ledger l
    WHERE l.idempotency_key IS NOT NULL AND l.kind <> 'release'
    GROUP BY l.member_id, l.idempotency_key
    HAVING count(*) > 1
$$;
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
CREATE FUNCTION loyalty.rules_version_bump() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE loyalty.programs p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
    WHERE p.program_id OPERATOR(pg_catalog.=) ANY (ARRAY[
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.program_id END,
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.program_id END]);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION loyalty.rules_version_bump() IS 'Trigger: bump programs.rules_version when an earning rule or a tier changes';
CREATE TRIGGER earning_rules_bump AFTER INSERT OR UPDATE OR DELETE ON loyalty.earning_rules
    FOR EACH ROW EXECUTE FUNCTION loyalty.rules_version_bump();

CREATE FUNCTION loyalty.create_earning_rule(
    program bigint, name text, effect text,
    multiplier numeric DEFAULT NULL, bonus_points loyalty.points DEFAULT NULL,
    stacking text DEFAULT NULL, priority integer DEFAULT 100, stop boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    weekdays integer[] DEFAULT NULL, hour_from integer DEFAULT NULL, hour_to integer DEFAULT NULL,
    channels text[] DEFAULT NULL, stores text[] DEFAULT NULL,
    categories text[] DEFAULT NULL, products text[] DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, segments text[] DEFAULT NULL,
    birthday text DEFAULT NULL, first_purchase boolean DEFAULT false, min_amount numeric DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF program IS NULL OR name IS NULL OR effect IS NULL THEN
        RAISE EXCEPTION 'program, name and effect must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF effect NOT IN ('multiply', 'bonus') THEN
        RAISE EXCEPTION 'unknown rule effect "%"', effect USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use multiply (with multiplier) or bonus (with bonus_points).';
    END IF;
    IF effect = 'multiply' AND (multiplier IS NULL OR bonus_points IS NOT NULL) THEN
        RAISE EXCEPTION 'a multiply rule needs a multiplier and no bonus_points' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND (bonus_points IS NULL OR multiplier IS NOT NULL OR bonus_points::bigint <= 0) THEN
        RAISE EXCEPTION 'a bonus rule needs positive bonus_points and no multiplier' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF multiplier IS NOT NULL AND (multiplier = 'NaN' OR multiplier < 0 OR multiplier >= 1000) THEN
        RAISE EXCEPTION 'multiplier must be between 0 and 1000, got %', multiplier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND coalesce(stacking, 'add') = 'multiply' THEN
        RAISE EXCEPTION 'a bonus stacks by add or best_of, not multiply' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    BEGIN
        INSERT INTO loyalty.earning_rules (program_id, name, effect, multiplier, bonus_points, stacking, priority,
            stop, valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores, categories, products,
            min_tier, segments, birthday, first_purchase, min_amount)
        VALUES (program, name, effect, multiplier, bonus_points,
            coalesce(stacking, CASE effect WHEN 'bonus' THEN 'add' ELSE 'multiply' END), coalesce(priority, 100),
            coalesce(stop, false), valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores,
            categories, products, min_tier, segments, birthday, coalesce(first_purchase, false), min_amount)
        RETURNING rule_id INTO v_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a rule named "%"', program, name
                USING ERRCODE = 'unique_violation';
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid earning rule "%": %', name, SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Check stacking, weekdays (1..7), hours (0..24, from < to), the validity window, birthday (day or month).';
    END;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric) IS
    'Add a multiplier or bonus rule to a program; returns its id (see README "Earning rules" for stacking)';

CREATE FUNCTION loyalty.set_earning_rule_active(rule bigint, active boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE loyalty.earning_rules r SET active = set_earning_rule_active.active
    WHERE r.rule_id OPERATOR(pg_catalog.=) rule;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'earning rule % does not exist', rule USING ERRCODE = 'no_data_found';
    END IF;
END $$;
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

CREATE FUNCTION loyalty.set_activity_rule(program bigint, activity text, points loyalty.points,
    cap_per_day integer DEFAULT NULL, cap_per_week integer DEFAULT NULL, cap_per_month integer DEFAULT NULL,
    cap_lifetime integer DEFAULT NULL, budget loyalty.points DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF program IS NULL OR activity IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'program, activity and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.activity_rules AS r (program_id, activity, points, cap_per_day, cap_per_week,
                                                 cap_per_month, cap_lifetime, budget)
        VALUES (set_activity_rule.program, set_activity_rule.activity, set_activity_rule.points,
                set_activity_rule.cap_per_day, set_activity_rule.cap_per_week, set_activity_rule.cap_per_month,
                set_activity_rule.cap_lifetime, set_activity_rule.budget)
        ON CONFLICT (program_id, activity) DO UPDATE SET points = EXCLUDED.points,
            cap_per_day = EXCLUDED.cap_per_day, cap_per_week = EXCLUDED.cap_per_week,
            cap_per_month = EXCLUDED.cap_per_month, cap_lifetime = EXCLUDED.cap_lifetime,
            budget = EXCLUDED.budget, active = true;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid activity rule for "%": %', activity, SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Activities: signup, profile_completed, review, survey, social_share, app_download, custom:<name>; points, caps and budget positive.';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
COMMENT ON FUNCTION loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points) IS
    'Define (or replace) the points, caps and budget of a non-purchase activity';

CREATE FUNCTION loyalty.record_activity(member bigint, activity text, reference text DEFAULT NULL,
                                        idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_rule loyalty.activity_rules;
    v_now timestamptz := now();
    v_local timestamp;
    v_tz text;
    v_entry bigint;
    v_outcome text := 'awarded';
    v_key text;
BEGIN
    IF member IS NULL OR activity IS NULL THEN
        RAISE EXCEPTION 'member and activity must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the member's lock: caps are counted and written under it
    SELECT a.program_id INTO v_program FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        v_key := 'activity:' || idempotency_key;
        SELECT act.points INTO v_rule.points FROM loyalty.activities act
        JOIN loyalty.ledger l ON l.member_id OPERATOR(pg_catalog.=) act.member_id
                             AND l.entry_id OPERATOR(pg_catalog.=) act.entry_id
        WHERE act.member_id OPERATOR(pg_catalog.=) member AND l.idempotency_key OPERATOR(pg_catalog.=) v_key;
        IF FOUND THEN
            RETURN v_rule.points;   -- a replay: the first award stands
        END IF;
    END IF;
    SELECT * INTO v_rule FROM loyalty.activity_rules r
    WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity AND r.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % awards nothing for activity "%"', v_program, activity
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Define it with loyalty.set_activity_rule().';
    END IF;
    SELECT p.time_zone INTO v_tz FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) v_program;
    v_local := v_now AT TIME ZONE v_tz;
    -- caps count awarded activities in calendar periods of the program's time zone
    IF (v_rule.cap_lifetime IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded') >= v_rule.cap_lifetime)
       OR (v_rule.cap_per_month IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('month', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_month)
       OR (v_rule.cap_per_week IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('week', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_week)
       OR (v_rule.cap_per_day IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('day', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_day) THEN
        v_outcome := 'capped';
    ELSIF v_rule.budget IS NOT NULL THEN
        -- the program budget is one row: take from it atomically
        UPDATE loyalty.activity_rules r
        SET budget_used = (r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint)::loyalty.points
        WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity
          AND r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint OPERATOR(pg_catalog.<=) r.budget::bigint;
        IF NOT FOUND THEN
            v_outcome := 'budget_exhausted';
        END IF;
    END IF;
    IF v_outcome = 'awarded' THEN
        v_entry := loyalty.award(member, v_rule.points, 'activity: ' || activity, NULL, reference, v_key);
    END IF;
    INSERT INTO loyalty.activities (member_id, program_id, activity, points, entry_id, outcome, reference, occurred_at)
    VALUES (member, v_program, activity, CASE WHEN v_outcome = 'awarded' THEN v_rule.points ELSE '0' END,
            v_entry, v_outcome, reference, v_now);
    RETURN CASE WHEN v_outcome = 'awarded' THEN v_rule.points ELSE '0'::loyalty.points END;
END $$;
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
CREATE FUNCTION loyalty.earn_explanation(member bigint, entry bigint)
RETURNS jsonb
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(l.details, jsonb_build_object('earn_base', l.amount, 'points', l.points::bigint, 'rules', '[]'::jsonb))
    FROM loyalty.ledger l
    WHERE l.member_id = $1 AND l.entry_id = $2 AND l.kind = 'earn'
$$;
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

CREATE FUNCTION loyalty.set_tier_policy(program bigint, metric text, tier_window text DEFAULT 'rolling',
    window_months integer DEFAULT 12, downgrade text DEFAULT 'one_step', grace interval DEFAULT interval '0',
    refund_demotes boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF program IS NULL OR metric IS NULL THEN
        RAISE EXCEPTION 'program and metric must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF tier_window = 'calendar' AND 12 % window_months <> 0 THEN
        RAISE EXCEPTION 'a calendar window must divide the year (1, 2, 3, 4, 6 or 12 months), got %', window_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        UPDATE loyalty.programs p SET tier_metric = metric, tier_window = coalesce(set_tier_policy.tier_window, 'rolling'),
            tier_window_months = coalesce(window_months, 12), tier_downgrade = coalesce(downgrade, 'one_step'),
            tier_grace = coalesce(grace, interval '0'), tier_refund_demotes = coalesce(refund_demotes, false)
        WHERE p.program_id OPERATOR(pg_catalog.=) program;
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'invalid tier policy: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
            HINT = 'metric: spend, points or visits; window: rolling, calendar or anniversary (1..120 months); downgrade: one_step or to_qualified; grace >= 0.';
    END;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
END $$;
COMMENT ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean) IS
    'Set how a program''s members qualify for tiers: metric, window, downgrade rule, grace period, refund effect';

CREATE FUNCTION loyalty.define_tier(program bigint, rank integer, name text, threshold numeric,
    earn_multiplier numeric DEFAULT 1, invitation_only boolean DEFAULT false, benefits jsonb DEFAULT '{}')
RETURNS loyalty.tier
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tier loyalty.tier;
BEGIN
    IF program IS NULL OR rank IS NULL OR name IS NULL OR threshold IS NULL THEN
        RAISE EXCEPTION 'program, rank, name and threshold must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_tier := loyalty.tier(rank, name);       -- the tier type's own checks on rank and name
    BEGIN
        INSERT INTO loyalty.tiers (program_id, rank, name, threshold, earn_multiplier, invitation_only, benefits)
        VALUES (define_tier.program, define_tier.rank, define_tier.name, define_tier.threshold,
                coalesce(define_tier.earn_multiplier, 1), coalesce(define_tier.invitation_only, false),
                coalesce(define_tier.benefits, '{}'))
        ON CONFLICT (program_id, rank) DO UPDATE SET name = EXCLUDED.name, threshold = EXCLUDED.threshold,
            earn_multiplier = EXCLUDED.earn_multiplier, invitation_only = EXCLUDED.invitation_only,
            benefits = EXCLUDED.benefits;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid tier %: %', v_tier, SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a tier named "%"', program, name USING ERRCODE = 'unique_violation';
    END;
    RETURN v_tier;
END $$;
COMMENT ON FUNCTION loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb) IS
    'Add or change a rung of a program''s tier ladder; returns the tier value';

-- Start of the qualification window ending at as_of.
CREATE FUNCTION loyalty.tier_window_start(member bigint, as_of timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p.tier_window
        WHEN 'rolling' THEN $2 - make_interval(months => p.tier_window_months)
        WHEN 'calendar' THEN
            ((date_trunc('year', $2 AT TIME ZONE p.time_zone)
              + make_interval(months => ((extract(month FROM $2 AT TIME ZONE p.time_zone)::integer - 1)
                                          / p.tier_window_months) * p.tier_window_months))
             AT TIME ZONE p.time_zone)
        ELSE (SELECT m.joined_at + make_interval(months => p.tier_window_months
                    * floor((extract(year FROM age($2, m.joined_at)) * 12 + extract(month FROM age($2, m.joined_at)))
                            / p.tier_window_months)::integer))
    END
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = $1
$$;
COMMENT ON FUNCTION loyalty.tier_window_start(bigint, timestamptz) IS
    'Start of the member''s qualification window ending at as_of (rolling: exclusive; calendar and anniversary: inclusive)';

CREATE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        SELECT p.tier_metric AS metric, p.tier_window AS kind,
               loyalty.tier_window_start($1, coalesce($2, now())) AS start, coalesce($2, now()) AS stop
        FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
        WHERE m.member_id = $1
    ), e AS (
        SELECT l.occurred_at, coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM w, loyalty.ledger l
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
        WHERE l.member_id = $1 AND l.kind = 'earn' AND l.occurred_at <= w.stop
          AND (l.occurred_at > w.start OR (w.kind <> 'rolling' AND l.occurred_at = w.start))
    )
    SELECT CASE w.metric
        WHEN 'spend' THEN coalesce((SELECT sum(spend) FROM e), 0)
        WHEN 'points' THEN coalesce((SELECT sum(points) FROM e), 0)
        WHEN 'visits' THEN (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM e WHERE spend > 0)
    END
    FROM w
$$;
COMMENT ON FUNCTION loyalty.tier_metric(bigint, timestamptz) IS
    'The member''s qualifying metric (spend, points earned or visits, net of refunds) over the window ending at as_of (default now)';

CREATE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.tier
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.tier(t.rank, t.name)
    FROM loyalty.members m JOIN loyalty.tiers t ON t.program_id = m.program_id
    WHERE m.member_id = $1 AND NOT t.invitation_only AND t.threshold <= loyalty.tier_metric($1, $2)
    ORDER BY t.rank DESC LIMIT 1
$$;
COMMENT ON FUNCTION loyalty.qualified_tier(bigint, timestamptz) IS
    'The highest tier (not invitation-only) whose threshold the member''s metric reaches at as_of';

-- Internal: record a change on the locked account.
CREATE FUNCTION loyalty.tier_change(member bigint, new_tier loyalty.tier, reason text,
                                    locked_until timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old loyalty.tier;
BEGIN
    SELECT a.tier INTO v_old FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    -- (IS DISTINCT FROM cannot name the operator's schema)
    IF (v_old IS NULL AND new_tier IS NULL) OR v_old OPERATOR(loyalty.=) new_tier THEN
        UPDATE loyalty.accounts a SET tier_locked_until = locked_until, tier_grace_until = NULL
        WHERE a.member_id OPERATOR(pg_catalog.=) member AND locked_until IS NOT NULL;
        RETURN false;
    END IF;
    UPDATE loyalty.accounts a SET tier = new_tier, tier_since = now(), tier_locked_until = locked_until,
        tier_grace_until = NULL, updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason) VALUES (member, v_old, new_tier, reason);
    PERFORM loyalty.emit_event(member, 'tier.changed',
        jsonb_build_object('from', v_old::text, 'to', new_tier::text, 'reason', reason));
    RETURN true;
END $$;
COMMENT ON FUNCTION loyalty.tier_change(bigint, loyalty.tier, text, timestamptz) IS
    'Internal: set the member''s tier (account locked by the caller), write history and the tier.changed event';

-- Internal: called by the C write path after an earn (upgrade) or a refund
-- (demotion only when the program allows it), with the account locked.
CREATE FUNCTION loyalty.tier_after_write(member bigint, cause text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acc loyalty.accounts;
    v_q loyalty.tier;
    v_demote boolean;
BEGIN
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT p.tier_refund_demotes INTO v_demote FROM loyalty.programs p
    WHERE p.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND p.tier_metric IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    v_q := loyalty.qualified_tier(member);
    IF v_q IS NOT NULL AND (v_acc.tier IS NULL OR v_q OPERATOR(loyalty.>) v_acc.tier) THEN
        -- an upgrade never waits, and ends a manual or invitation lock below it
        RETURN loyalty.tier_change(member, v_q, 'qualified (' || cause || ')');
    END IF;
    IF cause = 'refund' AND v_demote AND v_acc.tier IS NOT NULL
       AND (v_q IS NULL OR v_q OPERATOR(loyalty.<) v_acc.tier)
       AND (v_acc.tier_locked_until IS NULL OR v_acc.tier_locked_until <= now()) THEN
        RETURN loyalty.tier_change(member, v_q, 'refund lowered the qualifying metric');
    END IF;
    RETURN false;
END $$;
COMMENT ON FUNCTION loyalty.tier_after_write(bigint, text) IS
    'Internal: upgrade at once after an earn; after a refund, demote only if the program says so';

CREATE FUNCTION loyalty.evaluate_tier(member bigint)
RETURNS TABLE (tier loyalty.tier, qualified_tier loyalty.tier, metric text, value numeric,
               next_tier loyalty.tier, distance numeric, changed boolean)
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_changed boolean;
    v_metric text;
    v_value numeric;
    v_cur loyalty.tier;
    v_next record;
BEGIN
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT p.tier_metric INTO v_metric FROM loyalty.members m JOIN loyalty.programs p USING (program_id)
    WHERE m.member_id OPERATOR(pg_catalog.=) member;
    IF v_metric IS NULL THEN
        RAISE EXCEPTION 'the program of member % has no tiers', member USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;
    v_changed := loyalty.tier_after_write(member, 'evaluation');
    v_value := loyalty.tier_metric(member);
    SELECT a.tier INTO v_cur FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT t.rank, t.name, t.threshold INTO v_next FROM loyalty.tiers t
    JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
    WHERE m.member_id OPERATOR(pg_catalog.=) member AND NOT t.invitation_only
      AND t.rank OPERATOR(pg_catalog.>) coalesce(loyalty.tier_rank(v_cur), -1)
    ORDER BY t.rank LIMIT 1;
    RETURN QUERY SELECT v_cur, loyalty.qualified_tier(member), v_metric, v_value,
        CASE WHEN v_next.rank IS NOT NULL THEN loyalty.tier(v_next.rank, v_next.name) END,
        CASE WHEN v_next.rank IS NOT NULL THEN greatest(v_next.threshold OPERATOR(pg_catalog.-) v_value, 0) END,
        v_changed;
END $$;
COMMENT ON FUNCTION loyalty.evaluate_tier(bigint) IS
    'The member''s tier now, the tier the metric qualifies for, the metric and its value, the next tier and the distance to it; applies an upgrade';

CREATE FUNCTION loyalty.assign_tier(member bigint, tier loyalty.tier, until timestamptz DEFAULT 'infinity', reason text DEFAULT 'assigned')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF member IS NULL OR tier IS NULL THEN
        RAISE EXCEPTION 'member and tier must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.tiers t JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
                   WHERE m.member_id OPERATOR(pg_catalog.=) member
                     AND t.rank OPERATOR(pg_catalog.=) loyalty.tier_rank(assign_tier.tier)
                     AND t.name OPERATOR(pg_catalog.=) loyalty.tier_name(assign_tier.tier)) THEN
        RAISE EXCEPTION 'tier % is not on the ladder of member %''s program', tier, member
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF until IS NULL OR until <= now() THEN
        RAISE EXCEPTION 'until must lie in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty.tier_change(member, tier, coalesce(reason, 'assigned'), until);
END $$;
COMMENT ON FUNCTION loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text) IS
    'Assign a tier by hand (status match, invitation); reviews keep it until the end date';

CREATE FUNCTION loyalty.tier_at(member bigint, at timestamptz)
RETURNS loyalty.tier
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.to_tier FROM loyalty.tier_history h
    WHERE h.member_id = $1 AND h.changed_at <= $2
    ORDER BY h.changed_at DESC, h.change_id DESC LIMIT 1
$$;
COMMENT ON FUNCTION loyalty.tier_at(bigint, timestamptz) IS 'The member''s tier at a past time (NULL: none then)';

-- The review, set-based: up to batch_size members of a program after a
-- member id, locked together (in member_id order), their metric computed in
-- one query; only members whose tier changes go through tier_change (history
-- and event).  Returns the last member id reviewed, how many were reviewed
-- and how many changed tier.
CREATE FUNCTION loyalty.review_tiers_batch(program bigint, as_of timestamptz, after_member bigint, batch_size integer)
RETURNS TABLE (last_member bigint, reviewed bigint, changed bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p loyalty.programs;
    v_as_of timestamptz := coalesce(as_of, now());
    v_last bigint;
    v_n bigint;
    v_c bigint := 0;
    v_ids bigint[];
    r2 bigint;
    r bigint;
BEGIN
    SELECT * INTO v_p FROM loyalty.programs p WHERE p.program_id = program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    IF v_p.tier_metric IS NULL THEN
        RAISE EXCEPTION 'program % has no tiers', program USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;

    -- Lock the batch first, in its own statement: the next statement then
    -- reads with a snapshot taken after the locks were granted, so it sees
    -- what a concurrent earn committed while the review waited for it.  (No
    -- temporary table: a caller's own pg_temp table of the same name would
    -- be used by this SECURITY DEFINER function.)
    SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}') INTO v_ids
    FROM (SELECT a.member_id FROM loyalty.accounts a
          WHERE a.program_id = program AND a.member_id > after_member
          ORDER BY a.member_id LIMIT batch_size
          FOR NO KEY UPDATE OF a) x;
    v_n := cardinality(v_ids);
    v_last := v_ids[v_n];

    -- one statement: metrics, decisions, grace updates, tier changes,
    -- history and tier.changed events of the whole batch
    WITH batch AS (
        SELECT a.member_id, a.tier, a.status, a.tier_locked_until, a.tier_grace_until
        FROM loyalty.accounts a WHERE a.member_id = ANY (v_ids)
    ), win AS (
        SELECT b.*, CASE v_p.tier_window
            WHEN 'rolling' THEN v_as_of - make_interval(months => v_p.tier_window_months)
            WHEN 'calendar' THEN
                ((date_trunc('year', v_as_of AT TIME ZONE v_p.time_zone)
                  + make_interval(months => ((extract(month FROM v_as_of AT TIME ZONE v_p.time_zone)::integer - 1)
                                              / v_p.tier_window_months) * v_p.tier_window_months))
                 AT TIME ZONE v_p.time_zone)
            ELSE m.joined_at + make_interval(months => v_p.tier_window_months
                    * floor((extract(year FROM age(v_as_of, m.joined_at)) * 12 + extract(month FROM age(v_as_of, m.joined_at)))
                            / v_p.tier_window_months)::integer)
            END AS start
        FROM batch b JOIN loyalty.members m ON m.member_id = b.member_id
    ), e AS (
        SELECT w.member_id, l.occurred_at,
               coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM win w
        JOIN loyalty.ledger l ON l.member_id = w.member_id AND l.kind = 'earn' AND l.occurred_at <= v_as_of
             AND (l.occurred_at > w.start OR (v_p.tier_window <> 'rolling' AND l.occurred_at = w.start))
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
    ), met AS (
        SELECT w.member_id, CASE v_p.tier_metric
            WHEN 'spend' THEN coalesce(sum(e.spend), 0)
            WHEN 'points' THEN coalesce(sum(e.points), 0)
            ELSE count(DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date) FILTER (WHERE e.spend > 0)
            END AS value
        FROM win w LEFT JOIN e ON e.member_id = w.member_id
        GROUP BY w.member_id
    ), d AS (
        SELECT b.member_id, b.status, b.tier_locked_until, b.tier_grace_until,
               loyalty.tier_rank(b.tier) AS cur,
               (SELECT max(t.rank) FROM loyalty.tiers t
                WHERE t.program_id = program AND NOT t.invitation_only AND t.threshold <= met.value) AS q
        FROM batch b JOIN met ON met.member_id = b.member_id
    )
    , res AS (
    SELECT d.member_id, d.cur, d.q, x.new_rank, x.grace_until, x.action
    FROM d, LATERAL (
        SELECT * FROM (VALUES
            -- closed members are left alone
            (d.status = 'closed', NULL::integer, NULL::timestamptz, 'none'),
            -- qualified for more: up at once; for the same: end any grace
            (d.q IS NOT NULL AND (d.cur IS NULL OR d.q > d.cur), d.q, NULL, 'change'),
            (d.cur IS NULL OR (d.q IS NOT NULL AND d.q >= d.cur),
                NULL, NULL, CASE WHEN d.tier_grace_until IS NOT NULL THEN 'clear_grace' ELSE 'none' END),
            -- below: a manual or invitation lock holds
            (d.tier_locked_until > v_as_of, NULL, NULL, 'none'),
            -- grace starts, or runs
            (d.tier_grace_until IS NULL AND v_p.tier_grace > interval '0', NULL, v_as_of + v_p.tier_grace, 'start_grace'),
            (d.tier_grace_until > v_as_of, NULL, NULL, 'none'),
            -- down: to the qualified tier, or one step (never below the qualified tier)
            (true,
                CASE WHEN v_p.tier_downgrade = 'to_qualified' THEN d.q
                     ELSE greatest(d.q, (SELECT max(t.rank) FROM loyalty.tiers t
                                         WHERE t.program_id = program AND NOT t.invitation_only AND t.rank < d.cur)) END,
                NULL, 'change')
        ) AS v(cond, new_rank, grace_until, action)
        WHERE v.cond LIMIT 1
    ) x
    )
    , gr AS (
        UPDATE loyalty.accounts a SET tier_grace_until = res.grace_until
        FROM res WHERE a.member_id = res.member_id AND res.action IN ('start_grace', 'clear_grace')
        RETURNING a.member_id
    ), ch AS (
        SELECT res.member_id, b.tier AS from_tier,
               (SELECT loyalty.tier(x.rank, x.name) FROM loyalty.tiers x
                WHERE x.program_id = program AND x.rank = res.new_rank) AS to_tier,
               CASE WHEN res.new_rank > coalesce(res.cur, -1) THEN 'qualified (review)'
                    ELSE 'review: below the threshold' END AS reason
        FROM res JOIN batch b ON b.member_id = res.member_id
        WHERE res.action = 'change' AND res.new_rank IS DISTINCT FROM res.cur
    ), up AS (
        UPDATE loyalty.accounts a SET tier = ch.to_tier, tier_since = now(), tier_locked_until = NULL,
            tier_grace_until = NULL, updated_at = now()
        FROM ch WHERE a.member_id = ch.member_id
        RETURNING a.member_id
    ), hist AS (
        INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason)
        SELECT ch.member_id, ch.from_tier, ch.to_tier, ch.reason FROM ch
    ), ev AS (
        INSERT INTO loyalty.events (member_id, program_id, kind, payload)
        SELECT ch.member_id, program, 'tier.changed',
               jsonb_build_object('from', ch.from_tier::text, 'to', ch.to_tier::text, 'reason', ch.reason)
        FROM ch WHERE 'tier.changed' = ANY (v_p.event_kinds)
        RETURNING event_id, member_id
    )
    SELECT (SELECT count(*) FROM up),
           (SELECT count(pg_notify('loyalty_events',
                jsonb_build_object('event_id', ev.event_id, 'member_id', ev.member_id, 'kind', 'tier.changed')::text))
            FROM ev),
           (SELECT count(*) FROM gr)
    INTO v_c, r, r2;
    RETURN QUERY SELECT v_last, v_n, v_c;
END $$;
COMMENT ON FUNCTION loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) IS
    'One step of loyalty.review_tiers: review up to batch_size members of a program after a member id, set-based';

-- Review one member (locking it): the batch review of just that member.
CREATE FUNCTION loyalty.review_member_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_metric text;
    v_changed bigint;
BEGIN
    SELECT a.program_id, p.tier_metric INTO v_program, v_metric
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) a.program_id
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_metric IS NULL THEN
        RETURN false;
    END IF;
    SELECT b.changed INTO v_changed
    FROM loyalty.review_tiers_batch(v_program, as_of, member OPERATOR(pg_catalog.-) 1, 1) b;
    RETURN v_changed OPERATOR(pg_catalog.>) 0;
END $$;
COMMENT ON FUNCTION loyalty.review_member_tier(bigint, timestamptz) IS
    'Review one member''s tier as of a time: upgrade if qualified, start or honour grace, then downgrade by the program''s rule';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
CREATE PROCEDURE loyalty.review_tiers(program bigint, as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_as_of timestamptz := COALESCE(as_of, pg_catalog.now());
    v_after bigint := -1;
    v_step record;
    v_n bigint := 0;
    v_c bigint := 0;
BEGIN
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        SELECT * INTO v_step FROM loyalty.review_tiers_batch(program, v_as_of, v_after, batch_size);
        EXIT WHEN v_step.reviewed OPERATOR(pg_catalog.=) 0;
        v_after := v_step.last_member;
        v_n := v_n OPERATOR(pg_catalog.+) v_step.reviewed;
        v_c := v_c OPERATOR(pg_catalog.+) v_step.changed;
        COMMIT;
        RAISE NOTICE 'loyalty.review_tiers: % members reviewed, % tiers changed so far', v_n, v_c;
    END LOOP;
    RAISE NOTICE 'loyalty.review_tiers: done: % members reviewed, % tiers changed', v_n, v_c;
END $$;
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

CREATE FUNCTION loyalty.create_reward(program bigint, code text, name text, point_cost loyalty.points,
    stock bigint DEFAULT NULL, valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, per_member_limit integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_id bigint;
BEGIN
    IF program IS NULL OR code IS NULL OR name IS NULL OR point_cost IS NULL THEN
        RAISE EXCEPTION 'program, code, name and point_cost must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.rewards (program_id, code, name, point_cost, stock, valid_from, valid_until,
                                     min_tier, per_member_limit)
        VALUES (create_reward.program, create_reward.code, create_reward.name, create_reward.point_cost,
                create_reward.stock, create_reward.valid_from, create_reward.valid_until,
                create_reward.min_tier, create_reward.per_member_limit)
        RETURNING reward_id INTO v_id;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid reward "%": %', code, SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'code: letters, digits, _ . -; point_cost > 0; stock >= 0; valid_until after valid_from; per_member_limit > 0.';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a reward with code "%"', program, code USING ERRCODE = 'unique_violation';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer) IS
    'Add a reward to a program''s catalog; returns its id';

CREATE FUNCTION loyalty.restock_reward(reward bigint, units bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stock bigint;
BEGIN
    UPDATE loyalty.rewards r SET stock = r.stock + units
    WHERE r.reward_id = reward AND r.stock IS NOT NULL AND r.stock + units >= 0
    RETURNING r.stock INTO v_stock;
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT FROM loyalty.rewards r WHERE r.reward_id = reward) THEN
            RAISE EXCEPTION 'reward % does not exist', reward USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'reward % has unlimited stock, or would go below zero', reward USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_stock;
END $$;
COMMENT ON FUNCTION loyalty.restock_reward(bigint, bigint) IS 'Add (or, negative, remove) units of a reward''s stock; returns the new stock';

CREATE FUNCTION loyalty.redeem_reward(member bigint, reward bigint, idempotency_key text DEFAULT NULL,
                                      channel text DEFAULT NULL)
RETURNS TABLE (redemption_id bigint, voucher text, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_acc loyalty.accounts;
    v_r loyalty.rewards;
    v_prev loyalty.redemptions;
    v_used bigint;
    v_entry bigint;
    v_id bigint;
    v_voucher text;
BEGIN
    IF member IS NULL OR reward IS NULL THEN
        RAISE EXCEPTION 'member and reward must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id = redeem_reward.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO v_prev FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.idempotency_key = redeem_reward.idempotency_key;
        IF FOUND THEN
            IF v_prev.reward_id <> reward THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN QUERY SELECT v_prev.redemption_id, v_prev.voucher, v_prev.points;
            RETURN;
        END IF;
    END IF;
    SELECT * INTO v_r FROM loyalty.rewards r WHERE r.reward_id = reward AND r.program_id = v_acc.program_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reward % does not exist in the program of member %', reward, member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT v_r.active OR (v_r.valid_from IS NOT NULL AND now() < v_r.valid_from)
       OR (v_r.valid_until IS NOT NULL AND now() >= v_r.valid_until) THEN
        RAISE EXCEPTION 'reward "%" is not available now', v_r.code USING ERRCODE = 'LY011',
            DETAIL = format('active: %s, valid from %s until %s', v_r.active, coalesce(v_r.valid_from::text, '-'),
                            coalesce(v_r.valid_until::text, '-'));
    END IF;
    IF v_r.min_tier IS NOT NULL
       AND (v_acc.tier IS NULL OR loyalty.tier_rank(v_acc.tier) < loyalty.tier_rank(v_r.min_tier)) THEN
        RAISE EXCEPTION 'reward "%" needs tier % or above', v_r.code, v_r.min_tier USING ERRCODE = 'LY012',
            DETAIL = format('The member''s tier is %s.', coalesce(v_acc.tier::text, 'none'));
    END IF;
    IF v_r.per_member_limit IS NOT NULL THEN
        SELECT count(*) INTO v_used FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.reward_id = reward AND x.status = 'issued';
        IF v_used >= v_r.per_member_limit THEN
            RAISE EXCEPTION 'member % already redeemed reward "%" % times (the limit)', member, v_r.code, v_used
                USING ERRCODE = 'LY013';
        END IF;
    END IF;
    IF v_r.stock IS NOT NULL THEN
        -- waits for a concurrent buyer of the same reward, then re-checks the stock
        UPDATE loyalty.rewards r SET stock = r.stock - 1 WHERE r.reward_id = reward AND r.stock > 0;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'reward "%" is out of stock', v_r.code USING ERRCODE = 'LY010';
        END IF;
    END IF;
    v_entry := loyalty.redeem(member, v_r.point_cost, channel, 'reward:' || v_r.code,
                              CASE WHEN idempotency_key IS NOT NULL THEN 'reward:' || idempotency_key END);
    -- 64 bits from the strong random source; the unique index is the last word
    LOOP
        v_voucher := upper(substr(md5(gen_random_uuid()::text), 1, 16));
        EXIT WHEN NOT EXISTS (SELECT FROM loyalty.redemptions x WHERE x.voucher = v_voucher);
    END LOOP;
    INSERT INTO loyalty.redemptions (member_id, reward_id, points, entry_id, voucher, idempotency_key, channel)
    VALUES (member, reward, v_r.point_cost, v_entry, v_voucher, idempotency_key, channel)
    RETURNING redemptions.redemption_id INTO v_id;
    PERFORM loyalty.emit_event(member, 'reward.redeemed',
        jsonb_build_object('reward_id', reward, 'reward_code', v_r.code, 'redemption_id', v_id,
                           'voucher', v_voucher, 'points', v_r.point_cost::bigint));
    RETURN QUERY SELECT v_id, v_voucher, v_r.point_cost;
END $$;
COMMENT ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) IS
    'Redeem a catalog reward: checks window, tier gate, per-member limit and stock atomically, spends the points, issues a voucher code';

CREATE FUNCTION loyalty.cancel_redemption(member bigint, redemption bigint, reason text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_x loyalty.redemptions;
    v_back loyalty.points;
    v_cancel bigint;
BEGIN
    IF member IS NULL OR redemption IS NULL THEN
        RAISE EXCEPTION 'member and redemption must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    SELECT * INTO v_x FROM loyalty.redemptions x WHERE x.member_id = member AND x.redemption_id = redemption;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'redemption % of member % does not exist', redemption, member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_x.status = 'cancelled' THEN
        RAISE EXCEPTION 'redemption % is already cancelled', redemption USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- the points go back to the lots they came from
    v_back := loyalty.reverse(member, v_x.entry_id, NULL, NULL, 'redemption:' || redemption,
                              coalesce(reason, 'redemption cancelled'));
    -- the reverse entry just written (a redemption is cancelled once, under the lock)
    SELECT l.entry_id INTO v_cancel FROM loyalty.ledger l
    WHERE l.member_id = member AND l.reference = 'redemption:' || redemption
      AND l.kind = 'reverse' AND l.source_entry = v_x.entry_id;
    UPDATE loyalty.rewards r SET stock = r.stock + 1 WHERE r.reward_id = v_x.reward_id AND r.stock IS NOT NULL;
    UPDATE loyalty.redemptions x SET status = 'cancelled', cancelled_at = now(), cancel_entry = v_cancel
    WHERE x.member_id = member AND x.redemption_id = redemption;
    RETURN v_back;
END $$;
COMMENT ON FUNCTION loyalty.cancel_redemption(bigint, bigint, text) IS
    'Cancel a redemption: points back to their original lots, the unit back to stock; returns the points given back';

CREATE FUNCTION loyalty.set_redemption_rules(program bigint, min_points loyalty.points DEFAULT '1',
    max_points loyalty.points DEFAULT NULL, max_share_of_order numeric DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    BEGIN
        INSERT INTO loyalty.redemption_rules (program_id, min_points, max_points, max_share_of_order)
        VALUES (set_redemption_rules.program, coalesce(set_redemption_rules.min_points, '1'),
                set_redemption_rules.max_points, set_redemption_rules.max_share_of_order)
        ON CONFLICT (program_id) DO UPDATE SET min_points = EXCLUDED.min_points, max_points = EXCLUDED.max_points,
            max_share_of_order = EXCLUDED.max_share_of_order;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid redemption rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'min_points > 0, max_points >= min_points, 0 < max_share_of_order <= 1.';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
COMMENT ON FUNCTION loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric) IS
    'Limits on paying part of an order with points: minimum and maximum points per order, maximum share of the order amount';

CREATE FUNCTION loyalty.redeem_for_discount(member bigint, order_amount numeric, points loyalty.points,
                                            reference text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_value numeric;
    v_rules loyalty.redemption_rules;
    v_discount numeric;
BEGIN
    IF member IS NULL OR order_amount IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'member, order_amount and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF order_amount = 'NaN' OR order_amount <= 0 OR order_amount = 'Infinity' THEN
        RAISE EXCEPTION 'order_amount must be a positive, finite amount' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id, p.point_value INTO v_program, v_value
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id = a.program_id
    WHERE a.member_id = member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO v_rules FROM loyalty.redemption_rules r WHERE r.program_id = v_program;
    v_rules.min_points := coalesce(v_rules.min_points, '1');
    IF points::bigint < v_rules.min_points::bigint THEN
        RAISE EXCEPTION 'at least % points must be redeemed on an order, got %', v_rules.min_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_rules.max_points IS NOT NULL AND points::bigint > v_rules.max_points::bigint THEN
        RAISE EXCEPTION 'at most % points can be redeemed on an order, got %', v_rules.max_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_discount := points::bigint * v_value;
    IF v_discount > order_amount THEN
        RAISE EXCEPTION 'a discount of % exceeds the order amount %', v_discount, order_amount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    IF v_rules.max_share_of_order IS NOT NULL AND v_discount > order_amount * v_rules.max_share_of_order THEN
        RAISE EXCEPTION 'points may pay at most % of an order (% of %), got a discount of %',
            v_rules.max_share_of_order, order_amount * v_rules.max_share_of_order, order_amount, v_discount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    PERFORM loyalty.redeem(member, points, NULL, reference, idempotency_key);
    RETURN v_discount;
END $$;
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

CREATE FUNCTION loyalty.set_referral_rules(program bigint, referrer_points loyalty.points, referee_points loyalty.points,
    min_purchase_amount numeric DEFAULT 0, max_referrals_per_referrer integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF program IS NULL OR referrer_points IS NULL OR referee_points IS NULL THEN
        RAISE EXCEPTION 'program and both bonuses must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.referral_rules (program_id, referrer_points, referee_points, min_purchase_amount,
                                            max_referrals_per_referrer)
        VALUES (set_referral_rules.program, set_referral_rules.referrer_points, set_referral_rules.referee_points,
                coalesce(set_referral_rules.min_purchase_amount, 0), set_referral_rules.max_referrals_per_referrer)
        ON CONFLICT (program_id) DO UPDATE SET referrer_points = EXCLUDED.referrer_points,
            referee_points = EXCLUDED.referee_points, min_purchase_amount = EXCLUDED.min_purchase_amount,
            max_referrals_per_referrer = EXCLUDED.max_referrals_per_referrer;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid referral rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
COMMENT ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer) IS
    'Set a program''s referral bonuses, qualifying purchase amount and cap per referrer';

CREATE FUNCTION loyalty.referral_code(member bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_code text;
    -- no 0/O, 1/I/L: codes are read aloud and typed by hand
    c_alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
BEGIN
    SELECT a.program_id INTO v_program FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.code INTO v_code FROM loyalty.referral_codes c WHERE c.member_id = member ORDER BY c.created_at LIMIT 1;
    IF FOUND THEN
        RETURN v_code;
    END IF;
    LOOP
        SELECT string_agg(substr(c_alphabet, 1 + floor(random() * length(c_alphabet))::integer, 1), '')
        INTO v_code FROM generate_series(1, 8);
        BEGIN
            INSERT INTO loyalty.referral_codes (member_id, code, program_id) VALUES (member, v_code, v_program);
            RETURN v_code;
        EXCEPTION WHEN unique_violation THEN
            NULL;           -- another member's code: draw again
        END;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.referral_code(bigint) IS 'The member''s referral code (8 unambiguous characters), created on first call';

-- Internal: why new_member may not be referred by referrer, or NULL.  Each
-- reason, once true, stays true (referrals are never deleted, purchases never
-- uncounted), so refer checks them before it locks anything as well as after.
CREATE FUNCTION loyalty.referral_refusal(new_member bigint, referrer bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM loyalty.referrals r WHERE r.member_id = new_member) THEN
        RETURN format('member %s was already referred', new_member);
    END IF;
    IF (SELECT a.purchase_count FROM loyalty.accounts a WHERE a.member_id = new_member) > 0 THEN
        RETURN format('member %s has already made a purchase', new_member);
    END IF;
    -- a loop: the referrer was itself referred, directly or further up, by the new member
    IF EXISTS (WITH RECURSIVE up(m, depth) AS (
                   SELECT r.referrer, 1 FROM loyalty.referrals r WHERE r.member_id = referral_refusal.referrer
                   UNION ALL
                   SELECT r.referrer, up.depth + 1 FROM loyalty.referrals r JOIN up ON r.member_id = up.m
                   WHERE up.depth < 1000)
               SELECT FROM up WHERE up.m = new_member) THEN
        RETURN format('member %s is in the referral chain of member %s', new_member, referrer);
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION loyalty.referral_refusal(bigint, bigint) IS
    'Internal: the reason a referral of new_member by referrer is refused for good (already referred, already bought, a loop), or NULL';

CREATE FUNCTION loyalty.refer(new_member bigint, code text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog bigint;
    v_referrer bigint;
    v_rules loyalty.referral_rules;
    v_n bigint;
    v_why text;
BEGIN
    IF new_member IS NULL OR code IS NULL THEN
        RAISE EXCEPTION 'new_member and code must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.program_id INTO v_prog FROM loyalty.accounts a WHERE a.member_id = new_member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', new_member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.member_id INTO v_referrer FROM loyalty.referral_codes c
    WHERE c.program_id = v_prog AND c.code = upper(refer.code);
    IF NOT FOUND THEN
        IF EXISTS (SELECT FROM loyalty.referral_codes c WHERE c.code = upper(refer.code)) THEN
            RAISE EXCEPTION 'referral refused: code "%" belongs to a member of another program', code
                USING ERRCODE = 'LY020', DETAIL = format('Member %s is in program %s.', new_member, v_prog);
        END IF;
        RAISE EXCEPTION 'referral refused: no member of program % has code "%"', v_prog, code USING ERRCODE = 'LY020';
    END IF;
    IF v_referrer = new_member THEN
        RAISE EXCEPTION 'referral refused: member % cannot refer itself', new_member USING ERRCODE = 'LY020';
    END IF;
    -- A refusal for good is raised before any lock: a purchase of a referred
    -- member locks it, then its referrer, so the reverse pair (the referrer
    -- entering its referee's code) must not wait for a lock.
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    -- both members, in member_id order (no deadlock with another referral)
    PERFORM FROM loyalty.accounts a WHERE a.member_id IN (new_member, v_referrer) ORDER BY a.member_id FOR NO KEY UPDATE;
    SELECT * INTO v_rules FROM loyalty.referral_rules r WHERE r.program_id = v_prog;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'referral refused: program % has no referral rules', v_prog USING ERRCODE = 'LY020',
            HINT = 'Set them with loyalty.set_referral_rules().';
    END IF;
    -- again under the locks: a racing referral or purchase has committed by now
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    IF v_rules.max_referrals_per_referrer IS NOT NULL THEN
        SELECT count(*) INTO v_n FROM loyalty.referrals r WHERE r.referrer = v_referrer;
        IF v_n >= v_rules.max_referrals_per_referrer THEN
            RAISE EXCEPTION 'referral refused: member % has reached % referrals', v_referrer, v_n USING ERRCODE = 'LY020',
                DETAIL = format('The program allows %s referrals per member.', v_rules.max_referrals_per_referrer);
        END IF;
    END IF;
    INSERT INTO loyalty.referrals (member_id, referrer, code) VALUES (new_member, v_referrer, upper(refer.code));
    UPDATE loyalty.accounts a SET referral_pending = true WHERE a.member_id = new_member;
    RETURN v_referrer;
END $$;
COMMENT ON FUNCTION loyalty.refer(bigint, text) IS
    'Link a new member (before any purchase) to the owner of a referral code; refuses self-referral, a second referrer, loops and capped referrers (LY020); returns the referrer';

-- Internal: called by the C earn path with the member's account locked.
CREATE FUNCTION loyalty.referral_purchase(member bigint, entry bigint, amount numeric)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ref loyalty.referrals;
    v_rules loyalty.referral_rules;
BEGIN
    SELECT * INTO v_ref FROM loyalty.referrals r WHERE r.member_id = member AND r.status = 'pending';
    IF NOT FOUND THEN
        UPDATE loyalty.accounts a SET referral_pending = false WHERE a.member_id = member;
        RETURN false;
    END IF;
    SELECT r.* INTO v_rules FROM loyalty.referral_rules r JOIN loyalty.accounts a ON a.program_id = r.program_id
    WHERE a.member_id = member;
    IF amount < coalesce(v_rules.min_purchase_amount, 0) THEN
        RETURN false;           -- not a qualifying purchase: wait for the next one
    END IF;
    IF v_rules.referee_points::bigint > 0 THEN
        PERFORM loyalty.award(member, v_rules.referee_points, 'referral: welcome', NULL, 'referral:' || v_ref.code,
                              'referral:' || member);
    END IF;
    -- a referrer who left (or was merged away) gets nothing, and never blocks the sale
    IF v_rules.referrer_points::bigint > 0
       AND (SELECT a.status FROM loyalty.accounts a WHERE a.member_id = v_ref.referrer) = 'active' THEN
        -- the referrer may be locked after the new member: referrals never form loops
        PERFORM loyalty.award(v_ref.referrer, v_rules.referrer_points, 'referral: member ' || member || ' bought',
                              NULL, 'referral:' || v_ref.code, 'referral:' || member);
    END IF;
    UPDATE loyalty.referrals r SET status = 'rewarded', rewarded_at = now(), entry_id = entry WHERE r.member_id = member;
    UPDATE loyalty.accounts a SET referral_pending = false WHERE a.member_id = member;
    RETURN true;
END $$;
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
CREATE VIEW loyalty.rfm_segment_map AS
SELECT * FROM loyalty.rfm_segments
UNION ALL
SELECT * FROM loyalty.rfm_segments_standard WHERE NOT EXISTS (SELECT FROM loyalty.rfm_segments);
COMMENT ON VIEW loyalty.rfm_segment_map IS 'The RFM segment mapping in force: loyalty.rfm_segments if it has rows, else the standard one';

CREATE VIEW loyalty.member_rfm AS
WITH q AS MATERIALIZED (
    -- quintile boundaries per program: three sorts of one narrow column each
    -- (the account keeps every member's purchase statistics up to date, so
    -- no purchase is rescanned here)
    SELECT a.program_id,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.last_purchase_at) AS r,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_count) AS f,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_amount) AS m
    FROM loyalty.accounts a
    WHERE a.purchase_count > 0 AND a.status <> 'closed'
    GROUP BY a.program_id
), s AS (
    -- score = 1 + the number of quintile boundaries the value lies above,
    -- so equal values always get equal scores
    SELECT a.program_id, a.member_id, a.first_purchase_at, a.last_purchase_at, a.purchase_count,
           a.purchase_days, a.purchase_amount,
           1 + (a.last_purchase_at > q.r[1])::int + (a.last_purchase_at > q.r[2])::int
             + (a.last_purchase_at > q.r[3])::int + (a.last_purchase_at > q.r[4])::int AS r_score,
           1 + (a.purchase_count > q.f[1])::int + (a.purchase_count > q.f[2])::int
             + (a.purchase_count > q.f[3])::int + (a.purchase_count > q.f[4])::int AS f_score,
           1 + (a.purchase_amount > q.m[1])::int + (a.purchase_amount > q.m[2])::int
             + (a.purchase_amount > q.m[3])::int + (a.purchase_amount > q.m[4])::int AS m_score
    FROM loyalty.accounts a JOIN q ON q.program_id = a.program_id
    WHERE a.purchase_count > 0 AND a.status <> 'closed'
), cells AS MATERIALIZED (
    -- the mapping resolved once for the 25 (R, FM) cells, then joined
    SELECT r, fm, (SELECT g.segment FROM loyalty.rfm_segment_map g
                   WHERE r BETWEEN g.r_min AND g.r_max AND fm BETWEEN g.fm_min AND g.fm_max
                   ORDER BY g.priority LIMIT 1) AS segment
    FROM generate_series(1, 5) r, generate_series(1, 5) fm
)
SELECT s.program_id, s.member_id,
       s.first_purchase_at::date AS first_purchase, s.last_purchase_at::date AS last_purchase,
       (current_date - s.last_purchase_at::date)::bigint AS recency_days,
       s.purchase_count AS frequency, s.purchase_days AS purchase_days, s.purchase_amount AS monetary,
       s.r_score::bigint AS r_score, s.f_score::bigint AS f_score, s.m_score::bigint AS m_score,
       (s.r_score * 100 + s.f_score * 10 + s.m_score)::text AS rfm_cell,
       coalesce(c.segment, 'Other') AS segment
FROM s JOIN cells c ON c.r = s.r_score AND c.fm = round((s.f_score + s.m_score) / 2.0);

CREATE VIEW loyalty.segment_summary AS
SELECT r.program_id, r.segment, count(*)::bigint AS members,
       round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY r.program_id), 4) AS share,
       round(avg(r.recency_days), 1) AS avg_recency_days, round(avg(r.frequency), 2) AS avg_frequency,
       round(avg(r.monetary), 2) AS avg_monetary, sum(r.monetary) AS total_monetary
FROM loyalty.member_rfm r
GROUP BY r.program_id, r.segment;

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
CREATE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week')
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH days AS (
        SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
        FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
        WHERE l.program_id = $1 AND l.kind = 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date <= $2
        GROUP BY 1, 2
    ), f AS (
        SELECT d.*, min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, count(*) - 1,
           (max(f.day) - min(f.day))::numeric / u.days,
           ($2 - min(f.day))::numeric / u.days,
           avg(f.spend) FILTER (WHERE f.day > f.first_day),
           min(f.day), max(f.day)
    FROM f, (SELECT CASE $3 WHEN 'day' THEN 1 WHEN 'week' THEN 7 END AS days) u
    WHERE u.days IS NOT NULL
    GROUP BY f.member_id, u.days
$$;
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

CREATE FUNCTION loyalty.fit_models(program bigint, calibration_end date DEFAULT current_date, time_unit text DEFAULT 'week')
RETURNS loyalty.models
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v loyalty.models;
BEGIN
    IF time_unit IS NULL OR time_unit NOT IN ('day', 'week') THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id = program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    v.program_id := program;
    v.fitted_at := clock_timestamp();
    v.calibration_end := coalesce(calibration_end, current_date);
    v.time_unit := time_unit;
    SELECT loyalty.bgnbd_fit(s.x, s.t_x, s."T") INTO v.bgnbd
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s."T" > 0;
    IF v.bgnbd IS NULL THEN
        RAISE EXCEPTION 'program % has no purchases before %', program, v.calibration_end
            USING ERRCODE = 'LY030';
    END IF;
    SELECT loyalty.gamma_gamma_fit(s.x, s.m_x) INTO v.gamma_gamma
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s.x > 0;
    INSERT INTO loyalty.models VALUES (v.*);
    RETURN v;
END $$;
COMMENT ON FUNCTION loyalty.fit_models(bigint, date, text) IS
    'Fit BG/NBD and Gamma-Gamma on a program''s purchases up to calibration_end and store them; LY030 if the data do not identify a model';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
CREATE PROCEDURE loyalty.refresh_models(time_unit text DEFAULT 'week', calibration_end date DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_program bigint;
BEGIN
    FOR v_program IN SELECT p.program_id FROM loyalty.programs p ORDER BY p.program_id LOOP
        BEGIN
            -- current_date is SQL syntax, not a function a search_path could redirect
            PERFORM loyalty.fit_models(v_program, COALESCE(calibration_end, current_date), time_unit);
            RAISE NOTICE 'loyalty.refresh_models: program % fitted', v_program;
        EXCEPTION WHEN SQLSTATE 'LY030' THEN
            RAISE NOTICE 'loyalty.refresh_models: program % not fitted: %', v_program, SQLERRM;
        END;
        COMMIT;
    END LOOP;
END $$;
COMMENT ON PROCEDURE loyalty.refresh_models(text, date) IS
    'Batch job (e.g. nightly with pg_cron): refit the models of every program on its purchases up to calibration_end (default today), one commit per program; programs whose data cannot identify a model are reported and skipped';

-- CLV over `horizon` time units with a discount rate per unit: expected spend
-- per purchase times the discounted expected purchases of each unit.
CREATE FUNCTION loyalty.clv(m loyalty.models, x float8, t_x float8, "T" float8, m_x float8,
                            horizon integer DEFAULT 52, discount float8 DEFAULT 0.0019)
RETURNS float8
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(loyalty.gamma_gamma_expected(($1.gamma_gamma).p, ($1.gamma_gamma).q, ($1.gamma_gamma).gamma, $2, coalesce($5, 0)), 0)
         * sum((loyalty.bgnbd_expected(($1.bgnbd).r, ($1.bgnbd).alpha, ($1.bgnbd).a, ($1.bgnbd).b, $2, $3, $4, k)
                - loyalty.bgnbd_expected(($1.bgnbd).r, ($1.bgnbd).alpha, ($1.bgnbd).a, ($1.bgnbd).b, $2, $3, $4, k - 1))
               / power(1 + $7, k))
    FROM generate_series(1, $6) k
$$;
COMMENT ON FUNCTION loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) IS
    'Customer lifetime value over horizon time units, discounted per unit (default 52 weeks at 10% a year)';

CREATE VIEW loyalty.member_predictions AS
WITH m AS (
    SELECT DISTINCT ON (x.program_id) x.* FROM loyalty.models x ORDER BY x.program_id, x.fitted_at DESC
)
SELECT m.program_id, s.member_id, m.fitted_at, m.time_unit,
       s.x::bigint AS repeat_purchases, round(s.t_x, 2) AS t_x, round(s."T", 2) AS customer_age,
       round(loyalty.bgnbd_p_alive((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T")::numeric, 4) AS p_alive,
       round(loyalty.bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T",
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END)::numeric, 4) AS expected_purchases_year,
       round(loyalty.gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, s.x, coalesce(s.m_x, 0))::numeric, 2)
           AS expected_avg_spend,
       round(loyalty.clv(m, s.x, s.t_x, s."T", s.m_x,
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END,
             CASE m.time_unit WHEN 'week' THEN 0.0019 ELSE 0.00026 END)::numeric, 2) AS clv_year
FROM m, LATERAL loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit) s;

CREATE VIEW loyalty.churn_risk AS
SELECT p.program_id, p.member_id, p.p_alive, round(1 - p.p_alive, 4) AS churn_risk,
       CASE WHEN p.p_alive < 0.3 THEN 'high' WHEN p.p_alive < 0.6 THEN 'medium' ELSE 'low' END AS risk_band,
       p.expected_purchases_year, p.clv_year, a.last_purchase_at::date AS last_purchase, a.purchase_count AS purchases
FROM loyalty.member_predictions p JOIN loyalty.accounts a ON a.member_id = p.member_id;

-- KPI and distribution views --------------------------------------------------------

CREATE VIEW loyalty.kpi_daily AS
WITH l AS (
    SELECT l.program_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, l.kind, l.points::bigint AS points,
           l.amount, l.member_id
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
), n AS (
    SELECT m.program_id, (m.joined_at AT TIME ZONE p.time_zone)::date AS day, count(*) AS new_members
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id GROUP BY 1, 2
), d AS (
    SELECT l.program_id, l.day,
           count(DISTINCT l.member_id) FILTER (WHERE l.kind = 'earn') AS active_members,
           count(*) FILTER (WHERE l.kind = 'earn') AS purchases,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'earn'), 0) AS revenue,
           coalesce(sum(l.points) FILTER (WHERE l.kind IN ('earn', 'award') OR (l.kind = 'adjust' AND l.points > 0)), 0) AS issued,
           coalesce(-sum(l.points) FILTER (WHERE l.kind IN ('redeem', 'hold')), 0)
             - coalesce(sum(l.points) FILTER (WHERE l.kind = 'release'), 0) AS redeemed,
           coalesce(-sum(l.points) FILTER (WHERE l.kind = 'expire'), 0) AS expired
    FROM l GROUP BY 1, 2
)
SELECT coalesce(d.program_id, n.program_id) AS program_id, coalesce(d.day, n.day) AS day,
       coalesce(n.new_members, 0)::bigint AS new_members, coalesce(d.active_members, 0)::bigint AS active_members,
       coalesce(d.purchases, 0)::bigint AS purchases, coalesce(d.revenue, 0) AS revenue,
       CASE WHEN d.purchases > 0 THEN round(d.revenue / d.purchases, 2) END AS avg_order_value,
       coalesce(d.issued, 0)::bigint AS points_issued, coalesce(d.redeemed, 0)::bigint AS points_redeemed,
       coalesce(d.expired, 0)::bigint AS points_expired
FROM d FULL JOIN n ON n.program_id = d.program_id AND n.day = d.day;

CREATE VIEW loyalty.kpi_monthly AS
WITH k AS (
    SELECT program_id, date_trunc('month', day)::date AS month, sum(new_members) AS new_members,
           sum(purchases) AS purchases, sum(revenue) AS revenue, sum(points_issued) AS points_issued,
           sum(points_redeemed) AS points_redeemed, sum(points_expired) AS points_expired
    FROM loyalty.kpi_daily GROUP BY 1, 2
), b AS (
    -- buyers of the month, and those of them who had bought before it
    SELECT x.program_id, x.month, count(*) AS buyers,
           count(*) FILTER (WHERE x.first_month < x.month) AS repeat_buyers
    FROM (SELECT DISTINCT l.program_id, l.member_id,
                 date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month,
                 min(date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date)
                     OVER (PARTITION BY l.member_id) AS first_month
          FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
          WHERE l.kind = 'earn') x
    GROUP BY 1, 2
)
SELECT k.program_id, k.month, k.new_members::bigint AS new_members, coalesce(b.buyers, 0)::bigint AS active_members,
       k.purchases::bigint AS purchases, k.revenue,
       CASE WHEN k.purchases > 0 THEN round(k.revenue / k.purchases, 2) END AS avg_order_value,
       CASE WHEN b.buyers > 0 THEN round(b.repeat_buyers * 1.0 / b.buyers, 4) END AS repeat_purchase_rate,
       k.points_issued::bigint AS points_issued, k.points_redeemed::bigint AS points_redeemed,
       k.points_expired::bigint AS points_expired,
       CASE WHEN k.points_issued > 0 THEN round(k.points_redeemed * 1.0 / k.points_issued, 4) END AS redemption_rate,
       CASE WHEN k.points_issued > 0 THEN round(k.points_expired * 1.0 / k.points_issued, 4) END AS breakage
FROM k LEFT JOIN b ON b.program_id = k.program_id AND b.month = k.month;

CREATE VIEW loyalty.kpi_summary AS
SELECT p.program_id, p.name AS program, p.currency,
       count(a.member_id)::bigint AS members,
       count(a.member_id) FILTER (WHERE a.last_purchase_at > now() - interval '90 days')::bigint AS active_members_90d,
       CASE WHEN count(a.member_id) FILTER (WHERE a.purchase_count > 0) > 0
            THEN round(count(a.member_id) FILTER (WHERE a.purchase_count > 1) * 1.0
                       / count(a.member_id) FILTER (WHERE a.purchase_count > 0), 4) END AS repeat_purchase_rate,
       CASE WHEN sum(a.purchase_count) > 0 THEN round(sum(a.purchase_amount) / sum(a.purchase_count), 2) END AS avg_order_value,
       coalesce(sum(a.balance::bigint), 0)::bigint AS points_outstanding,
       coalesce(sum(a.held::bigint), 0)::bigint AS points_held,
       (SELECT coalesce(sum(l.remaining::bigint), 0) FROM loyalty.lots l JOIN loyalty.accounts x ON x.member_id = l.member_id
        WHERE x.program_id = p.program_id AND l.remaining::bigint > 0 AND l.vests_at > now())::bigint AS points_pending,
       coalesce(sum(a.lifetime_earned::bigint), 0)::bigint AS points_issued,
       coalesce(sum(a.lifetime_redeemed::bigint), 0)::bigint AS points_redeemed,
       coalesce(sum(a.lifetime_expired::bigint), 0)::bigint AS points_expired,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_redeemed::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS redemption_rate,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_expired::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS breakage,
       round(coalesce(sum(a.balance::bigint + a.held::bigint), 0) * p.point_value, 2) AS liability
FROM loyalty.programs p LEFT JOIN loyalty.accounts a ON a.program_id = p.program_id AND a.status <> 'closed'
GROUP BY p.program_id;

CREATE VIEW loyalty.tier_distribution AS
SELECT a.program_id, coalesce(loyalty.tier_name(a.tier), 'none') AS tier, loyalty.tier_rank(a.tier)::bigint AS tier_rank,
       count(*)::bigint AS members, round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY a.program_id), 4) AS share
FROM loyalty.accounts a WHERE a.status <> 'closed'
GROUP BY a.program_id, a.tier;

CREATE VIEW loyalty.channel_distribution AS
SELECT l.program_id, coalesce(l.channel, 'unknown') AS channel, count(*)::bigint AS purchases,
       count(DISTINCT l.member_id)::bigint AS members, sum(l.amount) AS revenue,
       sum(l.points::bigint)::bigint AS points_issued
FROM loyalty.ledger l WHERE l.kind = 'earn'
GROUP BY 1, 2;

CREATE VIEW loyalty.member_mix AS
SELECT m.program_id, coalesce(m.source_channel, 'unknown') AS source_channel, coalesce(m.region, 'unknown') AS region,
       count(*)::bigint AS members, count(*) FILTER (WHERE a.purchase_count > 0)::bigint AS buyers
FROM loyalty.members m JOIN loyalty.accounts a ON a.member_id = m.member_id
WHERE m.status <> 'closed'
GROUP BY 1, 2, 3;

CREATE VIEW loyalty.cohort_retention AS
WITH buys AS (
    SELECT DISTINCT l.program_id, l.member_id, date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id WHERE l.kind = 'earn'
), c AS (
    SELECT b.*, min(b.month) OVER (PARTITION BY b.member_id) AS cohort FROM buys b
)
SELECT c.program_id, c.cohort AS cohort_month,
       ((extract(year FROM c.month) - extract(year FROM c.cohort)) * 12
         + extract(month FROM c.month) - extract(month FROM c.cohort))::bigint AS months_since_first,
       count(*)::bigint AS active_members,
       max(s.size)::bigint AS cohort_size,
       round(count(*) * 1.0 / max(s.size), 4) AS retention
FROM c JOIN (SELECT c2.program_id, c2.cohort, count(DISTINCT c2.member_id) AS size FROM c c2 GROUP BY 1, 2) s
  ON s.program_id = c.program_id AND s.cohort = c.cohort
GROUP BY 1, 2, 3;

CREATE VIEW loyalty.reward_popularity AS
SELECT r.program_id, r.reward_id, r.code, r.name, count(x.redemption_id)::bigint AS redemptions,
       count(x.redemption_id) FILTER (WHERE x.status = 'cancelled')::bigint AS cancelled,
       coalesce(sum(x.points::bigint) FILTER (WHERE x.status = 'issued'), 0)::bigint AS points_spent,
       count(DISTINCT x.member_id)::bigint AS members, r.stock
FROM loyalty.rewards r LEFT JOIN loyalty.redemptions x ON x.reward_id = r.reward_id
GROUP BY r.reward_id;

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
