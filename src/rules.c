/*
 * rules.c
 *		Earning rules evaluated in C: multipliers and bonuses with their
 *		conditions, over order lines, with an explanation of every step.
 *
 * The rules of a program are rows of loyalty.earning_rules.  They are read
 * once per backend and kept until the program's rules_version changes (a
 * trigger bumps it on every rule change), so an earn costs no rule query.
 * The semantics are those documented in src/sql/50_rules.sql.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "loyalty.h"
#include "rules.h"

PG_FUNCTION_INFO_V1(loyalty_in_control);

typedef enum Stacking
{
	STACK_MULTIPLY,
	STACK_ADD,
	STACK_BEST_OF
} Stacking;

typedef struct EarnRule
{
	char	   *name;
	bool		bonus;
	Numeric		multiplier;
	Points		bonus_points;
	Stacking	stacking;
	bool		stop;
	bool		has_from,
				has_until;
	TimestampTz valid_from,
				valid_until;
	int			weekdays;		/* bit d (1..7) set: ISO weekday d allowed; 0:
								 * any */
	int			hour_from,
				hour_to;		/* -1: any hour */
	StrList		channels,
				stores,
				categories,
				products,
				segments;
	int32		min_tier;		/* -1: none */
	char		birthday;		/* 0, 'd' or 'm' */
	bool		first_purchase;
	Numeric		min_amount;		/* NULL: none */
	Jsonb	   *attributes;		/* the member's attributes must contain it;
								 * NULL: any */
	StrList		plans;			/* the member's paid membership at the
								 * purchase */
	StrList		tags;			/* the member has one of these tags */
	StrList		risk_bands;		/* the member's stored churn-risk band */
	double		control_share;	/* held out: 0 none */
	char	   *control_seed;
	StrList		apply_tags;		/* tags the rule puts on the member */
} EarnRule;

/* What a rule may ask of the member beyond the context, read once per earn when asked. */
typedef struct MemberFacts
{
	int			bmonth;			/* 0: not read; -1: no birthday (or changed
								 * too recently) */
	int			bday;
	bool		attributes_read;
	Jsonb	   *attributes;
	bool		plan_read;
	char	   *plan;			/* code of the plan paid for at the purchase;
								 * NULL: none */
	bool		tags_read;
	StrList		tags;			/* the member's tags */
} MemberFacts;

typedef struct Line
{
	char	   *category;
	char	   *product;
	Numeric		quantity;
	Numeric		amount;
	Numeric		base;			/* amount x earn rate */
	Numeric		mul;			/* M: compounded multipliers */
	Numeric		best;			/* B: best of the best_of multipliers */
	Numeric		add;			/* A: summed extras */
	bool		stopped;
} Line;

static MemoryContext rules_cxt = NULL;
static int64 cached_program = -1;
static int64 cached_version = -1;
static EarnRule *rules = NULL;
static int	nrules = 0;
static const Oid int8_arg[1] = {INT8OID};
static KeptPlan load_plan;
static KeptPlan load_plan_13;
static KeptPlan tiers_plan;

/* Tier earn multipliers of the cached program (tiers with a multiplier <> 1). */
typedef struct TierMultiplier
{
	int32		rank;
	char	   *name;
	Numeric		multiplier;
} TierMultiplier;
static TierMultiplier *tier_mults = NULL;
static int	ntier_mults = 0;
static KeptPlan birthday_plan;
static KeptPlan birthday_plan_13;
static KeptPlan attributes_plan;
static KeptPlan plan_plan;
static KeptPlan tags_plan;

/* The tags the last earn's rules put on the member (rules_take_tags). */
static List *pending_tags = NIL;

/* Whether loyalty.<rel> has column <col> (a library newer than the schema runs older schemas). */
static bool
has_column(const char *rel, const char *col)
{
	Oid			relid = get_relname_relid(rel, get_namespace_oid("loyalty", false));

	return OidIsValid(relid) && get_attnum(relid, col) != InvalidAttrNumber;
}

static Numeric
num_const(int64 v)
{
	return int64_to_numeric(v);
}

static Numeric
num_add(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
num_sub(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_sub, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
num_mul(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(a), NumericGetDatum(b)));
}

static int
num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static char *
num_str(Numeric a)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(a)));
}

/* A text[] column as C strings in the current context (n = -1 when NULL). */
StrList
text_array(HeapTuple tup, TupleDesc desc, int col)
{
	StrList		l = {-1, NULL};
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	Datum	   *elems;
	bool	   *nulls;
	int			i;

	if (isnull)
		return l;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &l.n);
	l.v = palloc(sizeof(char *) * Max(l.n, 1));
	for (i = 0; i < l.n; i++)
		l.v[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	return l;
}

bool
strlist_has(const StrList *l, const char *s)
{
	int			i;

	if (l->n < 0)
		return true;
	if (s == NULL)
		return false;
	for (i = 0; i < l->n; i++)
		if (l->v[i] && strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

/*
 * A rolled-back transaction may have read rules under a version number that
 * a later committed change reuses: forget them then.
 */
static void
RulesXactCallback(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		cached_program = -1;
}

static void
RulesSubXactCallback(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *arg)
{
	(void) sub;
	(void) parent;
	(void) arg;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		cached_program = -1;
}

/* Read the program's active rules into the cache, in evaluation order. */
static void
load_rules(int64 program_id, int64 version)
{
	Datum		values[1];
	MemoryContext old;
	uint64		i;

	if (rules_cxt == NULL)
	{
		rules_cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty earning rules",
										  ALLOCSET_SMALL_SIZES);
		RegisterXactCallback(RulesXactCallback, NULL);
		RegisterSubXactCallback(RulesSubXactCallback, NULL);
	}
	MemoryContextReset(rules_cxt);
	rules = NULL;
	nrules = 0;
	tier_mults = NULL;
	ntier_mults = 0;
	cached_program = -1;

	values[0] = Int64GetDatum(program_id);
#define RULES_SELECT(attributes) \
	"SELECT name, effect, multiplier, bonus_points" I8 ", stacking, stop," \
	" valid_from, valid_until, weekdays, hour_from, hour_to," \
	" channels, stores, categories, products," \
	" loyalty.tier_rank(min_tier), segments, birthday, first_purchase, min_amount, " attributes \
	" FROM loyalty.earning_rules WHERE program_id" EQ "$1 AND active" \
	" ORDER BY priority, name COLLATE \"C\""
	/* a schema not yet updated to 1.4 has no member_attributes */
	if (loyalty_run(has_column("earning_rules", "member_attributes") ? &load_plan : &load_plan_13,
					has_column("earning_rules", "member_attributes") ?
					RULES_SELECT("member_attributes, plans, tags, risk_bands, control_share::float8, control_seed,"
								 " apply_tags") :
					RULES_SELECT("NULL::pg_catalog.jsonb, NULL::pg_catalog.text[],"
								 " NULL::pg_catalog.text[], NULL::pg_catalog.text[], 0::float8, NULL::text,"
								 " NULL::pg_catalog.text[]"),
					1, int8_arg, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: reading earning rules failed");
#undef RULES_SELECT

	old = MemoryContextSwitchTo(rules_cxt);
	rules = palloc0(sizeof(EarnRule) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		EarnRule   *r = &rules[i];
		bool		isnull;
		Datum		d;
		char	   *s;

		r->name = SPI_getvalue(tup, desc, 1);
		r->bonus = strcmp(SPI_getvalue(tup, desc, 2), "bonus") == 0;
		d = SPI_getbinval(tup, desc, 3, &isnull);
		r->multiplier = isnull ? NULL : DatumGetNumericCopy(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		r->bonus_points = isnull ? 0 : DatumGetInt64(d);
		s = SPI_getvalue(tup, desc, 5);
		r->stacking = strcmp(s, "add") == 0 ? STACK_ADD :
			strcmp(s, "best_of") == 0 ? STACK_BEST_OF : STACK_MULTIPLY;
		r->stop = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		d = SPI_getbinval(tup, desc, 7, &isnull);
		r->has_from = !isnull;
		r->valid_from = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 8, &isnull);
		r->has_until = !isnull;
		r->valid_until = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 9, &isnull);
		r->weekdays = 0;
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;
			int			n,
						j;

			deconstruct_array(DatumGetArrayTypeP(d), INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
			for (j = 0; j < n; j++)
				if (!nulls[j])
					r->weekdays |= 1 << DatumGetInt32(elems[j]);
		}
		d = SPI_getbinval(tup, desc, 10, &isnull);
		r->hour_from = isnull ? -1 : DatumGetInt32(d);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		r->hour_to = isnull ? -1 : DatumGetInt32(d);
		r->channels = text_array(tup, desc, 12);
		r->stores = text_array(tup, desc, 13);
		r->categories = text_array(tup, desc, 14);
		r->products = text_array(tup, desc, 15);
		d = SPI_getbinval(tup, desc, 16, &isnull);
		r->min_tier = isnull ? -1 : DatumGetInt32(d);
		r->segments = text_array(tup, desc, 17);
		s = SPI_getvalue(tup, desc, 18);
		r->birthday = s == NULL ? 0 : s[0];
		r->first_purchase = DatumGetBool(SPI_getbinval(tup, desc, 19, &isnull));
		d = SPI_getbinval(tup, desc, 20, &isnull);
		r->min_amount = isnull ? NULL : DatumGetNumericCopy(d);
		d = SPI_getbinval(tup, desc, 21, &isnull);
		r->attributes = isnull ? NULL : DatumGetJsonbPCopy(d);
		r->plans = text_array(tup, desc, 22);
		r->tags = text_array(tup, desc, 23);
		r->risk_bands = text_array(tup, desc, 24);
		d = SPI_getbinval(tup, desc, 25, &isnull);
		r->control_share = isnull ? 0 : DatumGetFloat8(d);
		r->control_seed = SPI_getvalue(tup, desc, 26);
		r->apply_tags = text_array(tup, desc, 27);
	}
	nrules = (int) SPI_processed;
	MemoryContextSwitchTo(old);

	if (loyalty_run(&tiers_plan, "SELECT rank, name, earn_multiplier FROM loyalty.tiers"
					" WHERE program_id" EQ "$1 AND earn_multiplier <> 1",
					1, int8_arg, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: reading tier multipliers failed");
	old = MemoryContextSwitchTo(rules_cxt);
	tier_mults = palloc0(sizeof(TierMultiplier) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		tier_mults[i].rank = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		tier_mults[i].name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		tier_mults[i].multiplier = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
	}
	ntier_mults = (int) SPI_processed;
	MemoryContextSwitchTo(old);
	cached_program = program_id;
	cached_version = version;
}

/* A line's numeric field: a JSON number or a numeric string; NULL if absent. */
static Numeric
line_numeric(JsonbContainer *obj, const char *key, int lineno)
{
	JsonbValue	res;
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), &res);
	Numeric		n;

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvNumeric)
		n = v->val.numeric;
	else if (v->type == jbvString)
		n = DatumGetNumeric(DirectFunctionCall3(numeric_in,
												CStringGetDatum(pnstrdup(v->val.string.val, v->val.string.len)),
												ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order line %d: \"%s\" must be a number", lineno, key)));
	if (numeric_is_nan(n) || numeric_is_inf(n) || num_cmp(n, num_const(0)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order line %d: \"%s\" must be a finite number, not negative", lineno, key)));
	return n;
}

static char *
line_string(JsonbContainer *obj, const char *key, int lineno)
{
	JsonbValue	res;
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), &res);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order line %d: \"%s\" must be a string", lineno, key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Parse the order lines: a JSON array of objects with an amount each. */
static Line *
parse_lines(Jsonb *jb, int *nlines)
{
	int			n,
				i;
	Line	   *lines;

	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order lines must be a JSON array of objects"),
				 errhint("For example '[{\"category\": \"books\", \"quantity\": 2, \"amount\": 30.00}]'.")));
	n = JB_ROOT_COUNT(jb);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order lines must not be empty")));
	lines = palloc0(sizeof(Line) * n);
	for (i = 0; i < n; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(&jb->root, i);
		JsonbContainer *obj;

		if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("order line %d is not a JSON object", i + 1)));
		obj = v->val.binary.data;
		lines[i].amount = line_numeric(obj, "amount", i + 1);
		if (lines[i].amount == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("order line %d has no amount", i + 1)));
		lines[i].quantity = line_numeric(obj, "quantity", i + 1);
		lines[i].category = line_string(obj, "category", i + 1);
		lines[i].product = line_string(obj, "product", i + 1);
	}
	*nlines = n;
	return lines;
}

/*
 * The order lines' categories (NULL where none) and amounts, checked as the
 * rules check them; returns how many.
 */
int
rules_order_lines(Jsonb *jb, char ***categories, Numeric **amounts)
{
	int			n,
				i;
	Line	   *lines = parse_lines(jb, &n);

	*categories = palloc(sizeof(char *) * n);
	*amounts = palloc(sizeof(Numeric) * n);
	for (i = 0; i < n; i++)
	{
		(*categories)[i] = lines[i].category;
		(*amounts)[i] = lines[i].amount;
	}
	return n;
}

/*
 * The member's birthday, read only when a birthday rule needs it.  A
 * birthday changed less than the program's birthday_change_wait before the
 * purchase does not count yet: a member cannot move the birthday to collect
 * a second birthday bonus within the wait.
 */
static bool
member_birthday(int64 member_id, TimestampTz at, int *month, int *day)
{
	static const Oid types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	Datum		d;
	int			y;

	values[0] = Int64GetDatum(member_id);
	values[1] = TimestampTzGetDatum(at);
	if (!has_column("members", "birthday_changed_at"))
	{
		/* a schema not yet updated to 1.4: no change is recorded */
		if (loyalty_run(&birthday_plan_13, "SELECT birthday FROM loyalty.members WHERE member_id" EQ "$1",
						1, int8_arg, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			return false;
	}
	else if (loyalty_run(&birthday_plan,
						 "SELECT m.birthday FROM loyalty.members m JOIN loyalty.programs p"
						 " ON p.program_id" EQ "m.program_id WHERE m.member_id" EQ "$1"
						 " AND (m.birthday_changed_at IS NULL"
						 "  OR m.birthday_changed_at" PLUS "p.birthday_change_wait" LE "$2)",
						 2, types, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	j2date(DatumGetDateADT(d) + POSTGRES_EPOCH_JDATE, &y, month, day);
	return true;
}

/* The member's free attributes (jsonb), read only when a rule asks for them. */
static Jsonb *
member_attributes(int64 member_id)
{
	Datum		values[1];
	bool		isnull;
	Datum		d;

	values[0] = Int64GetDatum(member_id);
	if (loyalty_run(&attributes_plan, "SELECT attributes FROM loyalty.members WHERE member_id" EQ "$1",
					1, int8_arg, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : DatumGetJsonbPCopy(d);
}

/* The member's tags, read only when a rule (or challenge) asks for them. */
StrList
member_tags(int64 member_id)
{
	StrList		l = {0, NULL};
	Datum		values[1];
	uint64		i;

	values[0] = Int64GetDatum(member_id);
	if (loyalty_run(&tags_plan, "SELECT tag FROM loyalty.member_tags WHERE member_id" EQ "$1",
					1, int8_arg, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: reading member tags failed");
	l.v = palloc(sizeof(char *) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
		l.v[l.n++] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	return l;
}

/* Whether the two lists share an element. */
bool
strlist_meets(const StrList *l, const StrList *have)
{
	int			i;

	for (i = 0; i < have->n; i++)
		if (strlist_has(l, have->v[i]))
			return true;
	return false;
}

/* The code of the membership plan the member paid for at `at`, or NULL. */
static char *
member_plan(int64 member_id, TimestampTz at)
{
	static const Oid types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];

	values[0] = Int64GetDatum(member_id);
	values[1] = TimestampTzGetDatum(at);
	if (loyalty_run(&plan_plan,
					"SELECT p.code FROM loyalty.subscriptions s JOIN loyalty.membership_plans p"
					" ON p.plan_id" EQ "s.plan_id WHERE s.member_id" EQ "$1 AND s.started_at" LE "$2"
					" AND $2" LT "LEAST(s.current_period_end, s.ended_at)"
					" ORDER BY s.started_at DESC LIMIT 1",
					2, types, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static void
json_str(StringInfo buf, const char *s)
{
	if (s == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, s);
}

/*
 * The local calendar of a moment in the program's time zone: the one
 * conversion for the rules (day, hour, weekday) and the challenges (their
 * periods).
 */
LocalTime
local_time(TimestampTz ts, const char *zone)
{
	LocalTime	lt;
	Timestamp	local;
	struct pg_tm tm;
	fsec_t		fsec;
	int			dow;

	local = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone,
												  CStringGetTextDatum(zone),
												  TimestampTzGetDatum(ts)));
	if (timestamp2tm(local, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	lt.year = tm.tm_year;
	lt.month = tm.tm_mon;
	lt.day = tm.tm_mday;
	lt.hour = tm.tm_hour;
	lt.julian = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);
	dow = j2day(lt.julian);
	lt.isodow = dow == 0 ? 7 : dow;
	return lt;
}

/*
 * Whether a member is in a campaign's control group: held out of the offer
 * to measure what it changes.  A member's place is fixed by the campaign's
 * seed and its id (a hash of "seed:member" in 10,000 buckets), so it never
 * changes while the share stays, and differs between campaigns.
 */
bool
rules_in_control(int64 member_id, const char *seed, double share)
{
	char		buf[512];
	int			len;
	uint64		h;

	if (share <= 0 || seed == NULL)
		return false;
	len = snprintf(buf, sizeof(buf), "%s:%lld", seed, (long long) member_id);
	if (len < 0 || len >= (int) sizeof(buf))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("control seed too long"),
				 errdetail("A control seed has at most 400 characters.")));
	h = hash_bytes_extended((const unsigned char *) buf, len, 0);
	return (double) (h % 10000) < share * 10000.0;
}

/* loyalty.in_control(member, seed, share): the same, for SQL */
Datum
loyalty_in_control(PG_FUNCTION_ARGS)
{
	double		share = PG_GETARG_FLOAT8(2);

	if (isnan(share) || share < 0 || share >= 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a control share is at least 0 and below 1, got %g", share)));
	PG_RETURN_BOOL(rules_in_control(PG_GETARG_INT64(0), text_to_cstring(PG_GETARG_TEXT_PP(1)), share));
}

/* Conditions that concern the whole purchase (not its lines). */
static bool
basket_conditions(EarnRule *r, EarnContext *ctx, LocalTime *lt, MemberFacts *f)
{
	if (r->has_from && ctx->occurred_at < r->valid_from)
		return false;
	if (r->control_share > 0 && rules_in_control(ctx->member_id, r->control_seed, r->control_share))
		return false;
	if (r->has_until && ctx->occurred_at >= r->valid_until)
		return false;
	if (r->weekdays && !(r->weekdays & (1 << lt->isodow)))
		return false;
	if (r->hour_from >= 0 && (lt->hour < r->hour_from || lt->hour >= r->hour_to))
		return false;
	if (!strlist_has(&r->channels, ctx->channel ? text_to_cstring(ctx->channel) : NULL))
		return false;
	if (!strlist_has(&r->stores, ctx->store ? text_to_cstring(ctx->store) : NULL))
		return false;
	if (!strlist_has(&r->segments, ctx->segment ? text_to_cstring(ctx->segment) : NULL))
		return false;
	if (!strlist_has(&r->risk_bands, ctx->risk_band ? text_to_cstring(ctx->risk_band) : NULL))
		return false;
	if (r->min_tier >= 0 && ctx->tier_rank < r->min_tier)
		return false;
	if (r->first_purchase && !ctx->first_purchase)
		return false;
	if (r->birthday)
	{
		int			bd;

		if (f->bmonth == 0 && !member_birthday(ctx->member_id, ctx->occurred_at, &f->bmonth, &f->bday))
			f->bmonth = -1;
		if (f->bmonth < 0 || f->bmonth != lt->month)
			return false;
		bd = f->bday;
		/* a 29 February birthday is kept on the 28th in other years */
		if (bd == 29 && f->bmonth == 2 && !isleap(lt->year))
			bd = 28;
		if (r->birthday == 'd' && bd != lt->day)
			return false;
	}
	if (r->attributes)
	{
		if (!f->attributes_read)
		{
			f->attributes = member_attributes(ctx->member_id);
			f->attributes_read = true;
		}
		if (f->attributes == NULL ||
			!DatumGetBool(DirectFunctionCall2(jsonb_contains, JsonbPGetDatum(f->attributes),
											  JsonbPGetDatum(r->attributes))))
			return false;
	}
	if (r->plans.n >= 0)
	{
		if (!f->plan_read)
		{
			f->plan = member_plan(ctx->member_id, ctx->occurred_at);
			f->plan_read = true;
		}
		if (!strlist_has(&r->plans, f->plan))
			return false;
	}
	if (r->tags.n >= 0)
	{
		if (!f->tags_read)
		{
			f->tags = member_tags(ctx->member_id);
			f->tags_read = true;
		}
		if (!strlist_meets(&r->tags, &f->tags))
			return false;
	}
	return true;
}

static bool
line_matches(EarnRule *r, Line *l)
{
	return strlist_has(&r->categories, l->category) && strlist_has(&r->products, l->product);
}

/*
 * The tags the rules of the last rules_earn_points put on the member (text
 * *, in the caller's memory), forgotten once taken.
 */
List *
rules_take_tags(void)
{
	List	   *l = pending_tags;

	pending_tags = NIL;
	return l;
}

/* How many active rules the program has (loading them if needed). */
int
rules_active_count(int64 program_id, int64 rules_version)
{
	if (rules_version != cached_version || program_id != cached_program)
		load_rules(program_id, rules_version);
	return nrules + ntier_mults;
}

static const char *
stacking_name(Stacking s)
{
	return s == STACK_ADD ? "add" : s == STACK_BEST_OF ? "best_of" : "multiply";
}

Points
rules_earn_points(EarnContext *ctx, Numeric *base_amount, StringInfo details)
{
	Line	   *lines;
	int			nlines;
	int			i,
				j;
	Numeric		total_amount;
	Numeric		exact;
	Points		points;
	Points		bonus_add = 0;
	Points		bonus_best = 0;
	Points		uncapped = 0;
	const char *bonus_best_rule = NULL;
	bool		all_stopped = false;
	LocalTime	lt;
	MemberFacts facts = {0};
	StringInfoData rbuf;
	bool		first_rule = true;

	if (ctx->rules_version != cached_version || ctx->program_id != cached_program)
		load_rules(ctx->program_id, ctx->rules_version);
	pending_tags = NIL;

	if (ctx->lines)
		lines = parse_lines(ctx->lines, &nlines);
	else
	{
		nlines = 1;
		lines = palloc0(sizeof(Line));
		lines[0].amount = ctx->amount;
	}
	total_amount = num_const(0);
	for (i = 0; i < nlines; i++)
	{
		lines[i].base = num_mul(lines[i].amount, DatumGetNumeric(ctx->earn_rate));
		lines[i].mul = num_const(1);
		lines[i].best = num_const(1);
		lines[i].add = num_const(0);
		total_amount = num_add(total_amount, lines[i].amount);
	}
	if (ctx->lines && ctx->amount && num_cmp(ctx->amount, total_amount) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount %s does not match the sum of the order lines %s",
						num_str(ctx->amount), num_str(total_amount)),
				 errhint("Pass the lines alone (amount NULL), or an amount equal to their sum.")));
	*base_amount = total_amount;

	lt = local_time(ctx->occurred_at, ctx->time_zone);
	initStringInfo(&rbuf);

	/* the member's tier benefit: a multiplier on every line, before the rules */
	for (j = 0; j < ntier_mults; j++)
		if (tier_mults[j].rank == ctx->tier_rank)
		{
			for (i = 0; i < nlines; i++)
				lines[i].mul = num_mul(lines[i].mul, tier_mults[j].multiplier);
			appendStringInfoString(&rbuf, "{\"rule\": ");
			json_str(&rbuf, psprintf("tier %s", tier_mults[j].name));
			appendStringInfo(&rbuf, ", \"effect\": \"x%s\", \"stacking\": \"multiply\", \"lines\": \"all\"}",
							 num_str(tier_mults[j].multiplier));
			first_rule = false;
		}

	for (j = 0; j < nrules && !all_stopped; j++)
	{
		EarnRule   *r = &rules[j];
		Numeric		matched_amount = num_const(0);
		bool		any = false;

		if (!basket_conditions(r, ctx, &lt, &facts))
			continue;
		for (i = 0; i < nlines; i++)
			if (!lines[i].stopped && line_matches(r, &lines[i]))
			{
				any = true;
				matched_amount = num_add(matched_amount, lines[i].amount);
			}
		if (!any)
			continue;
		if (r->min_amount && num_cmp(matched_amount, r->min_amount) < 0)
			continue;

		appendStringInfoString(&rbuf, first_rule ? "" : ", ");
		first_rule = false;
		appendStringInfoString(&rbuf, "{\"rule\": ");
		json_str(&rbuf, r->name);
		if (r->apply_tags.n > 0)
		{
			appendStringInfoString(&rbuf, ", \"tags\": [");
			for (i = 0; i < r->apply_tags.n; i++)
			{
				appendStringInfoString(&rbuf, i ? ", " : "");
				json_str(&rbuf, r->apply_tags.v[i]);
				pending_tags = lappend(pending_tags, cstring_to_text(r->apply_tags.v[i]));
			}
			appendStringInfoChar(&rbuf, ']');
		}
		if (r->bonus)
		{
			if (r->stacking == STACK_BEST_OF)
			{
				if (r->bonus_points > bonus_best)
				{
					bonus_best = r->bonus_points;
					bonus_best_rule = r->name;
				}
			}
			else
				bonus_add = points_add_checked(bonus_add, r->bonus_points);
			appendStringInfo(&rbuf, ", \"effect\": \"+" INT64_FORMAT "\", \"stacking\": \"%s\"",
							 r->bonus_points, stacking_name(r->stacking));
			if (r->stop)
				all_stopped = true;
		}
		else
		{
			bool		first_line = true;

			appendStringInfo(&rbuf, ", \"effect\": \"x%s\", \"stacking\": \"%s\", \"lines\": [",
							 num_str(r->multiplier), stacking_name(r->stacking));
			for (i = 0; i < nlines; i++)
			{
				Line	   *l = &lines[i];

				if (l->stopped || !line_matches(r, l))
					continue;
				switch (r->stacking)
				{
					case STACK_MULTIPLY:
						l->mul = num_mul(l->mul, r->multiplier);
						break;
					case STACK_ADD:
						l->add = num_add(l->add, num_sub(r->multiplier, num_const(1)));
						break;
					case STACK_BEST_OF:
						if (num_cmp(r->multiplier, l->best) > 0)
							l->best = r->multiplier;
						break;
				}
				if (r->stop)
					l->stopped = true;
				appendStringInfo(&rbuf, "%s%d", first_line ? "" : ", ", i + 1);
				first_line = false;
			}
			appendStringInfoChar(&rbuf, ']');
		}
		if (r->stop)
			appendStringInfoString(&rbuf, ", \"stop\": true");
		appendStringInfoChar(&rbuf, '}');
	}

	exact = num_const(0);
	for (i = 0; i < nlines; i++)
	{
		Line	   *l = &lines[i];
		Numeric		factor = num_add(num_mul(l->mul, l->best), l->add);

		l->base = num_mul(l->base, factor); /* now the line's exact points */
		exact = num_add(exact, l->base);
	}
	points = points_from_numeric_rounded(NumericGetDatum(exact), ctx->rounding);
	points = points_add_checked(points, bonus_add);
	points = points_add_checked(points, bonus_best);

	/*
	 * The program's ceiling: however the rules stack, a purchase earns at
	 * most its base points times the maximum multiplier.
	 */
	if (ctx->max_multiplier)
	{
		Numeric		ceiling_exact = num_mul(num_mul(total_amount, DatumGetNumeric(ctx->earn_rate)),
											DatumGetNumeric(ctx->max_multiplier));
		Points		ceiling = points_from_numeric_rounded(NumericGetDatum(ceiling_exact), ctx->rounding);

		if (points > ceiling)
		{
			uncapped = points;
			points = ceiling;
		}
	}

	if (details)
	{
		appendStringInfo(details, "{\"earn_base\": %s, \"earn_rate\": %s, \"line_points\": %s, "
						 "\"rounding\": \"%s\", \"bonus\": " INT64_FORMAT ", \"points\": " INT64_FORMAT,
						 num_str(total_amount), num_str(DatumGetNumeric(ctx->earn_rate)), num_str(exact),
						 ctx->rounding_name, points_add_checked(bonus_add, bonus_best), points);
		if (bonus_best_rule)
		{
			appendStringInfoString(details, ", \"best_bonus_rule\": ");
			json_str(details, bonus_best_rule);
		}
		if (ctx->store)
		{
			appendStringInfoString(details, ", \"store\": ");
			json_str(details, text_to_cstring(ctx->store));
		}
		if (uncapped)
			appendStringInfo(details, ", \"ceiling\": {\"max_multiplier\": %s, \"points_before\": " INT64_FORMAT "}",
							 num_str(DatumGetNumeric(ctx->max_multiplier)), uncapped);
		appendStringInfo(details, ", \"rules\": [%s]", rbuf.data);
		if (ctx->lines)
		{
			appendStringInfoString(details, ", \"lines\": [");
			for (i = 0; i < nlines; i++)
			{
				Line	   *l = &lines[i];

				appendStringInfo(details, "%s{\"line\": %d, \"category\": ", i ? ", " : "", i + 1);
				json_str(details, l->category);
				appendStringInfoString(details, ", \"product\": ");
				json_str(details, l->product);
				appendStringInfo(details, ", \"quantity\": %s, \"amount\": %s, \"points\": %s}",
								 l->quantity ? num_str(l->quantity) : "null",
								 num_str(l->amount), num_str(l->base));
			}
			appendStringInfoChar(details, ']');
		}
		appendStringInfoChar(details, '}');
	}
	if (ctx->facts)
	{
		PurchaseFacts *pf = ctx->facts;

		pf->nlines = nlines;
		pf->categories = palloc(sizeof(char *) * nlines);
		pf->amounts = palloc(sizeof(Numeric) * nlines);
		for (i = 0; i < nlines; i++)
		{
			pf->categories[i] = lines[i].category;
			pf->amounts[i] = lines[i].amount;
		}
		pf->lt = lt;
		pf->tags_read = facts.tags_read;
		pf->tags = facts.tags;
		pf->valid = true;
	}
	return points;
}
