/*
 * trigger.c
 *		loyalty.order_trigger: earn and reverse from an application's own
 *		orders table, in the sale's transaction.
 *
 *	CREATE TRIGGER orders_loyalty AFTER INSERT OR UPDATE OR DELETE ON shop.orders
 *	  FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger(
 *	      'member_id', 'total', 'id', 'status'           -- required
 *	      [, 'channel_column' | '', 'occurred_at_column' | '']
 *	      [, 'cancel=refunded,cancelled'] [, 'earn=paid,shipped'] [, 'on_error=skip']);
 *
 * For bulk loads the same function may be attached FOR EACH STATEMENT with
 * transition tables, one trigger per event (REFERENCING NEW TABLE for
 * INSERT, OLD and NEW TABLE for UPDATE, OLD TABLE for DELETE): the
 * statement's rows are then taken member by member, in member_id order, and
 * each member's in the order the statement wrote them, so that two
 * concurrent loads lock accounts in one order (no deadlock) and every row
 * has the effect it has under the row trigger.
 *
 * An order earns when its status is an earning one (any status that is not
 * a cancel status, unless earn= lists them) and it has a member; it is
 * idempotent by order reference (key 'order:<ref>'), so a replayed import
 * never credits twice.  A cancel status, a delete, or a lowered amount
 * takes back points in proportion to the amount no longer paid (reverse by
 * amount, restoring the right lots).  A raised amount earns nothing more,
 * and a cancelled order that comes back earns nothing again: an order earns
 * once, on its first amount.  With on_error=skip, an order that fails is
 * recorded in loyalty.rejected_orders and writes nothing, and the others go
 * on.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "ledger.h"
#include "loyalty.h"
#include "points.h"

PG_FUNCTION_INFO_V1(loyalty_order_trigger);
PG_FUNCTION_INFO_V1(loyalty_earn_batch);


#define MAX_STATUSES 16

/*
 * The columns of a row version that say something about the order, by
 * position in a tuple descriptor (channel and occurred_at may be 0: none).
 */
typedef struct OrderCols
{
	AttrNumber	member;
	AttrNumber	amount;
	AttrNumber	reference;
	AttrNumber	status;
	AttrNumber	channel;
	AttrNumber	occurred;
	AttrNumber	coupon;			/* option coupon=<column> (0: none) */
} OrderCols;

/* The trigger's configuration, resolved against the table once. */
typedef struct OrderConfig
{
	Oid			trigger_oid;
	Oid			relid;
	OrderCols	cols;			/* the orders table's columns */
	int			ncancel;
	char	   *cancel[MAX_STATUSES];
	int			nearn;			/* 0: every non-cancel status earns */
	char	   *earn[MAX_STATUSES];
	bool		skip_errors;	/* on_error=skip: a failing order goes to
								 * loyalty.rejected_orders */
	char	   *source;			/* the orders table, for rejected_orders */
} OrderConfig;

static const char *const arg_names[] = {"member", "amount", "reference", "status", "channel", "occurred_at"};

static AttrNumber
find_column(Relation rel, const char *col, int argno, bool optional)
{
	AttrNumber	att;

	if (optional && col[0] == '\0')
		return 0;
	att = attnameAttNum(rel, col, false);
	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("loyalty.order_trigger: argument %d (%s) names column \"%s\", which table \"%s\" does not have",
						argno + 1, arg_names[argno], col, RelationGetRelationName(rel)),
				 errhint("The arguments are: member, amount, reference and status columns, then optionally channel and occurred_at columns ('' to skip).")));
	return att;
}

static void
require_type(Relation rel, AttrNumber att, int argno, const Oid *ok, int nok, const char *expected)
{
	Oid			typ = TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid;
	int			i;

	for (i = 0; i < nok; i++)
		if (typ == ok[i])
			return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("loyalty.order_trigger: argument %d (%s) names column \"%s\" of type %s; %s expected",
					argno + 1, arg_names[argno], NameStr(TupleDescAttr(RelationGetDescr(rel), att - 1)->attname),
					format_type_be(typ), expected)));
}

static int
split_statuses(char *list, char **out, const char *what)
{
	int			n = 0;
	char	   *tok;
	char	   *save = NULL;

	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		if (n == MAX_STATUSES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("loyalty.order_trigger: at most %d %s statuses", MAX_STATUSES, what)));
		out[n++] = tok;
	}
	return n;
}

static OrderConfig *
configure(TriggerData *td, MemoryContext cxt)
{
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	MemoryContext old = MemoryContextSwitchTo(cxt);
	OrderConfig *c = palloc0(sizeof(OrderConfig));
	static const Oid member_types[] = {INT8OID, INT4OID, INT2OID};
	static const Oid amount_types[] = {NUMERICOID, INT8OID, INT4OID, INT2OID};
	static const Oid time_types[] = {TIMESTAMPTZOID};
	int			i;
	int			ncols;

	if (!TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.order_trigger must be fired AFTER ... FOR EACH ROW, or AFTER ... FOR EACH STATEMENT")));
	if (tg->tgnargs < 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loyalty.order_trigger needs at least 4 arguments, got %d", tg->tgnargs),
				 errhint("EXECUTE FUNCTION loyalty.order_trigger('member_col', 'amount_col', 'reference_col', 'status_col').")));

	c->trigger_oid = tg->tgoid;
	c->relid = RelationGetRelid(rel);
	c->source = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										   RelationGetRelationName(rel));
	c->cancel[0] = "refunded";
	c->cancel[1] = "cancelled";
	c->cancel[2] = "canceled";
	c->ncancel = 3;

	/* positional column names, then key=value options */
	for (ncols = 0; ncols < tg->tgnargs && ncols < 6 && strchr(tg->tgargs[ncols], '=') == NULL; ncols++)
		;
	if (ncols < 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loyalty.order_trigger: the first 4 arguments must be column names")));
	c->cols.member = find_column(rel, tg->tgargs[0], 0, false);
	c->cols.amount = find_column(rel, tg->tgargs[1], 1, false);
	c->cols.reference = find_column(rel, tg->tgargs[2], 2, false);
	c->cols.status = find_column(rel, tg->tgargs[3], 3, false);
	if (ncols > 4)
		c->cols.channel = find_column(rel, tg->tgargs[4], 4, true);
	if (ncols > 5)
		c->cols.occurred = find_column(rel, tg->tgargs[5], 5, true);
	require_type(rel, c->cols.member, 0, member_types, lengthof(member_types), "bigint, integer or smallint");
	require_type(rel, c->cols.amount, 1, amount_types, lengthof(amount_types), "numeric or an integer type");
	if (c->cols.occurred)
		require_type(rel, c->cols.occurred, 5, time_types, lengthof(time_types), "timestamp with time zone");

	for (i = ncols; i < tg->tgnargs; i++)
	{
		char	   *opt = pstrdup(tg->tgargs[i]);
		char	   *eq = strchr(opt, '=');

		if (eq == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("loyalty.order_trigger: argument %d (\"%s\") is neither a column nor an option", i + 1, opt)));
		*eq = '\0';
		if (strcmp(opt, "cancel") == 0)
			c->ncancel = split_statuses(eq + 1, c->cancel, "cancel");
		else if (strcmp(opt, "earn") == 0)
			c->nearn = split_statuses(eq + 1, c->earn, "earn");
		else if (strcmp(opt, "on_error") == 0 && (strcmp(eq + 1, "fail") == 0 || strcmp(eq + 1, "skip") == 0))
			c->skip_errors = strcmp(eq + 1, "skip") == 0;
		else if (strcmp(opt, "coupon") == 0)
		{
			static const Oid text_types[] = {TEXTOID, VARCHAROID, BPCHAROID};
			AttrNumber	att = attnameAttNum(rel, eq + 1, false);
			Oid			typ;
			int			k;

			if (att == InvalidAttrNumber || att < 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("loyalty.order_trigger: option coupon names column \"%s\", which table \"%s\" does not have",
								eq + 1, RelationGetRelationName(rel))));
			typ = TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid;
			for (k = 0; k < (int) lengthof(text_types) && typ != text_types[k]; k++)
				;
			if (k == (int) lengthof(text_types))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("loyalty.order_trigger: option coupon names column \"%s\" of type %s; text expected",
								eq + 1, format_type_be(typ))));
			c->cols.coupon = att;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("loyalty.order_trigger: unknown option \"%s\" in argument %d", tg->tgargs[i], i + 1),
					 errhint("Options are cancel=<status,...>, earn=<status,...>, on_error=fail|skip and coupon=<column>.")));
	}
	MemoryContextSwitchTo(old);
	return c;
}

/* What a row version says about the order. */
typedef struct OrderRow
{
	bool		has_member;
	int64		member;
	Numeric		amount;			/* NULL: none */
	char	   *reference;		/* NULL: none */
	char	   *status;
	text	   *channel;
	bool		has_occurred;
	TimestampTz occurred_at;
	bool		earning;
	bool		coupons;		/* the trigger has a coupon column */
	char	   *coupon;			/* the order's coupon code (NULL: none) */
} OrderRow;

static bool
in_list(char **list, int n, const char *s)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static OrderRow
read_row(OrderConfig *c, TupleDesc desc, HeapTuple tup, const OrderCols *col)
{
	OrderRow	r = {0};
	bool		isnull;
	Datum		d;

	d = heap_getattr(tup, col->member, desc, &isnull);
	if (!isnull)
	{
		Oid			t = TupleDescAttr(desc, col->member - 1)->atttypid;

		r.has_member = true;
		r.member = t == INT8OID ? DatumGetInt64(d) : t == INT4OID ? DatumGetInt32(d) : DatumGetInt16(d);
	}
	d = heap_getattr(tup, col->amount, desc, &isnull);
	if (!isnull)
	{
		switch (TupleDescAttr(desc, col->amount - 1)->atttypid)
		{
			case NUMERICOID:
				r.amount = DatumGetNumeric(d);
				break;
			case INT8OID:
				r.amount = int64_to_numeric(DatumGetInt64(d));
				break;
			case INT4OID:
				r.amount = int64_to_numeric(DatumGetInt32(d));
				break;
			default:
				r.amount = int64_to_numeric(DatumGetInt16(d));
				break;
		}
	}
	r.reference = SPI_getvalue(tup, desc, col->reference);
	r.status = SPI_getvalue(tup, desc, col->status);
	if (col->channel)
	{
		char	   *ch = SPI_getvalue(tup, desc, col->channel);

		r.channel = ch ? cstring_to_text(ch) : NULL;
	}
	if (col->occurred)
	{
		d = heap_getattr(tup, col->occurred, desc, &isnull);
		r.has_occurred = !isnull;
		if (!isnull)
			r.occurred_at = DatumGetTimestampTz(d);
	}
	if (c->cols.coupon)
	{
		r.coupons = true;
		r.coupon = SPI_getvalue(tup, desc, col->coupon);
	}
	r.earning = r.has_member && r.amount && r.reference && r.status &&
		!in_list(c->cancel, c->ncancel, r.status) &&
		(c->nearn == 0 || in_list(c->earn, c->nearn, r.status)) &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(r.amount),
										  NumericGetDatum(int64_to_numeric(0)))) >= 0;
	return r;
}

/*
 * The bulk earns of the statement or batch being processed (NULL: each earn
 * on its own, as for a row trigger or under on_error=skip, where each order
 * is a subtransaction of its own).
 */
static LedgerBulk *bulk = NULL;

/*
 * The order's coupon, used and captured with it (keyed by the order, so a
 * replayed order uses it once), or given back when the order is cancelled.
 * The coupon functions write the member's account by SQL, so a bulk writes
 * what it deferred for the member first.
 */
static void
order_coupon(OrderRow *r, bool undo)
{
	static KeptPlan use_plan;
	static KeptPlan undo_plan;
	static const Oid types[5] = {INT8OID, TEXTOID, NUMERICOID, TEXTOID, TEXTOID};
	Datum		values[5];
	int			rc;

	if (bulk)
		ledger_bulk_pause(bulk);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	values[0] = Int64GetDatum(r->member);
	if (undo)
	{
		values[1] = CStringGetTextDatum(r->reference);
		rc = loyalty_run(&undo_plan, "SELECT loyalty.coupons_refunded($1, $2)", 2, types, values, NULL, false, 0);
	}
	else
	{
		char		nulls[5] = "     ";

		values[1] = CStringGetTextDatum(r->coupon);
		values[2] = NumericGetDatum(r->amount);
		values[3] = r->channel ? PointerGetDatum(r->channel) : (Datum) 0;
		nulls[3] = r->channel ? ' ' : 'n';
		values[4] = CStringGetTextDatum(r->reference);
		rc = loyalty_run(&use_plan,
						 "SELECT loyalty.capture_coupon($1, loyalty.redeem_coupon($1, $2, $3, NULL, $4, $5,"
						 " 'order-coupon:' OPERATOR(pg_catalog.||) $5))",
						 5, types, values, nulls, false, 0);
	}
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "loyalty: the order's coupon failed");
	SPI_finish();
}

/* Earn for the order, keyed by its reference. */
static void
order_earn(OrderRow *r, Numeric amount, const char *key)
{
	EarnRequest req = {0};
	LedgerResult res;

	req.member_id = r->member;
	req.amount = amount;
	req.channel = r->channel;
	req.reference = cstring_to_text(r->reference);
	req.idempotency_key = cstring_to_text(key);
	req.occurred_at.given = r->has_occurred;
	req.occurred_at.value = r->occurred_at;
	if (bulk)
		ledger_bulk_earn(bulk, &req, &res);
	else
		ledger_earn(&req, &res);
	ledger_remember_entry(&res);
	if (r->coupon && r->coupon[0] != '\0')
		order_coupon(r, false);
}

/*
 * The order's earn entry and the amount it still stands for (its purchase
 * amount less what was refunded); false if the order never earned.
 */
static bool
order_state(int64 member, const char *reference, int64 *entry, Numeric *standing)
{
	static KeptPlan plan;
	static const Oid types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	int			rc;

	values[0] = Int64GetDatum(member);
	values[1] = CStringGetTextDatum(psprintf("order:%s", reference));
	rc = loyalty_run(&plan, "SELECT k.entry_id, l.amount" MINUS "coalesce(lo.reversed_amount, 0)"
					 " FROM loyalty.idempotency_keys k"
					 " JOIN loyalty.ledger l ON l.member_id" EQ "k.member_id AND l.entry_id" EQ "k.entry_id"
					 " LEFT JOIN loyalty.lots lo ON lo.member_id" EQ "l.member_id AND lo.lot_id" EQ "l.entry_id"
					 " WHERE k.member_id" EQ "$1 AND k.idempotency_key" EQ "$2",
					 2, types, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "loyalty: order lookup failed");
	if (SPI_processed == 0)
		return false;
	*entry = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Into the caller's context (SPI_finish frees SPI's), detoasted first: a
	 * short-header numeric would otherwise be expanded by DatumGetNumeric
	 * into SPI's context again.
	 */
	*standing = DatumGetNumeric(SPI_datumTransfer(NumericGetDatum(DatumGetNumeric(SPI_getbinval(SPI_tuptable->vals[0],
																								SPI_tuptable->tupdesc,
																								2, &isnull))),
												  false, -1));
	return true;
}

/* Whether the order already earned (an order earns once). */
static bool
order_earned(OrderRow *r)
{
	int64		entry;
	Numeric		standing;
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	found = order_state(r->member, r->reference, &entry, &standing);
	SPI_finish();
	return found;
}

/* Bring the order's credit down to `target` (0: all of it). */
static void
order_reduce(OrderRow *r, Numeric target, const char *why)
{
	int64		entry;
	Numeric		standing;
	Numeric		diff;
	ReverseRequest req = {0};
	LedgerResult res;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	if (!order_state(r->member, r->reference, &entry, &standing))
	{
		SPI_finish();
		return;
	}
	SPI_finish();
	diff = DatumGetNumeric(DirectFunctionCall2(numeric_sub, NumericGetDatum(standing), NumericGetDatum(target)));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(diff),
										  NumericGetDatum(int64_to_numeric(0)))) <= 0)
		return;

	req.member_id = r->member;
	req.entry_id = entry;
	req.amount = diff;
	req.reference = cstring_to_text(r->reference);
	req.reason = cstring_to_text(why);
	/* one key per target amount: replaying the same change is harmless */
	req.idempotency_key = cstring_to_text(psprintf("order:%s:to:%s", r->reference,
												   DatumGetCString(DirectFunctionCall1(numeric_out,
																					   NumericGetDatum(target)))));
	if (bulk)
		ledger_bulk_reverse(bulk, &req, &res);
	else
		ledger_reverse(&req, &res);
	/* the whole order undone: its coupons are given back */
	if (r->coupons && DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(target),
														NumericGetDatum(int64_to_numeric(0)))) == 0)
		order_coupon(r, true);
}

static Numeric
zero(void)
{
	return int64_to_numeric(0);
}

/* Names the order a failing row is about. */
static void
order_error_context(void *arg)
{
	OrderRow   *r = (OrderRow *) arg;

	if (r->reference && r->has_member)
		errcontext("loyalty.order_trigger: order \"%s\" of member %lld", r->reference, (long long) r->member);
	else if (r->reference)
		errcontext("loyalty.order_trigger: order \"%s\"", r->reference);
}

/*
 * Record an order that failed under on_error=skip, with why (the error is
 * the one its subtransaction raised; nothing of the order was written).
 */
static void
reject_order(const char *source, const OrderRow *r, ErrorData *edata)
{
	static KeptPlan plan;
	static const Oid types[7] = {TEXTOID, TEXTOID, INT8OID, NUMERICOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = "       ";
	int			rc;

	values[0] = CStringGetTextDatum(source);
	values[1] = r->reference ? CStringGetTextDatum(r->reference) : (Datum) 0;
	nulls[1] = r->reference ? ' ' : 'n';
	values[2] = Int64GetDatum(r->member);
	nulls[2] = r->has_member ? ' ' : 'n';
	values[3] = r->amount ? NumericGetDatum(r->amount) : (Datum) 0;
	nulls[3] = r->amount ? ' ' : 'n';
	values[4] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	values[5] = CStringGetTextDatum(edata->message ? edata->message : "");
	values[6] = edata->detail ? CStringGetTextDatum(edata->detail) : (Datum) 0;
	nulls[6] = edata->detail ? ' ' : 'n';
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	rc = loyalty_run(&plan, "INSERT INTO loyalty.rejected_orders"
					 " (source, reference, member, amount, sqlstate, message, detail)"
					 " VALUES ($1, $2, $3, $4, $5, $6, $7)",
					 7, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "loyalty: could not record a rejected order");
	SPI_finish();
}

/*
 * Run one order's work; under skip, in a subtransaction of its own, so that
 * an order that fails (an unknown member, a replay with another amount, a
 * bad amount) writes nothing and goes to loyalty.rejected_orders while the
 * others go on.  Returns whether the work was done.
 */
static bool
order_guarded(bool skip, const char *source, const OrderRow *about, void (*work) (void *), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool done = true;

	if (!skip)
	{
		work(arg);
		return true;
	}
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		work(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* a cancel or a shutdown is no bad order */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		reject_order(source, about, edata);
		done = false;
	}
	PG_END_TRY();
	return done;
}

/* An order inserted. */
static void
order_insert(OrderRow *new_row)
{
	if (new_row->earning)
		order_earn(new_row, new_row->amount, psprintf("order:%s", new_row->reference));
}

/* An order deleted. */
static void
order_delete(OrderRow *old_row)
{
	if (old_row->has_member && old_row->reference)
		order_reduce(old_row, zero(), "order deleted");
}

/* An order updated. */
static void
order_update(OrderRow *old_row, OrderRow *new_row)
{
	if (old_row->has_member && new_row->has_member && old_row->member == new_row->member &&
		old_row->reference && new_row->reference && strcmp(old_row->reference, new_row->reference) == 0)
	{
		if (!new_row->earning)
		{
			if (old_row->earning)
				order_reduce(old_row, zero(),
							 psprintf("order %s", new_row->status ? new_row->status : "cancelled"));
		}
		else if (!old_row->earning && !order_earned(new_row))
			order_earn(new_row, new_row->amount, psprintf("order:%s", new_row->reference));
		else
		{
			int			cmp = DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(new_row->amount),
																NumericGetDatum(old_row->amount)));

			/*
			 * A lowered amount is a partial refund.  A raised amount earns
			 * nothing more: the order earned once, on its first amount (a new
			 * purchase is a new order).
			 */
			if (cmp < 0)
				order_reduce(new_row, new_row->amount, "order amount lowered");
		}
	}
	else
	{
		/* the order moved to another member or reference: undo, then redo */
		if (old_row->has_member && old_row->reference)
			order_reduce(old_row, zero(), "order reassigned");
		if (new_row->earning)
			order_earn(new_row, new_row->amount, psprintf("order:%s", new_row->reference));
	}
}

/*
 * What one row's change does to the books: an insert (no old version), a
 * delete (no new version) or an update; errors name the order.
 */
static void
order_change(OrderRow *old_row, OrderRow *new_row)
{
	ErrorContextCallback errcb;

	errcb.callback = order_error_context;
	errcb.arg = new_row ? new_row : old_row;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	if (old_row && new_row)
		order_update(old_row, new_row);
	else if (new_row)
		order_insert(new_row);
	else if (old_row)
		order_delete(old_row);
	error_context_stack = errcb.previous;
}

typedef struct ChangeArgs
{
	OrderRow   *old_row;
	OrderRow   *new_row;
} ChangeArgs;

static void
order_change_work(void *arg)
{
	ChangeArgs *a = (ChangeArgs *) arg;

	order_change(a->old_row, a->new_row);
}

/* A row's change, or, under on_error=skip, its rejection. */
static void
order_change_guarded(OrderConfig *c, OrderRow *old_row, OrderRow *new_row)
{
	ChangeArgs	a = {old_row, new_row};

	(void) order_guarded(c->skip_errors, c->source, new_row ? new_row : old_row, order_change_work, &a);
}

/*
 * The select list of one transition table's columns that say something
 * about the order, with the row's position in the table (its scan order,
 * which is the order the statement wrote the rows in).
 */
static char *
transition_select(OrderConfig *c, Relation rel, const char *table)
{
	TupleDesc	desc = RelationGetDescr(rel);

#define COLNAME(att) quote_identifier(NameStr(TupleDescAttr(desc, (att) - 1)->attname))
	return psprintf("SELECT t.%s AS m, t.%s AS a, t.%s AS r, t.%s AS s, %s%s AS ch, %s%s AS oc, %s%s AS cp,"
					" pg_catalog.row_number() OVER () AS seq FROM %s t",
					COLNAME(c->cols.member), COLNAME(c->cols.amount), COLNAME(c->cols.reference),
					COLNAME(c->cols.status),
					c->cols.channel ? "t." : "", c->cols.channel ? COLNAME(c->cols.channel) : "NULL::pg_catalog.text",
					c->cols.occurred ? "t." : "",
					c->cols.occurred ? COLNAME(c->cols.occurred) : "NULL::pg_catalog.timestamptz",
					c->cols.coupon ? "t." : "", c->cols.coupon ? COLNAME(c->cols.coupon) : "NULL::pg_catalog.text",
					quote_identifier(table));
#undef COLNAME
}

#define STATEMENT_FETCH 1000

/*
 * Run `each` on every row of an open cursor, fetched a batch at a time, each
 * row in a memory context reset after it (a statement's orders may be
 * millions); then close the cursor.
 */
static void
for_each_row(Portal portal, void (*each) (HeapTuple tup, TupleDesc desc, void *arg), void *arg)
{
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "loyalty order row",
												 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		SPITupleTable *batch;
		uint64		n;

		SPI_cursor_fetch(portal, true, STATEMENT_FETCH);
		batch = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		for (uint64 i = 0; i < n; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(rowcxt);

			CHECK_FOR_INTERRUPTS();
			each(batch->vals[i], batch->tupdesc, arg);
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);
}

/*
 * for_each_row with the earns in bulk, unless each order is a subtransaction
 * of its own (skip): a bulk cannot outlive a rolled-back order.
 */
static void
for_each_row_bulk(Portal portal, bool skip, void (*each) (HeapTuple tup, TupleDesc desc, void *arg),
				  void *arg)
{
	LedgerBulk *volatile outer = bulk;

	PG_TRY();
	{
		/* a nested statement (a trigger's) has a bulk of its own, or none */
		if (outer)
			ledger_bulk_flush(outer);
		bulk = skip ? NULL : ledger_bulk_begin();
		for_each_row(portal, each, arg);
		if (bulk)
			ledger_bulk_end(bulk);
	}
	PG_FINALLY();
	{
		bulk = outer;
	}
	PG_END_TRY();
}

/* A statement's change of one order, from its transition tables' row. */
typedef struct StatementRows
{
	OrderConfig *c;
	bool		ins;
	bool		del;
} StatementRows;

static void
statement_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	static const OrderCols first = {1, 2, 3, 4, 5, 6, 7};
	static const OrderCols second = {9, 10, 11, 12, 13, 14, 15};
	StatementRows *st = (StatementRows *) arg;
	OrderRow	a = read_row(st->c, desc, tup, &first);

	if (st->ins)
		order_change_guarded(st->c, NULL, &a);
	else if (st->del)
		order_change_guarded(st->c, &a, NULL);
	else
	{
		OrderRow	b = read_row(st->c, desc, tup, &second);

		order_change_guarded(st->c, &a, &b);
	}
}

/*
 * FOR EACH STATEMENT: the statement's rows from its transition tables,
 * member by member in member_id order (each member's rows in the order the
 * statement wrote them), each with the effect the row trigger gives it.
 */
static void
order_statement(OrderConfig *c, TriggerData *td)
{
	Trigger    *tg = td->tg_trigger;
	bool		ins = TRIGGER_FIRED_BY_INSERT(td->tg_event);
	bool		del = TRIGGER_FIRED_BY_DELETE(td->tg_event);
	char	   *query;
	StatementRows st = {c, ins, del};

	if (!ins && !del && !TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.order_trigger handles INSERT, UPDATE and DELETE only")));
	if ((!del && tg->tgnewtable == NULL) || (!ins && tg->tgoldtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.order_trigger FOR EACH STATEMENT needs the statement's transition tables"),
				 errhint("One trigger per event: AFTER INSERT ... REFERENCING NEW TABLE AS loyalty_new, AFTER UPDATE ... REFERENCING OLD TABLE AS loyalty_old NEW TABLE AS loyalty_new, AFTER DELETE ... REFERENCING OLD TABLE AS loyalty_old, each FOR EACH STATEMENT.")));

	if (ins)
		query = psprintf("SELECT * FROM (%s) n ORDER BY n.m NULLS LAST, n.seq",
						 transition_select(c, td->tg_relation, tg->tgnewtable));
	else if (del)
		query = psprintf("SELECT * FROM (%s) o ORDER BY o.m NULLS LAST, o.seq",
						 transition_select(c, td->tg_relation, tg->tgoldtable));
	else
		query = psprintf("SELECT o.*, n.* FROM (%s) o JOIN (%s) n ON n.seq OPERATOR(pg_catalog.=) o.seq"
						 " ORDER BY COALESCE(o.m, n.m) NULLS LAST, o.seq",
						 transition_select(c, td->tg_relation, tg->tgoldtable),
						 transition_select(c, td->tg_relation, tg->tgnewtable));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "loyalty: could not register the transition tables");
	for_each_row_bulk(SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL, true, 0), c->skip_errors,
					  statement_row, &st);
	SPI_finish();
}

/*
 * A row trigger's change, on its own even inside a bulk (a row trigger fired
 * by a statement that another statement's earns caused).
 */
static void
order_change_alone(OrderConfig *c, OrderRow *old_row, OrderRow *new_row)
{
	LedgerBulk *volatile outer = bulk;

	if (outer == NULL)
	{
		order_change_guarded(c, old_row, new_row);
		return;
	}
	ledger_bulk_flush(outer);
	PG_TRY();
	{
		bulk = NULL;
		order_change_guarded(c, old_row, new_row);
	}
	PG_FINALLY();
	{
		bulk = outer;
	}
	PG_END_TRY();
}

Datum
loyalty_order_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	OrderConfig *c;
	OrderRow	old_row,
				new_row;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("loyalty.order_trigger can only be called as a trigger")));

	c = (OrderConfig *) fcinfo->flinfo->fn_extra;
	if (c == NULL || c->trigger_oid != td->tg_trigger->tgoid || c->relid != RelationGetRelid(td->tg_relation))
	{
		c = configure(td, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = c;
	}

	if (TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
	{
		order_statement(c, td);
		return PointerGetDatum(NULL);
	}

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		new_row = read_row(c, RelationGetDescr(td->tg_relation), td->tg_trigtuple, &c->cols);
		order_change_alone(c, NULL, &new_row);
		return PointerGetDatum(td->tg_trigtuple);
	}
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		old_row = read_row(c, RelationGetDescr(td->tg_relation), td->tg_trigtuple, &c->cols);
		order_change_alone(c, &old_row, NULL);
		return PointerGetDatum(td->tg_trigtuple);
	}
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		old_row = read_row(c, RelationGetDescr(td->tg_relation), td->tg_trigtuple, &c->cols);
		new_row = read_row(c, RelationGetDescr(td->tg_relation), td->tg_newtuple, &c->cols);
		order_change_alone(c, &old_row, &new_row);
		return PointerGetDatum(td->tg_newtuple);
	}
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("loyalty.order_trigger handles INSERT, UPDATE and DELETE only")));
	return PointerGetDatum(NULL);	/* not reached */
}

/* The length of an optional array argument (-1: NULL), which must be flat. */
static int
batch_array_length(FunctionCallInfo fcinfo, int argno, const char *name)
{
	ArrayType  *a;

	if (PG_ARGISNULL(argno))
		return -1;
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	return ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
}

/* One order of a batch. */
typedef struct BatchOrder
{
	OrderRow	row;
	EarnRequest req;
	LedgerResult res;
} BatchOrder;

static void
batch_earn(void *arg)
{
	BatchOrder *b = (BatchOrder *) arg;

	if (b->row.reference == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("an order of member %lld has no reference", (long long) b->row.member),
				 errhint("Each order needs its reference: it keys the order's earn.")));
	b->req.reference = cstring_to_text(b->row.reference);
	b->req.idempotency_key = cstring_to_text(psprintf("order:%s", b->row.reference));
	if (bulk)
		ledger_bulk_earn(bulk, &b->req, &b->res);
	else
		ledger_earn(&b->req, &b->res);
	ledger_remember_entry(&b->res);
}

/* What an earn_batch call did so far. */
typedef struct BatchState
{
	bool		skip;
	int64		orders;
	int64		earned;
	int64		replayed;
	int64		rejected;
	Points		points;
} BatchState;

/* One order of an earn_batch call, from its row of the arrays. */
static void
batch_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	BatchState *st = (BatchState *) arg;
	BatchOrder	b;
	ErrorContextCallback errcb;
	bool		isnull;
	Datum		d;

	memset(&b, 0, sizeof(b));
	st->orders++;
	d = SPI_getbinval(tup, desc, 1, &isnull);
	b.row.has_member = !isnull;
	b.row.member = isnull ? 0 : DatumGetInt64(d);
	b.row.reference = SPI_getvalue(tup, desc, 3);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	b.row.amount = isnull ? NULL : DatumGetNumeric(d);
	if (!b.row.has_member)
		return;					/* a guest's order earns nothing */
	errcb.callback = order_error_context;
	errcb.arg = &b.row;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	b.req.member_id = b.row.member;
	b.req.amount = b.row.amount;
	d = SPI_getbinval(tup, desc, 4, &isnull);
	b.req.occurred_at.given = !isnull;
	if (!isnull)
		b.req.occurred_at.value = DatumGetTimestampTz(d);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	b.req.channel = isnull ? NULL : DatumGetTextPP(d);
	d = SPI_getbinval(tup, desc, 6, &isnull);
	b.req.lines = isnull ? NULL : DatumGetJsonbP(d);
	if (!order_guarded(st->skip, "loyalty.earn_batch", &b.row, batch_earn, &b))
		st->rejected++;
	else if (b.res.replayed)
		st->replayed++;
	else
	{
		st->earned++;
		st->points = points_add_checked(st->points, b.res.points);
	}
	error_context_stack = errcb.previous;
}

/*
 * loyalty.earn_batch(member[], amount[], reference[], occurred_at[],
 * channel[], lines[], on_error): purchases given as arrays (one element per
 * order), earned as the order trigger earns an inserted order: keyed by the
 * order's reference (a replayed backfill writes nothing; the trigger and the
 * batch never credit one order twice), member by member in member_id order
 * and each member's orders by occurred_at, so that tiers, first-purchase
 * bonuses and caps come out as if the sales had arrived one by one.  Orders
 * without a member (guests) are skipped.  A failing order fails the call,
 * naming it, and nothing is written; with on_error 'skip' it goes to
 * loyalty.rejected_orders instead and the others are earned.  Returns how
 * many orders there were, how many earned now, how many had earned before
 * (replays), how many were rejected, and the points credited now.
 */
Datum
loyalty_earn_batch(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"member", "amount", "reference", "occurred_at", "channel", "lines"};
	static const Oid types[] = {INT8ARRAYOID, NUMERICARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID,
	TEXTARRAYOID, JSONBARRAYOID};
	Datum		values[6];
	char		nulls[6];
	int			n = -1;
	BatchState	st = {0};
	TupleDesc	tupdesc;
	Datum		out[5];
	bool		out_null[5] = {false, false, false, false, false};
	Portal		portal;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "loyalty: earn_batch must return a row");
	if (!PG_ARGISNULL(6))
	{
		char	   *mode = text_to_cstring(PG_GETARG_TEXT_PP(6));

		if (strcmp(mode, "skip") != 0 && strcmp(mode, "fail") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("on_error must be 'fail' or 'skip', not \"%s\"", mode)));
		st.skip = strcmp(mode, "skip") == 0;
	}
	for (int i = 0; i < 6; i++)
	{
		int			len = batch_array_length(fcinfo, i, names[i]);

		if (i < 3 && len < 0)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", names[i]),
					 errhint("Pass one element per order; only occurred_at, channel and lines may be NULL.")));
		if (len >= 0 && n >= 0 && len != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("%s has %d elements, %s has %d", names[i], len, names[0], n),
					 errhint("Pass one element per order in every array.")));
		if (n < 0)
			n = len;
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT u.m, u.a, u.r, u.o, u.c, u.l"
									   " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
									   "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
									   "  pg_catalog.unnest($6)) WITH ORDINALITY u(m, a, r, o, c, l, n)"
									   " ORDER BY u.m NULLS LAST, u.o NULLS LAST, u.n",
									   6, (Oid *) types, values, nulls, true, 0);
	for_each_row_bulk(portal, st.skip, batch_row, &st);
	SPI_finish();

	out[0] = Int64GetDatum(st.orders);
	out[1] = Int64GetDatum(st.earned);
	out[2] = Int64GetDatum(st.replayed);
	out[3] = Int64GetDatum(st.rejected);
	out[4] = Int64GetDatum(st.points);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), out, out_null)));
}
