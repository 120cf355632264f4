-- points with integers (of any width, widened to bigint): points + 1 stays
-- points (overflow-checked), points = 5 compares as points.  Without these
-- the implicit cast to numeric would answer them in numeric.
CREATE FUNCTION loyalty.points_pl_int8(loyalty.points, bigint) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_pl' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.int8_pl_points(bigint, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_pl' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.points_mi_int8(loyalty.points, bigint) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mi' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.int8_mi_points(bigint, loyalty.points) RETURNS loyalty.points
    AS 'MODULE_PATHNAME', 'points_mi' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR loyalty.+ (LEFTARG = loyalty.points, RIGHTARG = bigint,
    FUNCTION = loyalty.points_pl_int8, COMMUTATOR = OPERATOR(loyalty.+));
CREATE OPERATOR loyalty.+ (LEFTARG = bigint, RIGHTARG = loyalty.points,
    FUNCTION = loyalty.int8_pl_points, COMMUTATOR = OPERATOR(loyalty.+));
CREATE OPERATOR loyalty.- (LEFTARG = loyalty.points, RIGHTARG = bigint,
    FUNCTION = loyalty.points_mi_int8);
CREATE OPERATOR loyalty.- (LEFTARG = bigint, RIGHTARG = loyalty.points,
    FUNCTION = loyalty.int8_mi_points);
CREATE FUNCTION loyalty.points_eq_int8(loyalty.points, bigint) RETURNS boolean
    AS 'int8eq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_ne_int8(loyalty.points, bigint) RETURNS boolean
    AS 'int8ne' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_lt_int8(loyalty.points, bigint) RETURNS boolean
    AS 'int8lt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_le_int8(loyalty.points, bigint) RETURNS boolean
    AS 'int8le' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_gt_int8(loyalty.points, bigint) RETURNS boolean
    AS 'int8gt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.points_ge_int8(loyalty.points, bigint) RETURNS boolean
    AS 'int8ge' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.int8_eq_points(bigint, loyalty.points) RETURNS boolean
    AS 'int8eq' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.int8_ne_points(bigint, loyalty.points) RETURNS boolean
    AS 'int8ne' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.int8_lt_points(bigint, loyalty.points) RETURNS boolean
    AS 'int8lt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.int8_le_points(bigint, loyalty.points) RETURNS boolean
    AS 'int8le' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.int8_gt_points(bigint, loyalty.points) RETURNS boolean
    AS 'int8gt' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.int8_ge_points(bigint, loyalty.points) RETURNS boolean
    AS 'int8ge' LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OPERATOR loyalty.= (LEFTARG = loyalty.points, RIGHTARG = bigint, FUNCTION = loyalty.points_eq_int8,
    COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>), RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR loyalty.<> (LEFTARG = loyalty.points, RIGHTARG = bigint, FUNCTION = loyalty.points_ne_int8,
    COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=), RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR loyalty.< (LEFTARG = loyalty.points, RIGHTARG = bigint, FUNCTION = loyalty.points_lt_int8,
    COMMUTATOR = OPERATOR(loyalty.>), NEGATOR = OPERATOR(loyalty.>=), RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR loyalty.<= (LEFTARG = loyalty.points, RIGHTARG = bigint, FUNCTION = loyalty.points_le_int8,
    COMMUTATOR = OPERATOR(loyalty.>=), NEGATOR = OPERATOR(loyalty.>), RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR loyalty.> (LEFTARG = loyalty.points, RIGHTARG = bigint, FUNCTION = loyalty.points_gt_int8,
    COMMUTATOR = OPERATOR(loyalty.<), NEGATOR = OPERATOR(loyalty.<=), RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR loyalty.>= (LEFTARG = loyalty.points, RIGHTARG = bigint, FUNCTION = loyalty.points_ge_int8,
    COMMUTATOR = OPERATOR(loyalty.<=), NEGATOR = OPERATOR(loyalty.<), RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR loyalty.= (LEFTARG = bigint, RIGHTARG = loyalty.points, FUNCTION = loyalty.int8_eq_points,
    COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>), RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR loyalty.<> (LEFTARG = bigint, RIGHTARG = loyalty.points, FUNCTION = loyalty.int8_ne_points,
    COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=), RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR loyalty.< (LEFTARG = bigint, RIGHTARG = loyalty.points, FUNCTION = loyalty.int8_lt_points,
    COMMUTATOR = OPERATOR(loyalty.>), NEGATOR = OPERATOR(loyalty.>=), RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR loyalty.<= (LEFTARG = bigint, RIGHTARG = loyalty.points, FUNCTION = loyalty.int8_le_points,
    COMMUTATOR = OPERATOR(loyalty.>=), NEGATOR = OPERATOR(loyalty.>), RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR loyalty.> (LEFTARG = bigint, RIGHTARG = loyalty.points, FUNCTION = loyalty.int8_gt_points,
    COMMUTATOR = OPERATOR(loyalty.<), NEGATOR = OPERATOR(loyalty.<=), RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR loyalty.>= (LEFTARG = bigint, RIGHTARG = loyalty.points, FUNCTION = loyalty.int8_ge_points,
    COMMUTATOR = OPERATOR(loyalty.<=), NEGATOR = OPERATOR(loyalty.<), RESTRICT = scalargesel, JOIN = scalargejoinsel);
