/*
 * rollups.c
 *		Helpers of the rollups' refresh that SQL does slowly per row.
 *
 * rollup_array_union(a, b): the union of two arrays, ascending and without
 * duplicates, in the element type's default btree order under the call's
 * collation.  The refresh keeps each buyer's months and channels so and
 * merges a day's into them for tens of thousands of buyers at a time; the
 * same in SQL (unnest, DISTINCT, ORDER BY in a subquery per row) took most
 * of the time of the buyers' part of a refresh.  A day's arrays come in any
 * order, with duplicates (array_agg without a sort per buyer), and are
 * sorted here, also when the buyer had none before (a NULL side).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "lib/qunique.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "loyalty.h"

PG_FUNCTION_INFO_V1(rollup_array_union);

typedef struct UnionSortArg
{
	FmgrInfo   *cmp;
	Oid			collation;
} UnionSortArg;

static int
union_compare(const void *a, const void *b, void *arg)
{
	UnionSortArg *s = (UnionSortArg *) arg;

	return DatumGetInt32(FunctionCall2Coll(s->cmp, s->collation,
										   *(const Datum *) a, *(const Datum *) b));
}

/* true if the elements are strictly ascending (the refresh's own arrays are) */
static bool
strictly_ascending(Datum *v, int n, UnionSortArg *s)
{
	for (int i = 1; i < n; i++)
		if (union_compare(&v[i - 1], &v[i], s) >= 0)
			return false;
	return true;
}

Datum
rollup_array_union(PG_FUNCTION_ARGS)
{
	ArrayType  *a;
	ArrayType  *b;
	Oid			elemtype;
	TypeCacheEntry *typcache;
	UnionSortArg sortarg;
	Datum	   *av;
	Datum	   *bv;
	bool	   *anulls;
	bool	   *bnulls;
	int			na;
	int			nb;
	int			total;
	Datum	   *out;
	int			n = 0;

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();

	/*
	 * One side absent (a buyer not counted before): the other, sorted and
	 * without duplicates all the same (a day's months and channels come
	 * unordered from a plain array_agg: a sort per buyer there cost more)
	 */
	a = PG_GETARG_ARRAYTYPE_P(PG_ARGISNULL(0) ? 1 : 0);
	b = PG_GETARG_ARRAYTYPE_P(PG_ARGISNULL(1) ? 0 : 1);
	elemtype = ARR_ELEMTYPE(a);
	if (ARR_ELEMTYPE(b) != elemtype)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("cannot merge arrays of different element types"),
				 errdetail("The arrays hold %s and %s.",
						   format_type_be(elemtype), format_type_be(ARR_ELEMTYPE(b)))));
	if (ARR_NDIM(a) > 1 || ARR_NDIM(b) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("cannot merge multidimensional arrays")));

	/* the type's order, looked up once per call site */
	typcache = (TypeCacheEntry *) fcinfo->flinfo->fn_extra;
	if (typcache == NULL || typcache->type_id != elemtype)
	{
		typcache = lookup_type_cache(elemtype, TYPECACHE_CMP_PROC_FINFO);
		if (!OidIsValid(typcache->cmp_proc_finfo.fn_oid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("could not identify a comparison function for type %s",
							format_type_be(elemtype))));
		fcinfo->flinfo->fn_extra = typcache;
	}
	sortarg.cmp = &typcache->cmp_proc_finfo;
	sortarg.collation = PG_GET_COLLATION();

	deconstruct_array(a, elemtype, typcache->typlen, typcache->typbyval, typcache->typalign,
					  &av, &anulls, &na);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
	{
		bv = NULL;
		bnulls = NULL;
		nb = 0;
	}
	else
		deconstruct_array(b, elemtype, typcache->typlen, typcache->typbyval, typcache->typalign,
						  &bv, &bnulls, &nb);
	if (array_contains_nulls(a) || array_contains_nulls(b))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("cannot merge arrays containing nulls")));

	if (pg_add_s32_overflow(na, nb, &total))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("merged array would be too large")));
	out = palloc(sizeof(Datum) * Max(total, 1));

	if (nb == 0 && strictly_ascending(av, na, &sortarg))
		PG_RETURN_ARRAYTYPE_P(a);
	if (strictly_ascending(av, na, &sortarg) && strictly_ascending(bv, nb, &sortarg))
	{
		/* the usual case: one merge pass */
		int			i = 0;
		int			j = 0;

		while (i < na && j < nb)
		{
			int			c = union_compare(&av[i], &bv[j], &sortarg);

			if (c < 0)
				out[n++] = av[i++];
			else if (c > 0)
				out[n++] = bv[j++];
			else
			{
				out[n++] = av[i++];
				j++;
			}
		}
		while (i < na)
			out[n++] = av[i++];
		while (j < nb)
			out[n++] = bv[j++];
	}
	else
	{
		/* a day's own, or arrays made elsewhere: sort, drop duplicates */
		memcpy(out, av, sizeof(Datum) * na);
		if (nb > 0)
			memcpy(out + na, bv, sizeof(Datum) * nb);
		qsort_arg(out, total, sizeof(Datum), union_compare, &sortarg);
		n = (int) qunique_arg(out, total, sizeof(Datum), union_compare, &sortarg);
	}

	PG_RETURN_ARRAYTYPE_P(construct_array(out, n, elemtype, typcache->typlen,
										  typcache->typbyval, typcache->typalign));
}
