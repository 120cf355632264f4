/*
 * points.c
 *		The points type: I/O, overflow-checked arithmetic, numeric products
 *		with an explicit rounding rule, and conversions.
 *
 * Comparison, hashing and the int8 casts reuse PostgreSQL's int8 support
 * (declared LANGUAGE internal in the install script), because a points value
 * is an int64 with identical ordering; everything that can overflow or
 * round lives here so that the error says "points" and never wraps.
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "common/int.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "loyalty.h"
#include "points.h"

PG_FUNCTION_INFO_V1(points_in);
PG_FUNCTION_INFO_V1(points_out);
PG_FUNCTION_INFO_V1(points_recv);
PG_FUNCTION_INFO_V1(points_send);
PG_FUNCTION_INFO_V1(points_pl);
PG_FUNCTION_INFO_V1(points_mi);
PG_FUNCTION_INFO_V1(points_um);
PG_FUNCTION_INFO_V1(points_abs);
PG_FUNCTION_INFO_V1(points_smaller);
PG_FUNCTION_INFO_V1(points_larger);
PG_FUNCTION_INFO_V1(points_mul_int4);
PG_FUNCTION_INFO_V1(int4_mul_points);
PG_FUNCTION_INFO_V1(points_mul_numeric);
PG_FUNCTION_INFO_V1(numeric_mul_points);
PG_FUNCTION_INFO_V1(points_mul_floor);
PG_FUNCTION_INFO_V1(points_mul_ceil);
PG_FUNCTION_INFO_V1(points_mul_round);
PG_FUNCTION_INFO_V1(points_mul_trunc);
PG_FUNCTION_INFO_V1(points_mul_rounded);
PG_FUNCTION_INFO_V1(points_div);
PG_FUNCTION_INFO_V1(points_from_numeric);
PG_FUNCTION_INFO_V1(points_to_int4);
PG_FUNCTION_INFO_V1(points_value);

/* Raise the one error every overflowing points operation raises. */
static void
PointsOutOfRange(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("points out of range"),
			 errdetail("The result of %s does not fit in a signed 64-bit count of points.", what)));
}

/* a + b, raising 22003 instead of wrapping. */
Points
points_add_checked(Points a, Points b)
{
	Points		result;

	if (unlikely(pg_add_s64_overflow(a, b, &result)))
		PointsOutOfRange("an addition");
	return result;
}

/* a - b, raising 22003 instead of wrapping. */
Points
points_sub_checked(Points a, Points b)
{
	Points		result;

	if (unlikely(pg_sub_s64_overflow(a, b, &result)))
		PointsOutOfRange("a subtraction");
	return result;
}

/*
 * Text input: optional surrounding white space, an optional sign, and one or
 * more ASCII digits.  No separators, exponent, fraction or suffix: a points
 * literal has exactly one reading.
 */
Datum
points_in(PG_FUNCTION_ARGS)
{
	const char *str = PG_GETARG_CSTRING(0);
	const char *p = str;
	bool		neg = false;
	uint64		acc = 0;
	int			ndigits = 0;

	while (*p && isspace((unsigned char) *p))
		p++;
	if (*p == '-' || *p == '+')
		neg = (*p++ == '-');
	while (*p >= '0' && *p <= '9')
	{
		uint64		digit = (uint64) (*p - '0');

		/* |INT64_MIN| = INT64_MAX + 1 is the largest magnitude we accept */
		if (acc > ((uint64) PG_INT64_MAX + 1 - digit) / 10)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value \"%s\" is out of range for type points", str),
					 errdetail("A points value must lie between %lld and %lld.",
							   (long long) PG_INT64_MIN, (long long) PG_INT64_MAX)));
		acc = acc * 10 + digit;
		ndigits++;
		p++;
	}
	while (*p && isspace((unsigned char) *p))
		p++;

	if (ndigits == 0 || *p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type points: \"%s\"", str),
				 errdetail("A points value is an optional sign followed by decimal digits."),
				 errhint("Write whole points without separators, fractions or units, e.g. '1500' or '-20'.")));

	if (!neg && acc > (uint64) PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value \"%s\" is out of range for type points", str),
				 errdetail("A points value must lie between %lld and %lld.",
						   (long long) PG_INT64_MIN, (long long) PG_INT64_MAX)));

	/* negating in unsigned arithmetic is well defined, also for INT64_MIN */
	PG_RETURN_POINTS(neg ? (Points) (0 - acc) : (Points) acc);
}

/* Canonical text output: optional minus sign and digits. */
Datum
points_out(PG_FUNCTION_ARGS)
{
	Points		p = PG_GETARG_POINTS(0);
	char		buf[MAXINT8LEN + 1];

	pg_lltoa(p, buf);
	PG_RETURN_CSTRING(pstrdup(buf));
}

/* Binary input: a big-endian int64; every 64-bit value is a valid count. */
Datum
points_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);

	if (buf->len - buf->cursor != (int) sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary representation of type points"),
				 errdetail("Expected 8 bytes, got %d.", buf->len - buf->cursor)));
	PG_RETURN_POINTS((Points) pq_getmsgint64(buf));
}

/* Binary output: a big-endian int64. */
Datum
points_send(PG_FUNCTION_ARGS)
{
	Points		p = PG_GETARG_POINTS(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, p);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* points + points */
Datum
points_pl(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(points_add_checked(PG_GETARG_POINTS(0), PG_GETARG_POINTS(1)));
}

/* points - points */
Datum
points_mi(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(points_sub_checked(PG_GETARG_POINTS(0), PG_GETARG_POINTS(1)));
}

/* - points (the negation of the most negative value overflows) */
Datum
points_um(PG_FUNCTION_ARGS)
{
	Points		p = PG_GETARG_POINTS(0);

	if (unlikely(p == PG_INT64_MIN))
		PointsOutOfRange("a negation");
	PG_RETURN_POINTS(-p);
}

/* abs(points) */
Datum
points_abs(PG_FUNCTION_ARGS)
{
	Points		p = PG_GETARG_POINTS(0);

	if (unlikely(p == PG_INT64_MIN))
		PointsOutOfRange("abs()");
	PG_RETURN_POINTS(p < 0 ? -p : p);
}

/* Transition and combine function of min(points). */
Datum
points_smaller(PG_FUNCTION_ARGS)
{
	Points		a = PG_GETARG_POINTS(0);
	Points		b = PG_GETARG_POINTS(1);

	PG_RETURN_POINTS(a < b ? a : b);
}

/* Transition and combine function of max(points). */
Datum
points_larger(PG_FUNCTION_ARGS)
{
	Points		a = PG_GETARG_POINTS(0);
	Points		b = PG_GETARG_POINTS(1);

	PG_RETURN_POINTS(a > b ? a : b);
}

/* a * n for an integer factor, overflow-checked. */
static Points
PointsMulInt(Points a, int64 n)
{
	Points		result;

	if (unlikely(pg_mul_s64_overflow(a, n, &result)))
		PointsOutOfRange("a multiplication");
	return result;
}

/* points * integer */
Datum
points_mul_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulInt(PG_GETARG_POINTS(0), PG_GETARG_INT32(1)));
}

/* integer * points */
Datum
int4_mul_points(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulInt(PG_GETARG_POINTS(1), PG_GETARG_INT32(0)));
}

/* Refuse NaN and infinities where a finite number of points is meant. */
static void
CheckFiniteNumeric(Numeric num, const char *what)
{
	if (numeric_is_nan(num))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NaN", what),
				 errhint("Pass a finite number.")));
	if (numeric_is_inf(num))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s must not be infinite", what),
				 errhint("Pass a finite number.")));
}

/* Convert a whole numeric to points, raising 22003 when it does not fit. */
static Points
WholeNumericToPoints(Numeric whole)
{
	static const int64 bounds[2] = {PG_INT64_MIN, PG_INT64_MAX};
	Datum		d = NumericGetDatum(whole);

	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, d,
										  NumericGetDatum(int64_to_numeric(bounds[0])))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, d,
										  NumericGetDatum(int64_to_numeric(bounds[1])))) > 0)
		PointsOutOfRange("a conversion from numeric");
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, d));
}

/*
 * Round a finite numeric to whole points by the given rule and convert it.
 * Exported for the earning rules, which apply a program's rounding rule.
 */
Points
points_from_numeric_rounded(Datum num, PointsRounding mode)
{
	Datum		whole;

	CheckFiniteNumeric(DatumGetNumeric(num), "a points amount");
	switch (mode)
	{
		case POINTS_ROUND_FLOOR:
			whole = DirectFunctionCall1(numeric_floor, num);
			break;
		case POINTS_ROUND_CEIL:
			whole = DirectFunctionCall1(numeric_ceil, num);
			break;
		case POINTS_ROUND_TRUNC:
			whole = DirectFunctionCall2(numeric_trunc, num, Int32GetDatum(0));
			break;
		case POINTS_ROUND_HALF_UP:
		default:
			whole = DirectFunctionCall2(numeric_round, num, Int32GetDatum(0));
			break;
	}
	return WholeNumericToPoints(DatumGetNumeric(whole));
}

/* Map a rounding rule's SQL name to the enum; unknown names are an error. */
PointsRounding
points_rounding_from_name(const char *name)
{
	if (strcmp(name, "round") == 0 || strcmp(name, "half_up") == 0)
		return POINTS_ROUND_HALF_UP;
	if (strcmp(name, "floor") == 0)
		return POINTS_ROUND_FLOOR;
	if (strcmp(name, "ceil") == 0)
		return POINTS_ROUND_CEIL;
	if (strcmp(name, "trunc") == 0)
		return POINTS_ROUND_TRUNC;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown rounding rule \"%s\"", name),
			 errhint("Use one of round, floor, ceil or trunc.")));
	pg_unreachable();
}

/* points * numeric, rounded by the given rule. */
static Points
PointsMulNumeric(Points a, Numeric factor, PointsRounding mode)
{
	Datum		product;

	CheckFiniteNumeric(factor, "a points multiplier");
	product = DirectFunctionCall2(numeric_mul,
								  NumericGetDatum(int64_to_numeric(a)),
								  NumericGetDatum(factor));
	return points_from_numeric_rounded(product, mode);
}

/* points * numeric: the exact product rounded half away from zero. */
Datum
points_mul_numeric(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulNumeric(PG_GETARG_POINTS(0), PG_GETARG_NUMERIC(1),
									  POINTS_ROUND_HALF_UP));
}

/* numeric * points, the commutator of the above. */
Datum
numeric_mul_points(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulNumeric(PG_GETARG_POINTS(1), PG_GETARG_NUMERIC(0),
									  POINTS_ROUND_HALF_UP));
}

/* points_mul_floor(points, numeric): product rounded towards minus infinity. */
Datum
points_mul_floor(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulNumeric(PG_GETARG_POINTS(0), PG_GETARG_NUMERIC(1),
									  POINTS_ROUND_FLOOR));
}

/* points_mul_ceil(points, numeric): product rounded towards plus infinity. */
Datum
points_mul_ceil(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulNumeric(PG_GETARG_POINTS(0), PG_GETARG_NUMERIC(1),
									  POINTS_ROUND_CEIL));
}

/* points_mul_round(points, numeric): product rounded half away from zero. */
Datum
points_mul_round(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulNumeric(PG_GETARG_POINTS(0), PG_GETARG_NUMERIC(1),
									  POINTS_ROUND_HALF_UP));
}

/* points_mul_trunc(points, numeric): product rounded towards zero. */
Datum
points_mul_trunc(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTS(PointsMulNumeric(PG_GETARG_POINTS(0), PG_GETARG_NUMERIC(1),
									  POINTS_ROUND_TRUNC));
}

/* points_mul(points, numeric, rule text): the rule named at run time. */
Datum
points_mul_rounded(PG_FUNCTION_ARGS)
{
	char	   *rule = text_to_cstring(PG_GETARG_TEXT_PP(2));

	PG_RETURN_POINTS(PointsMulNumeric(PG_GETARG_POINTS(0), PG_GETARG_NUMERIC(1),
									  points_rounding_from_name(rule)));
}

/* points / points: the exact ratio as numeric. */
Datum
points_div(PG_FUNCTION_ARGS)
{
	Points		a = PG_GETARG_POINTS(0);
	Points		b = PG_GETARG_POINTS(1);

	if (b == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DIVISION_BY_ZERO),
				 errmsg("division by zero"),
				 errdetail("The divisor is zero points.")));
	return DirectFunctionCall2(numeric_div,
							   NumericGetDatum(int64_to_numeric(a)),
							   NumericGetDatum(int64_to_numeric(b)));
}

/*
 * numeric -> points: only whole numbers convert; a fraction is an error, not
 * a silent rounding (use points_mul_* or round() to choose a rule).
 */
Datum
points_from_numeric(PG_FUNCTION_ARGS)
{
	Numeric		num = PG_GETARG_NUMERIC(0);
	Datum		whole;

	CheckFiniteNumeric(num, "a points value");
	whole = DirectFunctionCall2(numeric_trunc, NumericGetDatum(num), Int32GetDatum(0));
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, whole, NumericGetDatum(num))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("numeric value %s is not a whole number of points",
						DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)))),
				 errhint("Round it first with round(), floor(), ceil() or trunc(), "
						 "or multiply with loyalty.points_mul_floor() and friends.")));
	PG_RETURN_POINTS(WholeNumericToPoints(DatumGetNumeric(whole)));
}

/* points -> integer, refusing values outside int4. */
Datum
points_to_int4(PG_FUNCTION_ARGS)
{
	Points		p = PG_GETARG_POINTS(0);

	if (unlikely(p < PG_INT32_MIN || p > PG_INT32_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("points value %lld is out of range for type integer", (long long) p),
				 errhint("Cast to bigint or numeric instead.")));
	PG_RETURN_INT32((int32) p);
}

/*
 * points_value(points, rate): the monetary value of a number of points when
 * one point is worth `rate` (e.g. 0.01).  Exact: no rounding.
 */
Datum
points_value(PG_FUNCTION_ARGS)
{
	Points		p = PG_GETARG_POINTS(0);
	Numeric		rate = PG_GETARG_NUMERIC(1);

	if (numeric_is_nan(rate) || numeric_is_inf(rate) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(rate),
										  NumericGetDatum(int64_to_numeric(0)))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the value of a point must be a finite, non-negative number"),
				 errhint("Pass the money value of one point, e.g. 0.01.")));
	return DirectFunctionCall2(numeric_mul,
							   NumericGetDatum(int64_to_numeric(p)),
							   NumericGetDatum(rate));
}

/*
 * Comparisons.  Their representation is int8's, but they are C functions of
 * this module rather than LANGUAGE internal aliases of int8lt & co.: looking
 * up an internal function whose OID is not a built-in one scans the whole
 * built-in table by name, and the executor does that lookup for every CHECK
 * and partial-index predicate of every write statement.
 */
#define POINTS_CMP_FN(name, op) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(PG_GETARG_INT64(0) op PG_GETARG_INT64(1)); \
}

POINTS_CMP_FN(points_eq, ==)
POINTS_CMP_FN(points_ne, !=)
POINTS_CMP_FN(points_lt, <)
POINTS_CMP_FN(points_le, <=)
POINTS_CMP_FN(points_gt, >)
POINTS_CMP_FN(points_ge, >=)

PG_FUNCTION_INFO_V1(points_cmp);
Datum
points_cmp(PG_FUNCTION_ARGS)
{
	int64		a = PG_GETARG_INT64(0);
	int64		b = PG_GETARG_INT64(1);

	PG_RETURN_INT32(a < b ? -1 : (a > b ? 1 : 0));
}
