/*
 * tier.h
 *		The tier type: a tier level that orders by rank and reads by name.
 *
 * The value carries both its rank and its name, so input needs no table and
 * values survive COPY and dump/restore in any order.
 */
#ifndef LOYALTY_TIER_H
#define LOYALTY_TIER_H

#include "postgres.h"

#include "fmgr.h"

#define TIER_MAX_RANK	32767
#define TIER_MAX_NAME	64

typedef struct Tier
{
	int32		vl_len_;		/* varlena header */
	int32		rank;
	char		name[FLEXIBLE_ARRAY_MEMBER];	/* not NUL-terminated */
} Tier;

#define TIER_NAME_LEN(t)		(VARSIZE(t) - offsetof(Tier, name))
#define DatumGetTierP(X)		((Tier *) PG_DETOAST_DATUM(X))
#define PG_GETARG_TIER_P(n)		DatumGetTierP(PG_GETARG_DATUM(n))
#define PG_RETURN_TIER_P(x)		PG_RETURN_POINTER(x)

extern Tier *make_tier(int32 rank, const char *name, int len);
extern Datum tier_out(PG_FUNCTION_ARGS);
extern Datum tier_eq(PG_FUNCTION_ARGS);

#endif							/* LOYALTY_TIER_H */
