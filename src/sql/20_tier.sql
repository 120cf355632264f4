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

