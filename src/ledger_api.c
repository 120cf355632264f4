/*
 * ledger_api.c
 *		The SQL-callable functions of the books: each turns its arguments
 *		into a request of ledger.h, calls the operation, and returns what the
 *		SQL declaration promises.
 *
 * Only the arguments' presence is checked here (a NULL where a value is
 * required); what a value may be is checked by the operation, for every
 * caller alike.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "ledger.h"
#include "points.h"

PG_FUNCTION_INFO_V1(loyalty_earn);
PG_FUNCTION_INFO_V1(loyalty_preview_earn);
PG_FUNCTION_INFO_V1(loyalty_award);
PG_FUNCTION_INFO_V1(loyalty_redeem);
PG_FUNCTION_INFO_V1(loyalty_hold);
PG_FUNCTION_INFO_V1(loyalty_capture);
PG_FUNCTION_INFO_V1(loyalty_release);
PG_FUNCTION_INFO_V1(loyalty_reverse);
PG_FUNCTION_INFO_V1(loyalty_refund);
PG_FUNCTION_INFO_V1(loyalty_adjust);
PG_FUNCTION_INFO_V1(loyalty_transfer);
PG_FUNCTION_INFO_V1(loyalty_reverse_transfer);
PG_FUNCTION_INFO_V1(loyalty_forfeit_books);
PG_FUNCTION_INFO_V1(loyalty_household_redeem);
PG_FUNCTION_INFO_V1(loyalty_household_close);
PG_FUNCTION_INFO_V1(loyalty_release_expired);
PG_FUNCTION_INFO_V1(loyalty_merge_members);
PG_FUNCTION_INFO_V1(loyalty_expire_member);
PG_FUNCTION_INFO_V1(loyalty_set_member_status);
PG_FUNCTION_INFO_V1(loyalty_last_entry);
PG_FUNCTION_INFO_V1(loyalty_tier_change);
PG_FUNCTION_INFO_V1(loyalty_set_tier_grace);
PG_FUNCTION_INFO_V1(loyalty_apply_tiers);
PG_FUNCTION_INFO_V1(loyalty_set_referral_pending);
PG_FUNCTION_INFO_V1(loyalty_apply_segments);
PG_FUNCTION_INFO_V1(loyalty_open_account);
PG_FUNCTION_INFO_V1(loyalty_archive_books);

/*
 * The ledger entry of this session's last write call, for loyalty.last_entry()
 * (as lastval() is for sequences).  Forgotten when the (sub)transaction that
 * wrote it rolls back, since the entry is gone then.
 */
static bool last_entry_known = false;
static int64 last_entry = 0;
static SubTransactionId last_entry_subxact = InvalidSubTransactionId;
static bool last_entry_callbacks = false;

static void
LastEntryXactCallback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* committed: no later rollback can take it away */
			last_entry_subxact = InvalidSubTransactionId;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction may still roll back: not this session's */
			if (last_entry_subxact != InvalidSubTransactionId)
				last_entry_known = false;
			last_entry_subxact = InvalidSubTransactionId;
			break;
		default:
			break;
	}
}

static void
LastEntrySubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	(void) parentSubid;
	(void) arg;
	/* subtransaction ids grow: one rolled back takes its children with it */
	if (event == SUBXACT_EVENT_ABORT_SUB &&
		last_entry_subxact != InvalidSubTransactionId && last_entry_subxact >= mySubid)
	{
		last_entry_known = false;
		last_entry_subxact = InvalidSubTransactionId;
	}
}

/* Remember the entry a write call wrote (0: none), or replayed. */
void
ledger_remember_entry(const LedgerResult *res)
{
	if (!last_entry_callbacks)
	{
		RegisterXactCallback(LastEntryXactCallback, NULL);
		RegisterSubXactCallback(LastEntrySubXactCallback, NULL);
		last_entry_callbacks = true;
	}
	last_entry_known = true;
	last_entry = res->entry_id;
	last_entry_subxact = GetCurrentSubTransactionId();
}

/*
 * loyalty.last_entry(): the ledger entry written (or, for a replay, first
 * written) by this session's last write call; NULL when that call wrote none.
 */
Datum
loyalty_last_entry(PG_FUNCTION_ARGS)
{
	if (!last_entry_known)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("loyalty.last_entry() is not yet defined in this session"),
				 errdetail("No write call of this session has written an entry that is still there."),
				 errhint("Call it after loyalty.earn(), award(), redeem(), hold(), capture(), release(), reverse(), refund(), adjust() or merge_members(), or after an order's insert, in the same session.")));
	if (last_entry == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(last_entry);
}

/* Refuse a NULL for a required argument, naming it. */
static void
RequireArg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/*
 * The type an argument arrived as: the call's expression says (it is the
 * resolved type of a polymorphic argument), or else the declaration.
 */
static Oid
ArgType(FunctionCallInfo fcinfo, int argno)
{
	Oid			type = get_fn_expr_argtype(fcinfo->flinfo, argno);

	if (!OidIsValid(type))
	{
		HeapTuple	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
		type = ((Form_pg_proc) GETSTRUCT(tp))->proargtypes.values[argno];
		ReleaseSysCache(tp);
	}
	return type;
}

/*
 * A points argument: declared numeric, so that every driver's integers,
 * decimals and strings reach it; only a whole number within the points
 * range is accepted (points_from_numeric says why not).
 */
static Points
ArgPoints(FunctionCallInfo fcinfo, int argno)
{
	/* an older schema (before ALTER EXTENSION UPDATE) declares loyalty.points */
	if (ArgType(fcinfo, argno) != NUMERICOID)
		return PG_GETARG_POINTS(argno);
	return DatumGetPoints(DirectFunctionCall1(points_from_numeric, PG_GETARG_DATUM(argno)));
}

/*
 * A money amount, or NULL: numeric, or double precision (the overloads that
 * take what psycopg 3 and JDBC bind a float as), read as PostgreSQL's own
 * float8 -> numeric cast reads it, to 15 significant digits, so that 19.99
 * is 19.99 and 0.1 + 0.2 is 0.3.  NaN and infinities reach the operation's
 * checks as numeric NaN and infinities, which refuse them.
 */
static Numeric
ArgAmount(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	if (ArgType(fcinfo, argno) == FLOAT8OID)
		return DatumGetNumeric(DirectFunctionCall1(float8_numeric, PG_GETARG_DATUM(argno)));
	return PG_GETARG_NUMERIC(argno);
}

/* Says which argument a syntax error is about, and what to send. */
static void
LinesErrorContext(void *arg)
{
	(void) arg;
	errcontext("reading the lines argument, which must be a JSON array of order lines "
			   "or an array of JSON order lines");
}

/* One order line of an array, as JSON text. */
static char *
LineText(Datum d, Oid elemtype)
{
	if (elemtype == JSONBOID)
		return JsonbToCString(NULL, &DatumGetJsonbP(d)->root, VARSIZE(DatumGetPointer(d)));
	return TextDatumGetCString(d);
}

/*
 * An array of order lines (jsonb[], json[], text[] or varchar[]: what
 * psycopg, JDBC's createArrayOf and node-postgres send for a list of
 * objects), as one JSON array.
 */
static Datum
LinesFromArray(ArrayType *arr)
{
	Oid			elemtype = ARR_ELEMTYPE(arr);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData buf;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("lines must be a one-dimensional array")));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("order line %d is NULL", i + 1)));
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, LineText(elems[i], elemtype));
	}
	appendStringInfoChar(&buf, ']');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/*
 * Whether a text opening with a brace is a JSON object (its first string is
 * followed by a colon) rather than an array literal of quoted elements.
 */
static bool
JsonObjectText(const char *s)
{
	s += strspn(s, " \t\n\r");
	if (*s++ != '{')
		return false;
	s += strspn(s, " \t\n\r");
	if (*s++ != '"')
		return false;
	while (*s && *s != '"')
		s += (*s == '\\' && s[1]) ? 2 : 1;
	if (*s++ != '"')
		return false;
	s += strspn(s, " \t\n\r");
	return *s == ':';
}

/*
 * Order lines, or NULL: declared anycompatible so that what drivers bind
 * reaches it without a cast: jsonb, json and text holding a JSON array
 * (psycopg's Json(), JDBC's setString, JSON.stringify), and arrays of
 * lines, typed (jsonb[], json[], text[], varchar[]) or as the array literal
 * node-postgres makes of a JS array.  Order lines are always an array, so a
 * text that opens with a brace and is no JSON object is such a literal.
 */
static Jsonb *
ArgLines(FunctionCallInfo fcinfo, int argno)
{
	Oid			type;
	Oid			elemtype;
	Datum		parsed;
	ErrorContextCallback errcb;

	if (PG_ARGISNULL(argno))
		return NULL;
	type = ArgType(fcinfo, argno);
	if (type == JSONBOID)
		return PG_GETARG_JSONB_P(argno);
	/* a call without an expression cannot say: refuse rather than guess */
	if (type == ANYCOMPATIBLEOID)
		ereport(ERROR,
				(errcode(ERRCODE_INDETERMINATE_DATATYPE),
				 errmsg("could not determine the type of the lines argument")));
	elemtype = get_element_type(type);
	if (type != JSONOID && type != TEXTOID && type != VARCHAROID &&
		elemtype != JSONBOID && elemtype != JSONOID && elemtype != TEXTOID && elemtype != VARCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("lines must be json, jsonb, text or an array of them, not %s", format_type_be(type)),
				 errhint("Send the order lines as a JSON array: [{\"category\": ..., \"product\": ..., \"quantity\": ..., \"amount\": ...}].")));
	errcb.callback = LinesErrorContext;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	if (OidIsValid(elemtype))
		parsed = LinesFromArray(PG_GETARG_ARRAYTYPE_P(argno));
	else
	{
		char	   *str = TextDatumGetCString(PG_GETARG_DATUM(argno));

		if (type != JSONOID && str[strspn(str, " \t\n\r")] == '{' && !JsonObjectText(str))
			parsed = LinesFromArray(DatumGetArrayTypeP(OidInputFunctionCall(F_ARRAY_IN, str, TEXTOID, -1)));
		else
			parsed = DirectFunctionCall1(jsonb_in, CStringGetDatum(str));
	}
	error_context_stack = errcb.previous;
	return DatumGetJsonbP(parsed);
}

/* An optional text argument, or NULL. */
static text *
OptText(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : PG_GETARG_TEXT_PP(argno);
}

static OptTime
OptTimestamp(FunctionCallInfo fcinfo, int argno)
{
	OptTime		t = {0};

	if (!PG_ARGISNULL(argno))
	{
		t.given = true;
		t.value = PG_GETARG_TIMESTAMPTZ(argno);
	}
	return t;
}

static void
EarnArgs(FunctionCallInfo fcinfo, EarnRequest *r, int lines_arg, int channel_arg, int reference_arg,
		 int key_arg, int occurred_arg, int store_arg)
{
	memset(r, 0, sizeof(*r));
	RequireArg(fcinfo, 0, "member");
	r->member_id = PG_GETARG_INT64(0);
	r->amount = ArgAmount(fcinfo, 1);
	r->lines = ArgLines(fcinfo, lines_arg);
	r->channel = OptText(fcinfo, channel_arg);
	r->reference = reference_arg >= 0 ? OptText(fcinfo, reference_arg) : NULL;
	r->idempotency_key = key_arg >= 0 ? OptText(fcinfo, key_arg) : NULL;
	r->occurred_at = OptTimestamp(fcinfo, occurred_arg);
	r->store = OptText(fcinfo, store_arg);
}

/*
 * loyalty.earn(member, amount, channel, reference, idempotency_key,
 * occurred_at, lines, store): the points credited.
 */
Datum
loyalty_earn(PG_FUNCTION_ARGS)
{
	EarnRequest r;
	LedgerResult res;

	EarnArgs(fcinfo, &r, 6, 2, 3, 4, 5, 7);
	ledger_earn(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_POINTS(res.points);
}

/*
 * loyalty.preview_earn(member, amount, lines, channel, store, occurred_at):
 * what the purchase would earn now and why, writing nothing.
 */
Datum
loyalty_preview_earn(PG_FUNCTION_ARGS)
{
	EarnRequest r;

	EarnArgs(fcinfo, &r, 2, 3, -1, -1, 5, 4);
	PG_RETURN_JSONB_P(ledger_preview_earn(&r));
}

/*
 * loyalty.award(member, points, reason, channel, reference, idempotency_key,
 * occurred_at, expires_at): the entry id.
 */
Datum
loyalty_award(PG_FUNCTION_ARGS)
{
	AwardRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "points");
	RequireArg(fcinfo, 2, "reason");
	r.member_id = PG_GETARG_INT64(0);
	r.points = ArgPoints(fcinfo, 1);
	r.reason = PG_GETARG_TEXT_PP(2);
	r.channel = OptText(fcinfo, 3);
	r.reference = OptText(fcinfo, 4);
	r.idempotency_key = OptText(fcinfo, 5);
	r.occurred_at = OptTimestamp(fcinfo, 6);
	r.expires_at = OptTimestamp(fcinfo, 7);
	ledger_award(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.entry_id);
}

/*
 * loyalty.redeem(member, points, channel, reference, idempotency_key,
 * occurred_at): the entry id.
 */
Datum
loyalty_redeem(PG_FUNCTION_ARGS)
{
	RedeemRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "points");
	r.member_id = PG_GETARG_INT64(0);
	r.points = ArgPoints(fcinfo, 1);
	r.channel = OptText(fcinfo, 2);
	r.reference = OptText(fcinfo, 3);
	r.idempotency_key = OptText(fcinfo, 4);
	r.occurred_at = OptTimestamp(fcinfo, 5);
	ledger_redeem(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.entry_id);
}

/*
 * loyalty.hold(member, points, ttl, channel, reference, idempotency_key):
 * the hold id.
 */
Datum
loyalty_hold(PG_FUNCTION_ARGS)
{
	HoldRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "points");
	RequireArg(fcinfo, 2, "ttl");
	r.member_id = PG_GETARG_INT64(0);
	r.points = ArgPoints(fcinfo, 1);
	r.ttl = PG_GETARG_INTERVAL_P(2);
	r.channel = OptText(fcinfo, 3);
	r.reference = OptText(fcinfo, 4);
	r.idempotency_key = OptText(fcinfo, 5);
	ledger_hold(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.hold_id);
}

/* loyalty.capture(hold, points, idempotency_key): the capture's entry id. */
Datum
loyalty_capture(PG_FUNCTION_ARGS)
{
	CaptureRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "hold");
	r.hold_id = PG_GETARG_INT64(0);
	r.has_points = !PG_ARGISNULL(1);
	if (r.has_points)
		r.points = ArgPoints(fcinfo, 1);
	r.idempotency_key = OptText(fcinfo, 2);
	ledger_capture(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.entry_id);
}

/* loyalty.release(hold, idempotency_key): the points released. */
Datum
loyalty_release(PG_FUNCTION_ARGS)
{
	ReleaseRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "hold");
	r.hold_id = PG_GETARG_INT64(0);
	r.idempotency_key = OptText(fcinfo, 1);
	ledger_release(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_POINTS(res.points);
}

/*
 * An amount declared anycompatible (reverse's, which an overload would make
 * ambiguous with its points), or NULL: any number type a driver binds, or a
 * string, read as the casts to numeric read them (a float to 15 significant
 * digits, as ArgAmount does).
 */
static Numeric
ArgAnyAmount(FunctionCallInfo fcinfo, int argno, const char *name)
{
	Datum		d;

	if (PG_ARGISNULL(argno))
		return NULL;
	d = PG_GETARG_DATUM(argno);
	switch (ArgType(fcinfo, argno))
	{
		case NUMERICOID:
			return DatumGetNumeric(d);
		case FLOAT8OID:
			return DatumGetNumeric(DirectFunctionCall1(float8_numeric, d));
		case FLOAT4OID:
			return DatumGetNumeric(DirectFunctionCall1(float4_numeric, d));
		case INT2OID:
			return DatumGetNumeric(DirectFunctionCall1(int2_numeric, d));
		case INT4OID:
			return DatumGetNumeric(DirectFunctionCall1(int4_numeric, d));
		case INT8OID:
			return DatumGetNumeric(DirectFunctionCall1(int8_numeric, d));
		case TEXTOID:
		case VARCHAROID:
			return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(TextDatumGetCString(d)),
													   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		case ANYCOMPATIBLEOID:
			ereport(ERROR,
					(errcode(ERRCODE_INDETERMINATE_DATATYPE),
					 errmsg("could not determine the type of the %s argument", name)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("%s must be a number, not %s", name, format_type_be(ArgType(fcinfo, argno))),
					 errhint("Send the amount as a numeric, an integer, a double precision or a string.")));
	}
	return NULL;				/* not reached */
}

/*
 * loyalty.reverse(member, entry, points, amount, reference, reason,
 * idempotency_key): the points reversed.
 */
Datum
loyalty_reverse(PG_FUNCTION_ARGS)
{
	ReverseRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "entry");
	r.member_id = PG_GETARG_INT64(0);
	r.entry_id = PG_GETARG_INT64(1);
	r.has_points = !PG_ARGISNULL(2);
	if (r.has_points)
		r.points = ArgPoints(fcinfo, 2);
	r.amount = ArgAnyAmount(fcinfo, 3, "amount");
	r.reference = OptText(fcinfo, 4);
	r.reason = OptText(fcinfo, 5);
	r.idempotency_key = OptText(fcinfo, 6);
	ledger_reverse(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_POINTS(res.points);
}

/*
 * loyalty.transfer(from_member, to_member, points, reason, idempotency_key):
 * the sender's entry.
 */
Datum
loyalty_transfer(PG_FUNCTION_ARGS)
{
	TransferRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "from_member");
	RequireArg(fcinfo, 1, "to_member");
	RequireArg(fcinfo, 2, "points");
	r.from_member = PG_GETARG_INT64(0);
	r.to_member = PG_GETARG_INT64(1);
	r.points = ArgPoints(fcinfo, 2);
	r.reason = OptText(fcinfo, 3);
	r.idempotency_key = OptText(fcinfo, 4);
	ledger_transfer(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.entry_id);
}

/*
 * loyalty.reverse_transfer(sender, entry, reason, idempotency_key): the
 * points given back to the sender.
 */
Datum
loyalty_reverse_transfer(PG_FUNCTION_ARGS)
{
	TransferReversal r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "sender");
	RequireArg(fcinfo, 1, "entry");
	RequireArg(fcinfo, 2, "reason");
	r.member_id = PG_GETARG_INT64(0);
	r.entry_id = PG_GETARG_INT64(1);
	r.reason = PG_GETARG_TEXT_PP(2);
	r.idempotency_key = OptText(fcinfo, 3);
	ledger_reverse_transfer(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.points);
}

/*
 * loyalty.household_redeem(redeemer, points, channel, reference,
 * idempotency_key): the redeemer's entry (or the first member's).
 */
Datum
loyalty_household_redeem(PG_FUNCTION_ARGS)
{
	HouseholdRedeemRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "redeemer");
	RequireArg(fcinfo, 1, "points");
	r.redeemer = PG_GETARG_INT64(0);
	r.points = ArgPoints(fcinfo, 1);
	r.channel = OptText(fcinfo, 2);
	r.reference = OptText(fcinfo, 3);
	r.idempotency_key = OptText(fcinfo, 4);
	ledger_household_redeem(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.entry_id);
}

/*
 * loyalty.household_close(household, reason) (internal, dissolve_household):
 * the pool's points split among the members.
 */
Datum
loyalty_household_close(PG_FUNCTION_ARGS)
{
	LedgerResult res;

	RequireArg(fcinfo, 0, "household");
	RequireArg(fcinfo, 1, "reason");
	ledger_household_close(PG_GETARG_INT64(0), PG_GETARG_TEXT_PP(1), &res);
	PG_RETURN_INT64(res.points);
}

/* loyalty.forfeit_books(member, reason) (internal, erase_member): the balance forfeited. */
Datum
loyalty_forfeit_books(PG_FUNCTION_ARGS)
{
	ForfeitRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "reason");
	r.member_id = PG_GETARG_INT64(0);
	r.reason = PG_GETARG_TEXT_PP(1);
	ledger_forfeit(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.points);
}

/*
 * loyalty.refund(member, reference, amount, reason, idempotency_key): the
 * points taken back.
 */
Datum
loyalty_refund(PG_FUNCTION_ARGS)
{
	RefundRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "reference");
	r.member_id = PG_GETARG_INT64(0);
	r.reference = PG_GETARG_TEXT_PP(1);
	r.amount = ArgAmount(fcinfo, 2);
	r.reason = OptText(fcinfo, 3);
	r.idempotency_key = OptText(fcinfo, 4);
	ledger_refund(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_POINTS(res.points);
}

/*
 * loyalty.adjust(member, points, reason, idempotency_key, reference): the
 * entry id.
 */
Datum
loyalty_adjust(PG_FUNCTION_ARGS)
{
	AdjustRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "points");
	RequireArg(fcinfo, 2, "reason");
	r.member_id = PG_GETARG_INT64(0);
	r.points = ArgPoints(fcinfo, 1);
	r.reason = PG_GETARG_TEXT_PP(2);
	r.idempotency_key = OptText(fcinfo, 3);
	r.reference = OptText(fcinfo, 4);
	ledger_adjust(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_INT64(res.entry_id);
}

/* loyalty.release_expired(member): how many holds were released. */
Datum
loyalty_release_expired(PG_FUNCTION_ARGS)
{
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	ledger_release_expired(PG_GETARG_INT64(0), &res);
	PG_RETURN_INT64(res.count);
}

/*
 * loyalty.merge_members(survivor, absorbed, idempotency_key): the points
 * moved.
 */
Datum
loyalty_merge_members(PG_FUNCTION_ARGS)
{
	MergeRequest r = {0};
	LedgerResult res;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("survivor and absorbed must not be null")));
	r.survivor = PG_GETARG_INT64(0);
	r.absorbed = PG_GETARG_INT64(1);
	r.idempotency_key = OptText(fcinfo, 2);
	ledger_merge(&r, &res);
	ledger_remember_entry(&res);
	PG_RETURN_POINTS(res.points);
}

/* loyalty.expire_member(member, as_of): the points written off. */
Datum
loyalty_expire_member(PG_FUNCTION_ARGS)
{
	ExpireRequest r = {0};
	LedgerResult res;

	RequireArg(fcinfo, 0, "member");
	r.member_id = PG_GETARG_INT64(0);
	r.as_of = OptTimestamp(fcinfo, 1);
	ledger_expire(&r, &res);
	PG_RETURN_POINTS(res.points);
}

/* loyalty.set_member_status(member, status) */
Datum
loyalty_set_member_status(PG_FUNCTION_ARGS)
{
	StatusRequest r = {0};

	RequireArg(fcinfo, 0, "member");
	r.member_id = PG_GETARG_INT64(0);
	r.status = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	ledger_set_status(&r);
	PG_RETURN_VOID();
}

/*
 * The internal writes below are called by the extension's own SQL functions
 * (tier rules, referrals, enrolment, archiving), which decide; nobody else
 * may execute them.
 */

/* loyalty.tier_change(member, new_tier, reason, locked_until) */
Datum
loyalty_tier_change(PG_FUNCTION_ARGS)
{
	TierRequest r = {0};

	RequireArg(fcinfo, 0, "member");
	r.member_id = PG_GETARG_INT64(0);
	r.tier = PG_ARGISNULL(1) ? NULL : PG_GETARG_TIER_P(1);
	r.reason = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	r.locked = !PG_ARGISNULL(3);
	if (r.locked)
		r.locked_until = PG_GETARG_TIMESTAMPTZ(3);
	PG_RETURN_BOOL(ledger_tier_change(&r));
}

/* loyalty.set_tier_grace(member, until): NULL ends the grace period */
Datum
loyalty_set_tier_grace(PG_FUNCTION_ARGS)
{
	RequireArg(fcinfo, 0, "member");
	ledger_tier_grace(PG_GETARG_INT64(0), !PG_ARGISNULL(1),
					  PG_ARGISNULL(1) ? 0 : PG_GETARG_TIMESTAMPTZ(1));
	PG_RETURN_VOID();
}

/* The elements of a one-dimensional array argument (NULLs flagged). */
static int
ArrayArg(FunctionCallInfo fcinfo, int argno, const char *name, Oid elemtype, Datum **elems,
		 bool **nulls)
{
	ArrayType  *a;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			n;

	RequireArg(fcinfo, argno, name);
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	/* InvalidOid: the type the array has (a type of the extension's) */
	if (OidIsValid(elemtype) && ARR_ELEMTYPE(a) != elemtype)
		elog(ERROR, "loyalty: %s has the wrong element type", name);
	elemtype = ARR_ELEMTYPE(a);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, elems, nulls, &n);
	return n;
}

/*
 * loyalty.apply_tiers(members, changes, tiers, grace_until): a tier
 * review's decisions; changes[i] moves members[i] to tiers[i], else its
 * grace period becomes grace_until[i] (NULL: none).
 */
Datum
loyalty_apply_tiers(PG_FUNCTION_ARGS)
{
	Datum	   *members,
			   *changes,
			   *tiers,
			   *graces;
	bool	   *members_null,
			   *changes_null,
			   *tiers_null,
			   *graces_null;
	int			n,
				i;
	TierDecision *d;

	n = ArrayArg(fcinfo, 0, "members", INT8OID, &members, &members_null);
	if (ArrayArg(fcinfo, 1, "changes", BOOLOID, &changes, &changes_null) != n ||
		ArrayArg(fcinfo, 2, "tiers", InvalidOid, &tiers, &tiers_null) != n ||
		ArrayArg(fcinfo, 3, "grace_until", TIMESTAMPTZOID, &graces, &graces_null) != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("members, changes, tiers and grace_until must have the same length")));
	d = palloc0(sizeof(TierDecision) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		if (members_null[i] || changes_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("members and changes must not contain NULL")));
		d[i].member_id = DatumGetInt64(members[i]);
		d[i].change = DatumGetBool(changes[i]);
		d[i].tier = tiers[i];
		d[i].tier_null = tiers_null[i];
		d[i].grace_until = graces_null[i] ? 0 : DatumGetTimestampTz(graces[i]);
		d[i].grace_null = graces_null[i];
	}
	if (n > 0)
		ledger_apply_tiers(d, n);
	PG_RETURN_VOID();
}

/* loyalty.set_referral_pending(member, pending) */
Datum
loyalty_set_referral_pending(PG_FUNCTION_ARGS)
{
	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "pending");
	ledger_set_referral_pending(PG_GETARG_INT64(0), PG_GETARG_BOOL(1));
	PG_RETURN_VOID();
}

/*
 * loyalty.apply_segments(members, segments, risk_bands, since): a segment
 * refresh's results; since[i] is the date members[i] entered segments[i].
 */
Datum
loyalty_apply_segments(PG_FUNCTION_ARGS)
{
	Datum	   *members,
			   *segments,
			   *bands,
			   *since;
	bool	   *members_null,
			   *segments_null,
			   *bands_null,
			   *since_null;
	int			n,
				i;
	SegmentDecision *d;

	n = ArrayArg(fcinfo, 0, "members", INT8OID, &members, &members_null);
	if (ArrayArg(fcinfo, 1, "segments", TEXTOID, &segments, &segments_null) != n ||
		ArrayArg(fcinfo, 2, "risk_bands", TEXTOID, &bands, &bands_null) != n ||
		ArrayArg(fcinfo, 3, "since", DATEOID, &since, &since_null) != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("members, segments, risk_bands and since must have the same length")));
	d = palloc0(sizeof(SegmentDecision) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		if (members_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("members must not contain NULL")));
		d[i].member_id = DatumGetInt64(members[i]);
		d[i].segment = segments_null[i] ? NULL : DatumGetTextPP(segments[i]);
		d[i].risk_band = bands_null[i] ? NULL : DatumGetTextPP(bands[i]);
		d[i].since = since_null[i] ? 0 : DatumGetDateADT(since[i]);
		d[i].since_null = since_null[i];
	}
	if (n > 0)
		ledger_apply_segments(d, n);
	PG_RETURN_VOID();
}

/* loyalty.open_account(member, program) */
Datum
loyalty_open_account(PG_FUNCTION_ARGS)
{
	RequireArg(fcinfo, 0, "member");
	RequireArg(fcinfo, 1, "program");
	ledger_open_account(PG_GETARG_INT64(0), PG_GETARG_INT64(1));
	PG_RETURN_VOID();
}

/*
 * loyalty.archive_books(partitions, horizon, archive_schema,
 *						 OUT carried, OUT lots, OUT allocations)
 */
Datum
loyalty_archive_books(PG_FUNCTION_ARGS)
{
	ArchiveRequest r = {0};
	ArchiveResult res = {0};
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	Oid		   *oids;
	TupleDesc	desc;
	Datum		values[3];
	bool		isnull[3] = {false, false, false};

	n = ArrayArg(fcinfo, 0, "partitions", REGCLASSOID, &elems, &nulls);
	RequireArg(fcinfo, 1, "horizon");
	oids = palloc(sizeof(Oid) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("partitions must not contain NULL")));
		oids[i] = DatumGetObjectId(elems[i]);
	}
	r.parts = oids;
	r.nparts = n;
	r.horizon = PG_GETARG_TIMESTAMPTZ(1);
	r.archive_schema = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (n > 0)
	{
		ledger_archive(&r, &res);
		ledger_mark_carried(oids, n);
	}

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "loyalty: archive_books must return a record");
	values[0] = Int64GetDatum(res.carried);
	values[1] = Int64GetDatum(res.lots);
	values[2] = Int64GetDatum(res.allocations);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, isnull)));
}
