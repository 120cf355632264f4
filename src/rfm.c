/*
 * rfm.c
 *		The RFM aggregate: recency, frequency, monetary value and first/last
 *		purchase of a customer's purchases, over any table.
 *
 *	SELECT customer, (loyalty.rfm(bought_at, amount)).* FROM sales GROUP BY customer;
 *	SELECT (loyalty.rfm(bought_at, amount, '2026-01-01')).* ...   -- recency as of a time
 *
 * Parallel-safe: the state is internal, with combine, serialize and
 * deserialize functions, so a parallel plan sums partial states.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "loyalty.h"

PG_FUNCTION_INFO_V1(rfm_trans);
PG_FUNCTION_INFO_V1(rfm_trans_asof);
PG_FUNCTION_INFO_V1(rfm_combine);
PG_FUNCTION_INFO_V1(rfm_serialize);
PG_FUNCTION_INFO_V1(rfm_deserialize);
PG_FUNCTION_INFO_V1(rfm_final);

typedef struct RfmState
{
	int64		count;
	TimestampTz first;
	TimestampTz last;
	bool		has_as_of;
	TimestampTz as_of;
	Numeric		sum;			/* in the aggregate context */
} RfmState;

static RfmState *
rfm_new(MemoryContext cxt)
{
	RfmState   *s = MemoryContextAllocZero(cxt, sizeof(RfmState));
	MemoryContext old = MemoryContextSwitchTo(cxt);

	s->sum = int64_to_numeric(0);
	MemoryContextSwitchTo(old);
	return s;
}

/* sum += v, keeping one numeric alive in the aggregate context */
static void
rfm_add_sum(RfmState *s, MemoryContext cxt, Numeric v)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Numeric		n = DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(s->sum), NumericGetDatum(v)));

	pfree(s->sum);
	s->sum = n;
	MemoryContextSwitchTo(old);
}

static Datum
rfm_step(FunctionCallInfo fcinfo, bool with_as_of)
{
	MemoryContext cxt;
	RfmState   *s;
	TimestampTz ts;
	Numeric		amount;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "rfm_trans called in non-aggregate context");
	s = PG_ARGISNULL(0) ? rfm_new(cxt) : (RfmState *) PG_GETARG_POINTER(0);
	if (with_as_of && !PG_ARGISNULL(3) && !s->has_as_of)
	{
		s->has_as_of = true;
		s->as_of = PG_GETARG_TIMESTAMPTZ(3);
		if (TIMESTAMP_NOT_FINITE(s->as_of))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rfm: as_of must be a finite time"),
					 errhint("Leave as_of out for now.")));
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);	/* a purchase without time or amount is
								 * skipped */
	ts = PG_GETARG_TIMESTAMPTZ(1);
	amount = PG_GETARG_NUMERIC(2);
	if (TIMESTAMP_NOT_FINITE(ts) || numeric_is_nan(amount) || numeric_is_inf(amount))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rfm: purchase time and amount must be finite")));
	/* as of a time, the purchases after it have not happened yet */
	if (s->has_as_of && ts > s->as_of)
		PG_RETURN_POINTER(s);
	if (s->count == 0 || ts < s->first)
		s->first = ts;
	if (s->count == 0 || ts > s->last)
		s->last = ts;
	s->count++;
	rfm_add_sum(s, cxt, amount);
	PG_RETURN_POINTER(s);
}

Datum
rfm_trans(PG_FUNCTION_ARGS)
{
	return rfm_step(fcinfo, false);
}

Datum
rfm_trans_asof(PG_FUNCTION_ARGS)
{
	return rfm_step(fcinfo, true);
}

Datum
rfm_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	RfmState   *a,
			   *b;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "rfm_combine called in non-aggregate context");
	a = PG_ARGISNULL(0) ? NULL : (RfmState *) PG_GETARG_POINTER(0);
	b = PG_ARGISNULL(1) ? NULL : (RfmState *) PG_GETARG_POINTER(1);
	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
		a = rfm_new(cxt);
	if (b->count > 0)
	{
		if (a->count == 0 || b->first < a->first)
			a->first = b->first;
		if (a->count == 0 || b->last > a->last)
			a->last = b->last;
		a->count += b->count;
		rfm_add_sum(a, cxt, b->sum);
	}
	if (b->has_as_of && !a->has_as_of)
	{
		a->has_as_of = true;
		a->as_of = b->as_of;
	}
	PG_RETURN_POINTER(a);
}

Datum
rfm_serialize(PG_FUNCTION_ARGS)
{
	RfmState   *s = (RfmState *) PG_GETARG_POINTER(0);
	StringInfoData buf;
	bytea	   *sum;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, s->count);
	pq_sendint64(&buf, s->first);
	pq_sendint64(&buf, s->last);
	pq_sendbyte(&buf, s->has_as_of ? 1 : 0);
	pq_sendint64(&buf, s->as_of);
	sum = DatumGetByteaPP(DirectFunctionCall1(numeric_send, NumericGetDatum(s->sum)));
	pq_sendbytes(&buf, VARDATA_ANY(sum), VARSIZE_ANY_EXHDR(sum));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
rfm_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	MemoryContext cxt;
	RfmState   *s;
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "rfm_deserialize called in non-aggregate context");
	s = rfm_new(cxt);

	/*
	 * a read-only view of the bytea (initReadOnlyStringInfo is PostgreSQL
	 * 16+)
	 */
	buf.data = VARDATA_ANY(in);
	buf.len = VARSIZE_ANY_EXHDR(in);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	s->count = pq_getmsgint64(&buf);
	s->first = pq_getmsgint64(&buf);
	s->last = pq_getmsgint64(&buf);
	s->has_as_of = pq_getmsgbyte(&buf) != 0;
	s->as_of = pq_getmsgint64(&buf);
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		pfree(s->sum);
		s->sum = DatumGetNumeric(DirectFunctionCall3(numeric_recv, PointerGetDatum(&buf),
													 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		MemoryContextSwitchTo(old);
	}
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(s);
}

/* (first_purchase, last_purchase, recency_days, frequency, monetary, average) */
Datum
rfm_final(PG_FUNCTION_ARGS)
{
	RfmState   *s = PG_ARGISNULL(0) ? NULL : (RfmState *) PG_GETARG_POINTER(0);
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {0};
	TimestampTz as_of;

	if (s == NULL || s->count == 0)
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "rfm: the result must be a composite type");
	desc = BlessTupleDesc(desc);
	as_of = s->has_as_of ? s->as_of : GetCurrentTransactionStartTimestamp();
	values[0] = TimestampTzGetDatum(s->first);
	values[1] = TimestampTzGetDatum(s->last);

	/*
	 * whole days from the last purchase to as_of (negative only without an
	 * as_of, for purchases recorded ahead of the database clock)
	 */
	{
		int64		diff = as_of - s->last;

		values[2] = Int32GetDatum((int32) (diff / USECS_PER_DAY - (diff % USECS_PER_DAY < 0 ? 1 : 0)));
	}
	values[3] = Int64GetDatum(s->count);
	values[4] = NumericGetDatum(s->sum);
	values[5] = DirectFunctionCall2(numeric_div, NumericGetDatum(s->sum), NumericGetDatum(int64_to_numeric(s->count)));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * The buckets of the RFM rollups behind member_rfm (loyalty.rollup_rfm_day,
 * loyalty.rollup_rfm_band).  Only their order matters: a larger value never
 * gets a lower bucket, so the counts per bucket, summed in bucket order, say
 * which bucket holds the k-th value.  In C because the refresh and the view
 * compute them for every buyer they (re)count.
 */
PG_FUNCTION_INFO_V1(rfm_rollup_day);
PG_FUNCTION_INFO_V1(rfm_rollup_band);

/* whole days since 2000-01-01 UTC (rounded down); the infinities at the ends */
Datum
rfm_rollup_day(PG_FUNCTION_ARGS)
{
	TimestampTz t = PG_GETARG_TIMESTAMPTZ(0);
	int64		d;

	if (TIMESTAMP_IS_NOBEGIN(t))
		PG_RETURN_INT32(PG_INT32_MIN);
	if (TIMESTAMP_IS_NOEND(t))
		PG_RETURN_INT32(PG_INT32_MAX);
	d = t / USECS_PER_DAY - (t % USECS_PER_DAY < 0 ? 1 : 0);
	/* |t| < 2^63 microseconds: about 1.07e8 days, well inside int32 */
	PG_RETURN_INT32((int32) d);
}

/*
 * The number of digits of the whole part times 1000 plus its first three
 * digits (bands of about a thousandth of the amount at any scale of spend);
 * 0 below 1; below zero the mirror image (-1 - the band of the absolute
 * value).  NaN and the infinities at the ends, in numeric's order.
 */
Datum
rfm_rollup_band(PG_FUNCTION_ARGS)
{
	Numeric		n = PG_GETARG_NUMERIC(0);
	bool		negative;
	char	   *digits;
	size_t		len;
	int64		band;

	if (numeric_is_nan(n))
		PG_RETURN_INT64(PG_INT64_MAX);
	negative = DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
												 NumericGetDatum(int64_to_numeric(0)))) < 0;
	if (numeric_is_inf(n))
		PG_RETURN_INT64(negative ? PG_INT64_MIN : PG_INT64_MAX - 1);
	digits = DatumGetCString(DirectFunctionCall1(numeric_out,
												 DirectFunctionCall2(numeric_trunc,
																	 DirectFunctionCall1(numeric_abs, NumericGetDatum(n)),
																	 Int32GetDatum(0))));
	len = strlen(digits);
	if (len == 1 && digits[0] == '0')
		band = 0;
	else
	{
		int			lead = 0;

		for (int i = 0; i < 3; i++)
			lead = lead * 10 + (i < (int) len ? digits[i] - '0' : 0);
		/* a numeric has at most 131072 digits before the point: no overflow */
		band = (int64) len * 1000 + lead;
	}
	pfree(digits);
	PG_RETURN_INT64(negative ? -1 - band : band);
}
