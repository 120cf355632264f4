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

-- comparison: C functions of this module (see points.c for why not int8's own)
CREATE FUNCTION loyalty.points_eq(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_ne(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_lt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_le(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_gt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_ge(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_cmp(loyalty.points, loyalty.points) RETURNS integer
    AS 'MODULE_PATHNAME', 'points_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
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

#include "parts/points_int8_operators.sql"

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
-- by assignment, but to numeric implicitly (see below).  The points-bigint
-- operators above keep points + 1, points = 5 and the like points operators.
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
-- points to numeric implicitly: a points value passes wherever a numeric
-- does, as every API argument of points does (declared numeric, so that
-- drivers' integers, decimals and strings all reach it; whole numbers only).
CREATE CAST (loyalty.points AS numeric) WITH FUNCTION loyalty.points_to_numeric(loyalty.points) AS IMPLICIT;

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

