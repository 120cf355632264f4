/*
 * points.h
 *		The points type: an exact, overflow-checked signed 64-bit count.
 *
 * A points value is stored exactly like int8 (8 bytes, passed by value), so
 * int8 <-> points casts are binary coercions and the btree/hash support of
 * int8 serves points too (as contrib/isn does for its types).
 */
#ifndef LOYALTY_POINTS_H
#define LOYALTY_POINTS_H

#include "postgres.h"

#include "fmgr.h"

typedef int64 Points;

#define DatumGetPoints(X)		DatumGetInt64(X)
#define PointsGetDatum(X)		Int64GetDatum(X)
#define PG_GETARG_POINTS(n)		DatumGetPoints(PG_GETARG_DATUM(n))
#define PG_RETURN_POINTS(x)		return PointsGetDatum(x)

/* Overflow-checked helpers usable from other files (ledger, rules). */
extern Points points_add_checked(Points a, Points b);
extern Points points_sub_checked(Points a, Points b);

/* How a fractional product is turned into whole points. */
typedef enum PointsRounding
{
	POINTS_ROUND_HALF_UP,		/* half away from zero (numeric round()) */
	POINTS_ROUND_FLOOR,			/* towards minus infinity */
	POINTS_ROUND_CEIL,			/* towards plus infinity */
	POINTS_ROUND_TRUNC			/* towards zero */
} PointsRounding;

extern Points points_from_numeric_rounded(Datum num, PointsRounding mode);
extern PointsRounding points_rounding_from_name(const char *name);
extern Datum points_from_numeric(PG_FUNCTION_ARGS);

#endif							/* LOYALTY_POINTS_H */
