/*
 * challenges.c
 *		Challenge progress, moved in the transaction of the fact that moves
 *		it: a purchase (from the write path), an activity or a referral
 *		payout (from SQL, through loyalty.challenge_move).
 *
 * A program's active challenges are read once per backend and kept until
 * the program's rules_version changes (a trigger on loyalty.challenges
 * bumps it, as for earning rules), so a purchase decides in C which
 * challenges it moves and in which period, and what each gains (a day, week
 * or category counted once, with the facts behind it).  The member's periods
 * are read, and written with what a purchase moved (for its refund), through
 * the ledger store (store.h): the row routines where the tables are as
 * created, statements otherwise.  Completion (points through the write path,
 * a badge, events) is rare and stays in loyalty.challenge_complete.
 *
 * Where a period is kept is decided here, once, for the write path and for
 * the SQL writers (loyalty.challenge_progress_put): the latest period of each
 * challenge is an element of the member's one loyalty.challenge_state row,
 * so that a purchase moving many challenges reads and writes one row; a
 * period that a later one of its challenge replaces moves to
 * loyalty.challenge_periods, where a fact dated before the latest period
 * reads and writes it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rangetypes.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "challenges.h"
#include "loyalty.h"
#include "rules.h"
#include "store.h"

PG_FUNCTION_INFO_V1(loyalty_challenge_move);
PG_FUNCTION_INFO_V1(loyalty_challenge_period);
PG_FUNCTION_INFO_V1(loyalty_challenge_progress_put);

typedef enum Metric
{
	M_PURCHASES,
	M_SPEND,
	M_VISITS,
	M_CATEGORIES,
	M_ACTIVITIES,
	M_REFERRALS,
	M_STREAK
} Metric;

typedef enum Period
{
	P_MONTH,
	P_WEEK,
	P_DAYS,
	P_JOINING,
	P_CAMPAIGN,
	P_STREAK
} Period;

/* A row of loyalty.challenges, as the write path needs it. */
typedef struct Challenge
{
	int64		id;
	Metric		metric;
	Numeric		goal;
	Period		period;
	int32		period_days;
	bool		repeating;
	StrList		categories,
				channels,
				activities,
				segments,
				tags;
	Numeric		min_amount;		/* NULL: none */
	bool		has_min_tier;
	int32		min_tier_rank;
	bool		has_from,
				has_until;
	TimestampTz valid_from,
				valid_until;
	double		control_share;	/* 0: no control group */
	char	   *control_seed;
} Challenge;

/* A program's active challenges, in challenge_id order. */
typedef struct ProgramChallenges
{
	int64		program_id;		/* hash key */
	int64		version;		/* the program's rules_version read */
	bool		valid;
	MemoryContext cxt;
	int			n;
	Challenge  *c;
} ProgramChallenges;

/* A challenge a fact moves: the period it falls in and what it adds. */
typedef struct Move
{
	const Challenge *c;
	Numeric		spend;			/* the eligible amount of a purchase */
	Datum		delta;			/* numeric; with items: none */
	bool		has_delta;
	char	  **keys;			/* with items: the days, weeks or categories */
	int			nkeys;
	Datum		items;			/* jsonb {key: 1, ...} of the keys, for the
								 * fact */
	bool		every;			/* the period depends on the earlier ones */
	TimestampTz start;
	TimestampTz end;
	bool		open_ended;
	ProgressRow *row;			/* the period's row, when it exists */
	bool		dropped;
} Move;

static HTAB *cache = NULL;
static KeptPlan load_plan;
static KeptPlan account_plan;
static KeptPlan complete_plan;

/*
 * A rolled-back transaction may have loaded definitions under a version
 * number that a later committed change reuses: forget everything then.
 */
static void
ForgetAll(void)
{
	HASH_SEQ_STATUS st;
	ProgramChallenges *pc;

	if (cache == NULL)
		return;
	hash_seq_init(&st, cache);
	while ((pc = hash_seq_search(&st)) != NULL)
		pc->valid = false;
}

static void
CacheXactCallback(XactEvent event, void *arg)
{
	(void) arg;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		ForgetAll();
}

static void
CacheSubXactCallback(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *arg)
{
	(void) sub;
	(void) parent;
	(void) arg;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ForgetAll();
}

static Metric
metric_from(const char *s)
{
	if (strcmp(s, "purchases") == 0)
		return M_PURCHASES;
	if (strcmp(s, "spend") == 0)
		return M_SPEND;
	if (strcmp(s, "visits") == 0)
		return M_VISITS;
	if (strcmp(s, "categories") == 0)
		return M_CATEGORIES;
	if (strcmp(s, "activities") == 0)
		return M_ACTIVITIES;
	if (strcmp(s, "referrals") == 0)
		return M_REFERRALS;
	if (strcmp(s, "streak_weeks") == 0)
		return M_STREAK;
	elog(ERROR, "loyalty: unknown challenge metric \"%s\"", s);
	return M_PURCHASES;			/* keep the compiler quiet */
}

static Period
period_from(const char *s)
{
	if (strcmp(s, "month") == 0)
		return P_MONTH;
	if (strcmp(s, "week") == 0)
		return P_WEEK;
	if (strcmp(s, "days") == 0)
		return P_DAYS;
	if (strcmp(s, "joining") == 0)
		return P_JOINING;
	if (strcmp(s, "campaign") == 0)
		return P_CAMPAIGN;
	if (strcmp(s, "streak") == 0)
		return P_STREAK;
	/* the table's CHECK allows no other; challenge_period takes any text */
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown challenge period \"%s\"", s),
			 errhint("A period is month, week, days, joining, campaign or streak.")));
	return P_MONTH;
}

/* The program's active challenges, read when its rules_version moved. */
static ProgramChallenges *
ProgramChallengesGet(int64 program_id, int64 version)
{
	static const Oid types[1] = {INT8OID};
	ProgramChallenges *pc;
	bool		found;
	Datum		values[1];
	MemoryContext old;
	uint64		i;

	if (cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(ProgramChallenges);
		ctl.hcxt = CacheMemoryContext;
		cache = hash_create("loyalty challenges", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		RegisterXactCallback(CacheXactCallback, NULL);
		RegisterSubXactCallback(CacheSubXactCallback, NULL);
	}
	pc = hash_search(cache, &program_id, HASH_ENTER, &found);
	if (!found)
	{
		pc->cxt = NULL;
		pc->valid = false;
	}
	if (pc->valid && pc->version == version)
		return pc;

	pc->valid = false;
	if (pc->cxt == NULL)
		pc->cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty challenges", ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(pc->cxt);
	pc->n = 0;
	pc->c = NULL;

	values[0] = Int64GetDatum(program_id);
	if (loyalty_run(&load_plan,
					"SELECT challenge_id, metric, goal, period, period_days, repeating,"
					" categories, channels, activities, min_amount, segments, tags, min_tier_rank,"
					" valid_from, valid_until, control_share::pg_catalog.float8, control_seed"
					" FROM loyalty.challenges WHERE program_id" EQ "$1 AND active ORDER BY challenge_id",
					1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: reading challenges failed");

	old = MemoryContextSwitchTo(pc->cxt);
	pc->c = palloc0(sizeof(Challenge) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Challenge  *c = &pc->c[i];
		bool		isnull;
		Datum		d;

		c->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		c->metric = metric_from(SPI_getvalue(tup, desc, 2));
		c->goal = DatumGetNumericCopy(SPI_getbinval(tup, desc, 3, &isnull));
		c->period = period_from(SPI_getvalue(tup, desc, 4));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		c->period_days = isnull ? 0 : DatumGetInt32(d);
		c->repeating = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		c->categories = text_array(tup, desc, 7);
		c->channels = text_array(tup, desc, 8);
		c->activities = text_array(tup, desc, 9);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		c->min_amount = isnull ? NULL : DatumGetNumericCopy(d);
		c->segments = text_array(tup, desc, 11);
		c->tags = text_array(tup, desc, 12);
		d = SPI_getbinval(tup, desc, 13, &isnull);
		c->has_min_tier = !isnull;
		c->min_tier_rank = isnull ? 0 : DatumGetInt32(d);
		d = SPI_getbinval(tup, desc, 14, &isnull);
		c->has_from = !isnull;
		c->valid_from = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 15, &isnull);
		c->has_until = !isnull;
		c->valid_until = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 16, &isnull);
		c->control_share = isnull ? 0 : DatumGetFloat8(d);
		c->control_seed = SPI_getvalue(tup, desc, 17);
	}
	pc->n = (int) SPI_processed;
	MemoryContextSwitchTo(old);
	pc->version = version;
	pc->valid = true;
	return pc;
}

/* 0 and 1, made once (numerics are never changed in place). */
static Numeric
num_const(int v)
{
	static Numeric made[2];

	Assert(v == 0 || v == 1);
	if (made[v] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		made[v] = int64_to_numeric(v);
		MemoryContextSwitchTo(old);
	}
	return made[v];
}

static int
num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static bool
num_positive(Numeric a)
{
	return !numeric_is_nan(a) && num_cmp(a, num_const(0)) > 0;
}

/* A local date (in the program's time zone) as the key of a day or week. */
static char *
date_key(int julian)
{
	int			y,
				m,
				d;

	j2date(julian, &y, &m, &d);
	if (y < 0 || y > 9999)
		return psprintf("%04d-%02d-%02d", y, m, d);
	else
	{
		/* per purchase and challenge: no format string */
		char	   *k = palloc(11);

		k[0] = '0' + y / 1000;
		k[1] = '0' + y / 100 % 10;
		k[2] = '0' + y / 10 % 10;
		k[3] = '0' + y % 10;
		k[4] = '-';
		k[5] = '0' + m / 10;
		k[6] = '0' + m % 10;
		k[7] = '-';
		k[8] = '0' + d / 10;
		k[9] = '0' + d % 10;
		k[10] = '\0';
		return k;
	}
}

/* The instant a local (wall-clock) date begins in the time zone. */
static TimestampTz
local_midnight(int julian, Datum zone)
{
	int			y,
				m,
				d;
	struct pg_tm tm = {0};
	Timestamp	local;

	j2date(julian, &y, &m, &d);
	tm.tm_year = y;
	tm.tm_mon = m;
	tm.tm_mday = d;
	if (tm2timestamp(&tm, 0, NULL, &local) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone, zone, TimestampGetDatum(local)));
}

static TimestampTz
plus_days(TimestampTz t, int32 days)
{
	Interval	iv = {0};

	iv.day = days;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(t),
												   IntervalPGetDatum(&iv)));
}

/*
 * Jsonb objects are built from values, not from text parsed again: the
 * object's keys end up sorted and unique as jsonb_in leaves them, the last
 * value of a key kept.
 */
static void
push_pair(JsonbParseState **st, const char *key, int keylen, Numeric n)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = keylen;
	(void) pushJsonbValue(st, WJB_KEY, &k);
	v.type = jbvNumeric;
	v.val.numeric = n;
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/* A JSON object of the keys, each counted once: {"key": 1, ...}. */
static Datum
items_json(char **keys, int n)
{
	JsonbParseState *st = NULL;
	Numeric		one = int64_to_numeric(1);
	int			i;

	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < n; i++)
		push_pair(&st, keys[i], strlen(keys[i]), one);
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL)));
}

static char *
text_or_null(text *t)
{
	return t ? text_to_cstring(t) : NULL;
}

/* The calendar of a moment in the program's time zone. */
typedef struct LocalDay
{
	Datum		zone;			/* text */
	int			year,
				month;
	int			today;			/* Julian day numbers */
	int			monday;			/* of the ISO week */
	/* the month's and the week's bounds, found once for all challenges */
	bool		has_month,
				has_week;
	TimestampTz month_start,
				month_end,
				week_start,
				week_end;
} LocalDay;

static LocalDay
local_day(TimestampTz at, const char *time_zone, const LocalTime *known)
{
	LocalDay	d = {0};
	LocalTime	lt = known ? *known : local_time(at, time_zone);

	d.zone = CStringGetTextDatum(time_zone);
	d.year = lt.year;
	d.month = lt.month;
	d.today = lt.julian;
	d.monday = lt.julian - (lt.isodow - 1);
	d.has_month = d.has_week = false;
	return d;
}

/*
 * The period of a challenge that a fact at `at` falls in, or opens:
 * calendar periods in the program's time zone (the month or ISO week of
 * `at`), the first period_days days of membership, the challenge's own
 * window, and for 'days' and 'streak' the period a first fact at `at` opens
 * (period_days from it; the streak from its week on, open-ended).  The one
 * definition, for the write path and loyalty.challenge_period.
 */
static void
period_of(Period period, int32 period_days, bool has_from, TimestampTz valid_from, bool has_until,
		  TimestampTz valid_until, TimestampTz at, LocalDay *d, TimestampTz joined,
		  TimestampTz *start, TimestampTz *end, bool *open_ended)
{
	*open_ended = false;
	*end = 0;
	switch (period)
	{
		case P_MONTH:
			if (!d->has_month)
			{
				d->month_start = local_midnight(date2j(d->year, d->month, 1), d->zone);
				d->month_end = local_midnight(d->month == 12 ? date2j(d->year + 1, 1, 1) :
											  date2j(d->year, d->month + 1, 1), d->zone);
				d->has_month = true;
			}
			*start = d->month_start;
			*end = d->month_end;
			break;
		case P_WEEK:
		case P_STREAK:
			if (!d->has_week)
			{
				d->week_start = local_midnight(d->monday, d->zone);
				d->week_end = local_midnight(d->monday + 7, d->zone);
				d->has_week = true;
			}
			*start = d->week_start;
			*end = d->week_end;
			*open_ended = period == P_STREAK;
			if (period == P_STREAK)
				*end = 0;
			break;
		case P_JOINING:
			*start = joined;
			*end = plus_days(joined, period_days);
			break;
		case P_CAMPAIGN:
			if (has_from)
				*start = valid_from;
			else
				TIMESTAMP_NOBEGIN(*start);
			*open_ended = !has_until;
			*end = has_until ? valid_until : 0;
			break;
		case P_DAYS:
			*start = at;
			*end = plus_days(at, period_days);
			break;
	}
}

/*
 * The period of each challenge that depends on the member's earlier ones: one
 * that does not repeat is done once completed; a fact continues the instance
 * of a 'days' challenge it falls in, and the unfinished streak whose last
 * week is this week or the one before.  rows: by challenge, latest first.
 */
static bool
PeriodContinues(const Move *m, const ProgressRow *p, TimestampTz at, const char *prev_week)
{
	if (m->c->period == P_DAYS)
		return !p->end_null && p->period_start <= at && at < p->period_end;
	if (m->c->period == P_STREAK && !p->completed && p->last_item != NULL)
	{
		char	   *last = text_to_cstring(p->last_item);

		return strcmp(last, prev_week) >= 0;
	}
	return false;
}

static void
ContinuePeriod(Move *m, const ProgressRow *rows, int nrows, TimestampTz at, const char *prev_week)
{
	int			r;

	for (r = 0; r < nrows; r++)
	{
		const ProgressRow *p = &rows[r];

		if (p->challenge_id != m->c->id)
			continue;
		if (p->completed && !m->c->repeating)
		{
			m->dropped = true;
			return;
		}
		if (m->row)
			continue;			/* the latest match is taken; look on for
								 * completions */
		if (PeriodContinues(m, p, at, prev_week))
			m->row = (ProgressRow *) p;
	}
	if (m->row)
	{
		m->start = m->row->period_start;
		m->end = m->row->period_end;
		m->open_ended = m->row->end_null;
	}
}

/* The row of the period found or opened, among those read. */
static ProgressRow *
RowOf(const Move *m, ProgressRow *rows, int nrows)
{
	int			r;

	for (r = 0; r < nrows; r++)
		if (rows[r].challenge_id == m->c->id && rows[r].period_start == m->start)
			return &rows[r];
	return NULL;
}

/* The greater of two texts in the column's (the default) collation; NULL: the other. */
static text *
text_greater(text *a, text *b)
{
	if (a == NULL)
		return b;
	if (b == NULL)
		return a;
	return DatumGetTextPP(DirectFunctionCall2Coll(text_larger, DEFAULT_COLLATION_OID,
												  PointerGetDatum(a), PointerGetDatum(b)));
}

/*
 * The keys counted into a period's items, each with the number of facts
 * behind it; *added: the keys new to the period (what its value grows by).
 */
static Datum
items_add(Datum old_items, char **keys, int nkeys, int *added)
{
	Jsonb	   *old = old_items ? DatumGetJsonbP(old_items) : NULL;
	JsonbParseState *st = NULL;
	Numeric    *counts = palloc(sizeof(Numeric) * nkeys);
	int			i;

	*added = 0;
	for (i = 0; i < nkeys; i++)
	{
		JsonbValue	res;
		JsonbValue *v = old && JB_ROOT_IS_OBJECT(old) ?
		getKeyJsonValueFromContainer(&old->root, keys[i], strlen(keys[i]), &res) : NULL;

		counts[i] = num_const(1);
		if (v != NULL && v->type == jbvNumeric)
			counts[i] = numeric_add_opt_error(v->val.numeric, counts[i], NULL);
		else
			(*added)++;
	}
	if (old == NULL || !JB_ROOT_IS_OBJECT(old))
	{
		/* as old || fresh did: an array or scalar before stays in front */
		Datum		fresh;

		(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		for (i = 0; i < nkeys; i++)
			push_pair(&st, keys[i], strlen(keys[i]), counts[i]);
		fresh = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL)));
		return old ? DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(old), fresh) : fresh;
	}
	else
	{
		/* the old pairs, then the new counts (the later value of a key wins) */
		JsonbIterator *it = JsonbIteratorInit(&old->root);
		JsonbIteratorToken tok;
		JsonbValue	v;
		JsonbValue *res = NULL;
		int			depth = 0;

		while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
		{
			if (tok == WJB_BEGIN_ARRAY || tok == WJB_BEGIN_OBJECT)
				depth++;
			else if (tok == WJB_END_ARRAY || tok == WJB_END_OBJECT)
				depth--;
			if (tok == WJB_END_OBJECT && depth == 0)
			{
				for (i = 0; i < nkeys; i++)
					push_pair(&st, keys[i], strlen(keys[i]), counts[i]);
			}
			res = pushJsonbValue(&st, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
		}
		return JsonbPGetDatum(JsonbValueToJsonb(res));
	}
}

/* A member's latest periods (its loyalty.challenge_state row), unpacked. */
typedef struct MemberState
{
	int64		member_id;
	int64		program_id;
	StateRow	row;			/* as read (row.found: it exists) */
	int			n;
	int			max;
	ProgressRow *slots;			/* slots[i].slot == i */
	bool		has_joined;		/* joined_at is kept in the row */
	TimestampTz joined;
	int			ndone;			/* earlier_done */
	int64	   *done;
	bool		changed;		/* values, items, last items, update times */
	bool		reshaped;		/* anything else: every array is rebuilt */
	bool		extra_changed;	/* joined_at or earlier_done */
} MemberState;

/* The element types of challenge_state's arrays, by SS_ column. */
typedef struct ElemType
{
	Oid			type;
	int16		len;
	bool		byval;
	char		align;
} ElemType;

static const ElemType elem_types[SS_NCOLS] = {
	[SS_IDS] = {INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	[SS_STARTS] = {TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	[SS_ENDS] = {TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	[SS_VALUES] = {NUMERICOID, -1, false, TYPALIGN_INT},
	[SS_ITEMS] = {JSONBOID, -1, false, TYPALIGN_INT},
	[SS_LAST] = {TEXTOID, -1, false, TYPALIGN_INT},
	[SS_COMPLETED] = {TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	[SS_COMPLETIONS] = {INT4OID, 4, true, TYPALIGN_INT},
	[SS_AWARD] = {INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	[SS_AWARD_MEMBER] = {INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	[SS_CLAWED] = {TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
	[SS_UPDATED] = {TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE},
};

static void
state_corrupt(int64 member_id, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the challenge state of member %lld is not valid", (long long) member_id),
			 errdetail("%s", why),
			 errhint("Its arrays must be one-dimensional, of one length, with no NULL where its columns in loyalty.challenge_progress are NOT NULL.")));
}

/* Read the member's latest periods (under its lock). */
static void
StateLoad(StoreWriter *w, int64 member_id, int64 program_id, MemberState *ms)
{
	Datum	   *el[SS_NCOLS];
	bool	   *nl[SS_NCOLS];
	int			c,
				i,
				n = -1;

	memset(ms, 0, sizeof(MemberState));
	ms->member_id = member_id;
	ms->program_id = program_id;
	if (!store_read_state(w, member_id, &ms->row))
		return;
	ms->program_id = DatumGetInt64(ms->row.cols[SS_PROGRAM]);
	ms->has_joined = !ms->row.nulls[SS_JOINED];
	ms->joined = ms->has_joined ? DatumGetTimestampTz(ms->row.cols[SS_JOINED]) : 0;
	if (ms->row.nulls[SS_EARLIER_DONE])
		state_corrupt(member_id, "earlier_done is NULL.");
	else
	{
		ArrayType  *a = DatumGetArrayTypeP(ms->row.cols[SS_EARLIER_DONE]);
		Datum	   *d;
		bool	   *dn;

		if (ARR_NDIM(a) > 1 || ARR_ELEMTYPE(a) != INT8OID)
			state_corrupt(member_id, "earlier_done is not a one-dimensional bigint array.");
		deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &dn, &ms->ndone);
		ms->done = palloc(sizeof(int64) * Max(ms->ndone, 1));
		for (i = 0; i < ms->ndone; i++)
		{
			if (dn[i])
				state_corrupt(member_id, "earlier_done holds a NULL.");
			ms->done[i] = DatumGetInt64(d[i]);
		}
	}
	for (c = SS_IDS; c <= SS_UPDATED; c++)
	{
		const ElemType *t = &elem_types[c];
		ArrayType  *a;
		int			k;

		if (ms->row.nulls[c])
			state_corrupt(member_id, "An array is NULL.");
		a = DatumGetArrayTypeP(ms->row.cols[c]);
		if (ARR_NDIM(a) > 1 || ARR_ELEMTYPE(a) != t->type)
			state_corrupt(member_id, "An array is not a one-dimensional array of its type.");
		deconstruct_array(a, t->type, t->len, t->byval, t->align, &el[c], &nl[c], &k);
		if (n >= 0 && k != n)
			state_corrupt(member_id, "The arrays differ in length.");
		n = k;
	}
	ms->n = n;
	ms->max = Max(n, 4);
	ms->slots = palloc0(sizeof(ProgressRow) * ms->max);
	for (i = 0; i < n; i++)
	{
		ProgressRow *p = &ms->slots[i];

		if (nl[SS_IDS][i] || nl[SS_STARTS][i] || nl[SS_VALUES][i] || nl[SS_COMPLETIONS][i] ||
			nl[SS_UPDATED][i])
			state_corrupt(member_id, "A challenge, period start, value, completion count or update time is NULL.");
		p->challenge_id = DatumGetInt64(el[SS_IDS][i]);
		p->period_start = DatumGetTimestampTz(el[SS_STARTS][i]);
		p->end_null = nl[SS_ENDS][i];
		p->period_end = p->end_null ? 0 : DatumGetTimestampTz(el[SS_ENDS][i]);
		p->value = el[SS_VALUES][i];
		p->items = nl[SS_ITEMS][i] ? (Datum) 0 : el[SS_ITEMS][i];
		p->last_item = nl[SS_LAST][i] ? NULL : DatumGetTextPP(el[SS_LAST][i]);
		p->completed = !nl[SS_COMPLETED][i];
		p->completed_at = p->completed ? DatumGetTimestampTz(el[SS_COMPLETED][i]) : 0;
		p->completions = DatumGetInt32(el[SS_COMPLETIONS][i]);
		p->award_null = nl[SS_AWARD][i];
		p->award_entry = p->award_null ? 0 : DatumGetInt64(el[SS_AWARD][i]);
		p->award_member_null = nl[SS_AWARD_MEMBER][i];
		p->award_member = p->award_member_null ? 0 : DatumGetInt64(el[SS_AWARD_MEMBER][i]);
		p->clawed_null = nl[SS_CLAWED][i];
		p->clawed_back_at = p->clawed_null ? 0 : DatumGetTimestampTz(el[SS_CLAWED][i]);
		p->updated_at = DatumGetTimestampTz(el[SS_UPDATED][i]);
		p->slot = i;
		ItemPointerSetInvalid(&p->tid);
		p->tuple = NULL;
	}
}

/* A slot's element of the state row's array `c`. */
static Datum
SlotElement(const ProgressRow *p, int c, bool *isnull)
{
	*isnull = false;
	switch (c)
	{
		case SS_IDS:
			return Int64GetDatum(p->challenge_id);
		case SS_STARTS:
			return TimestampTzGetDatum(p->period_start);
		case SS_ENDS:
			*isnull = p->end_null;
			return TimestampTzGetDatum(p->period_end);
		case SS_VALUES:
			return p->value;
		case SS_ITEMS:
			*isnull = p->items == (Datum) 0;
			return p->items;
		case SS_LAST:
			*isnull = p->last_item == NULL;
			return PointerGetDatum(p->last_item);
		case SS_COMPLETED:
			*isnull = !p->completed;
			return TimestampTzGetDatum(p->completed_at);
		case SS_COMPLETIONS:
			return Int32GetDatum(p->completions);
		case SS_AWARD:
			*isnull = p->award_null;
			return Int64GetDatum(p->award_entry);
		case SS_AWARD_MEMBER:
			*isnull = p->award_member_null;
			return Int64GetDatum(p->award_member);
		case SS_CLAWED:
			*isnull = p->clawed_null;
			return TimestampTzGetDatum(p->clawed_back_at);
		case SS_UPDATED:
			return TimestampTzGetDatum(p->updated_at);
	}
	elog(ERROR, "loyalty: no state array %d", c);
	return (Datum) 0;
}

/*
 * Write the member's latest periods back, when they changed: a purchase's
 * moves change four arrays (values, items, last items, update times) and
 * the others are written as read; a new or reshaped row is built whole.
 */
static void
StateSave(StoreWriter *w, MemberState *ms)
{
	StateRow	r = ms->row;
	Datum	   *el = palloc(sizeof(Datum) * Max(ms->n, 1));
	bool	   *nl = palloc(sizeof(bool) * Max(ms->n, 1));
	int			dims[1] = {ms->n};
	int			lbs[1] = {1};
	int			c,
				i;

	if (!ms->changed && !ms->reshaped && !ms->extra_changed)
		return;
	for (c = SS_IDS; c <= SS_UPDATED; c++)
	{
		const ElemType *t = &elem_types[c];
		bool		moved = c == SS_VALUES || c == SS_ITEMS || c == SS_LAST || c == SS_UPDATED;

		if (ms->row.found && !ms->reshaped && !(moved && ms->changed))
			continue;
		for (i = 0; i < ms->n; i++)
			el[i] = SlotElement(&ms->slots[i], c, &nl[i]);
		r.cols[c] = PointerGetDatum(construct_md_array(el, nl, 1, dims, lbs, t->type, t->len,
													   t->byval, t->align));
		r.nulls[c] = false;
	}
	r.cols[SS_JOINED] = TimestampTzGetDatum(ms->joined);
	r.nulls[SS_JOINED] = !ms->has_joined;
	if (ms->extra_changed || !ms->row.found)
	{
		Datum	   *d = palloc(sizeof(Datum) * Max(ms->ndone, 1));

		for (i = 0; i < ms->ndone; i++)
			d[i] = Int64GetDatum(ms->done[i]);
		r.cols[SS_EARLIER_DONE] = PointerGetDatum(construct_array(d, ms->ndone, INT8OID, 8, FLOAT8PASSBYVAL,
																  TYPALIGN_DOUBLE));
		r.nulls[SS_EARLIER_DONE] = false;
	}
	r.cols[SS_MEMBER] = Int64GetDatum(ms->member_id);
	r.nulls[SS_MEMBER] = false;
	r.cols[SS_PROGRAM] = Int64GetDatum(ms->program_id);
	r.nulls[SS_PROGRAM] = false;
	store_write_state(w, ms->member_id, &r);
	ms->changed = ms->reshaped = ms->extra_changed = false;
}

/* The member's latest period of a challenge, or NULL. */
static ProgressRow *
SlotOf(MemberState *ms, int64 challenge_id)
{
	int			i;

	for (i = 0; i < ms->n; i++)
		if (ms->slots[i].challenge_id == challenge_id)
			return &ms->slots[i];
	return NULL;
}

/* Whether a period of the challenge in challenge_periods is completed. */
static bool
EarlierDone(const MemberState *ms, int64 challenge_id)
{
	int			i;

	for (i = 0; i < ms->ndone; i++)
		if (ms->done[i] == challenge_id)
			return true;
	return false;
}

static void
SetEarlierDone(MemberState *ms, int64 challenge_id, bool done)
{
	if (EarlierDone(ms, challenge_id) == done)
		return;
	if (done)
	{
		ms->done = ms->done ? repalloc(ms->done, sizeof(int64) * (ms->ndone + 1)) : palloc(sizeof(int64));
		ms->done[ms->ndone++] = challenge_id;
	}
	else
	{
		int			i;

		for (i = 0; i < ms->ndone; i++)
			if (ms->done[i] == challenge_id)
				ms->done[i--] = ms->done[--ms->ndone];
	}
	ms->extra_changed = true;
}

/*
 * A slot written over with p's columns (it stays where it is); `moved`:
 * only its value, items, last item and update time differ.
 */
static void
SlotSet(MemberState *ms, ProgressRow *slot, const ProgressRow *p, bool moved)
{
	int			i = slot->slot;

	*slot = *p;
	slot->slot = i;
	ItemPointerSetInvalid(&slot->tid);
	slot->tuple = NULL;
	ms->changed = true;
	if (!moved)
		ms->reshaped = true;
}

/*
 * Keep a period that is not stored yet: the latest of its challenge becomes
 * the challenge's slot (the period it replaces moves to challenge_periods),
 * an earlier one a row of challenge_periods.
 */
static void
PlaceNew(StoreWriter *w, MemberState *ms, const ProgressRow *p)
{
	ProgressRow *slot = SlotOf(ms, p->challenge_id);

	if (slot == NULL)
	{
		if (ms->n == ms->max)
		{
			ms->max = ms->max > 0 ? ms->max * 2 : 8;
			ms->slots = ms->slots ? repalloc(ms->slots, sizeof(ProgressRow) * ms->max)
				: palloc(sizeof(ProgressRow) * ms->max);
		}
		slot = &ms->slots[ms->n];
		slot->slot = ms->n++;
		SlotSet(ms, slot, p, false);
	}
	else if (slot->period_start < p->period_start)
	{
		store_insert_progress(w, ms->member_id, ms->program_id, slot);
		if (slot->completed)
			SetEarlierDone(ms, slot->challenge_id, true);
		SlotSet(ms, slot, p, false);
	}
	else if (slot->period_start > p->period_start)
	{
		store_insert_progress(w, ms->member_id, ms->program_id, p);
		if (p->completed)
			SetEarlierDone(ms, p->challenge_id, true);
	}
	else
		elog(ERROR, "loyalty: challenge %lld's period of member %lld is stored already",
			 (long long) p->challenge_id, (long long) ms->member_id);
}

static int
CompareDone(const void *a, const void *b)
{
	int64		x = ((const ChallengeDone *) a)->challenge_id;
	int64		y = ((const ChallengeDone *) b)->challenge_id;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The member's tags as the fact sees them: as the earning rules read them
 * (or read now), with those the rules put on the member with this purchase
 * (written by this command, so not in its snapshot).
 */
static StrList
fact_tags(const ChallengeFact *f)
{
	StrList		tags;
	ListCell   *lc;

	if (f->purchase && f->purchase->tags_read)
		tags = f->purchase->tags;
	else
		tags = member_tags(f->member_id);
	if (f->new_tags == NIL)
		return tags;
	tags.v = tags.n > 0 ? repalloc(tags.v, sizeof(char *) * (tags.n + list_length(f->new_tags)))
		: palloc(sizeof(char *) * list_length(f->new_tags));
	foreach(lc, f->new_tags)
		tags.v[tags.n++] = text_to_cstring(lfirst(lc));
	return tags;
}

int
challenges_move(const ChallengeFact *f, ChallengeDone **done)
{
	ProgramChallenges *pc = ProgramChallengesGet(f->program_id, f->rules_version);
	Move	   *mv;
	int			nmv = 0;
	int			nlines = 0;
	char	  **cats = NULL;
	Numeric    *amounts = NULL;
	Numeric		total = NULL;
	char	   *channel = text_or_null(f->channel);
	char	   *segment = text_or_null(f->segment);
	bool		tags_read = false;
	StrList		tags = {0, NULL};
	LocalDay	day;
	char	   *prev_week;
	int64	   *req_ids;
	TimestampTz *req_starts;
	bool	   *req_every;
	ProgressRow *rows;
	int			nrows;
	int			nreq;
	bool		need;
	MemberState ms;
	int			nmoved = 0;
	int			ndone = 0;
	int			i,
				j;

	*done = NULL;
	if (pc->n == 0)
		return 0;

	if (f->kind == 'p')
	{
		if (f->purchase)
		{
			nlines = f->purchase->nlines;
			cats = f->purchase->categories;
			amounts = f->purchase->amounts;
		}
		else if (f->lines)
			nlines = rules_order_lines(f->lines, &cats, &amounts);
		else
		{
			nlines = 1;
			cats = palloc0(sizeof(char *));
			amounts = palloc(sizeof(Numeric));
			amounts[0] = f->amount ? f->amount : num_const(0);
		}
		total = num_const(0);
		for (i = 0; i < nlines; i++)
			if (num_positive(amounts[i]))
				total = numeric_add_opt_error(total, amounts[i], NULL);
	}

	/* the challenges this fact counts for (conditions on the fact and member) */
	mv = palloc0(sizeof(Move) * pc->n);
	for (i = 0; i < pc->n; i++)
	{
		const Challenge *c = &pc->c[i];
		Numeric		spend = NULL;

		switch (c->metric)
		{
			case M_ACTIVITIES:
				if (f->kind != 'a' || !strlist_has(&c->activities, f->detail))
					continue;
				break;
			case M_REFERRALS:
				if (f->kind != 'r')
					continue;
				break;
			default:
				if (f->kind != 'p')
					continue;
		}
		if (!strlist_has(&c->channels, channel))
			continue;
		if ((c->has_from && f->at < c->valid_from) || (c->has_until && f->at >= c->valid_until))
			continue;
		if (f->kind == 'p')
		{
			/*
			 * the eligible amount: the whole purchase, or its lines of the
			 * categories
			 */
			if (c->categories.n < 0)
				spend = total;
			else
			{
				spend = num_const(0);
				for (j = 0; j < nlines; j++)
					if (num_positive(amounts[j]) && strlist_has(&c->categories, cats[j]))
						spend = numeric_add_opt_error(spend, amounts[j], NULL);
			}
			if (!num_positive(spend) || (c->min_amount && num_cmp(spend, c->min_amount) < 0))
				continue;
			if (c->metric == M_CATEGORIES && f->lines == NULL)
				continue;
		}
		if (!strlist_has(&c->segments, segment))
			continue;
		if (c->has_min_tier && (f->tier_rank < 0 || f->tier_rank < c->min_tier_rank))
			continue;
		if (c->tags.n >= 0)
		{
			if (!tags_read)
			{
				tags = fact_tags(f);
				tags_read = true;
			}
			if (!strlist_meets(&c->tags, &tags))
				continue;
		}
		/* the challenge's control group is held out */
		if (c->control_share > 0 && rules_in_control(f->member_id, c->control_seed, c->control_share))
			continue;
		mv[nmv].c = c;
		mv[nmv].spend = spend;
		nmv++;
	}
	if (nmv == 0)
		return 0;

	/*
	 * Each one's period: from the calendar, the membership or the campaign,
	 * or (days, streaks, challenges done once) from the member's earlier
	 * periods.  The latest period of each challenge is in the member's state
	 * row; the earlier ones are read (in one go) only for those that depend
	 * on them, and for a fact dated before the latest period.
	 */
	day = local_day(f->at, f->time_zone, f->purchase ? &f->purchase->lt : NULL);
	prev_week = date_key(day.monday - 7);
	StateLoad(f->w, f->member_id, f->program_id, &ms);
	req_ids = palloc(sizeof(int64) * nmv);
	req_starts = palloc0(sizeof(TimestampTz) * nmv);
	req_every = palloc(sizeof(bool) * nmv);
	rows = palloc(sizeof(ProgressRow) * nmv);
	nrows = 0;
	nreq = 0;
	for (i = 0; i < nmv; i++)
	{
		Move	   *m = &mv[i];
		const Challenge *c = m->c;
		ProgressRow *slot = SlotOf(&ms, c->id);

		m->every = c->period == P_DAYS || c->period == P_STREAK || !c->repeating;
		if (c->period != P_DAYS && c->period != P_STREAK)
		{
			if (c->period == P_JOINING && !ms.has_joined)
			{
				/*
				 * kept in the state row (joined_at never changes), else read
				 * once through the store's row routines, not a statement
				 */
				ms.joined = store_read_joined(f->w, f->member_id);
				ms.has_joined = true;
				ms.extra_changed |= ms.row.found;
			}
			period_of(c->period, c->period_days, c->has_from, c->valid_from, c->has_until, c->valid_until,
					  f->at, &day, ms.joined, &m->start, &m->end, &m->open_ended);
		}
		if (slot == NULL)
			continue;			/* no period at all */
		rows[nrows++] = *slot;

		/*
		 * The earlier periods are needed by a challenge done once (whether
		 * one of them is completed: earlier_done says), by a period that
		 * continues an earlier one (when the latest does not), and by a fact
		 * dated before the latest period.
		 */
		if (!c->repeating && (slot->completed || EarlierDone(&ms, c->id)))
		{
			m->dropped = true;	/* done */
			continue;
		}
		else if (c->period == P_DAYS || c->period == P_STREAK)
			need = !PeriodContinues(m, slot, f->at, prev_week);
		else
			need = slot->period_start > m->start;
		if (need)
		{
			req_ids[nreq] = c->id;
			req_starts[nreq] = m->start;
			req_every[nreq] = c->period == P_DAYS || c->period == P_STREAK;
			nreq++;
		}
	}
	if (nreq > 0)
	{
		ProgressRow *earlier;
		int			nearlier = store_read_progress(f->w, f->member_id, req_ids, req_starts, req_every, nreq,
												   &earlier);

		/* after the slots: each challenge's latest period comes first */
		if (nearlier > 0)
		{
			rows = repalloc(rows, sizeof(ProgressRow) * (nrows + nearlier));
			memcpy(&rows[nrows], earlier, sizeof(ProgressRow) * nearlier);
			nrows += nearlier;
		}
	}

	for (i = 0; i < nmv; i++)
	{
		Move	   *m = &mv[i];
		const Challenge *c = m->c;

		if (m->dropped)
			continue;
		if (m->every)
			ContinuePeriod(m, rows, nrows, f->at, prev_week);
		if (m->dropped)
			continue;
		if (m->row == NULL && (c->period == P_DAYS || c->period == P_STREAK))
			period_of(c->period, c->period_days, c->has_from, c->valid_from, c->has_until, c->valid_until,
					  f->at, &day, ms.joined, &m->start, &m->end, &m->open_ended);
		if (f->at < m->start || (!m->open_ended && f->at >= m->end))
		{
			m->dropped = true;
			continue;
		}
		if (m->row == NULL)
			m->row = RowOf(m, rows, nrows);

		/* what it adds */
		switch (c->metric)
		{
			case M_SPEND:
				m->delta = NumericGetDatum(m->spend);
				m->has_delta = true;
				break;
			case M_VISITS:
			case M_STREAK:
				m->keys = palloc(sizeof(char *));
				m->keys[0] = date_key(c->metric == M_VISITS ? day.today : day.monday);
				m->nkeys = 1;
				break;
			case M_CATEGORIES:
				{
					int			k;

					m->keys = palloc(sizeof(char *) * nlines);
					for (j = 0; j < nlines; j++)
					{
						bool		seen = false;

						if (cats[j] == NULL || !num_positive(amounts[j]) || !strlist_has(&c->categories, cats[j]))
							continue;
						for (k = 0; k < m->nkeys && !seen; k++)
							seen = strcmp(m->keys[k], cats[j]) == 0;
						if (!seen)
							m->keys[m->nkeys++] = cats[j];
					}
					if (m->nkeys == 0)
					{
						/* only lines without a category: nothing to count */
						m->dropped = true;
						continue;
					}
					break;
				}
			default:
				m->delta = NumericGetDatum(num_const(1));
				m->has_delta = true;
		}
		if (m->nkeys > 0)
			m->items = items_json(m->keys, m->nkeys);
	}

	/* the periods written, and those that reach their goal now */
	for (i = 0; i < nmv; i++)
	{
		Move	   *m = &mv[i];
		ProgressRow next = {0};
		text	   *last = NULL;
		bool		completed;

		if (m->dropped)
			continue;
		for (j = 0; j < m->nkeys; j++)
			last = text_greater(last, cstring_to_text(m->keys[j]));
		if (m->row)
		{
			int			added = 0;

			next = *m->row;
			if (m->nkeys > 0)
				next.items = items_add(m->row->items, m->keys, m->nkeys, &added);
			next.value = m->has_delta ?
				NumericGetDatum(numeric_add_opt_error(DatumGetNumeric(m->row->value), DatumGetNumeric(m->delta), NULL)) :
				NumericGetDatum(numeric_add_opt_error(DatumGetNumeric(m->row->value), int64_to_numeric(added), NULL));
			next.last_item = text_greater(m->row->last_item, last);
			next.updated_at = GetCurrentTransactionStartTimestamp();
			completed = m->row->completed;
			if (m->row->slot >= 0)
				SlotSet(&ms, &ms.slots[m->row->slot], &next, true);
			else
				store_update_progress(f->w, f->member_id, &next);
		}
		else
		{
			next.challenge_id = m->c->id;
			next.period_start = m->start;
			next.period_end = m->end;
			next.end_null = m->open_ended;
			next.items = m->items;
			next.value = m->has_delta ? m->delta : NumericGetDatum(int64_to_numeric(m->nkeys));
			next.last_item = last;
			next.award_null = next.award_member_null = next.clawed_null = true;
			next.updated_at = GetCurrentTransactionStartTimestamp();
			completed = false;
			PlaceNew(f->w, &ms, &next);
		}
		if (!completed && num_cmp(DatumGetNumeric(next.value), m->c->goal) >= 0)
		{
			if (*done == NULL)
				*done = palloc(sizeof(ChallengeDone) * nmv);
			(*done)[ndone].challenge_id = m->c->id;
			(*done)[ndone].period_start = m->start;
			ndone++;
		}
		mv[nmoved++] = *m;
	}
	StateSave(f->w, &ms);
	if (nmoved == 0)
		return 0;

	/* what a purchase moved, so that its refund can take it back */
	if (f->kind == 'p' && f->entry_id != 0)
	{
		ChallengeFactsRow cf;
		Datum	   *ids = palloc(sizeof(Datum) * nmoved);
		Datum	   *deltas = palloc(sizeof(Datum) * nmoved);
		Datum	   *items = palloc(sizeof(Datum) * nmoved);
		Datum	   *starts = palloc(sizeof(Datum) * nmoved);
		bool	   *delta_null = palloc(sizeof(bool) * nmoved);
		bool	   *items_null = palloc(sizeof(bool) * nmoved);
		int			dims[1];
		int			lbs[1] = {1};

		for (i = 0; i < nmoved; i++)
		{
			ids[i] = Int64GetDatum(mv[i].c->id);
			starts[i] = TimestampTzGetDatum(mv[i].start);
			deltas[i] = mv[i].delta;
			delta_null[i] = !mv[i].has_delta;
			items[i] = mv[i].items;
			items_null[i] = mv[i].nkeys == 0;
		}
		dims[0] = nmoved;
		cf.member_id = f->member_id;
		cf.entry_id = f->entry_id;
		cf.program_id = f->program_id;
		cf.challenge_ids = PointerGetDatum(construct_array(ids, nmoved, INT8OID, 8, true, TYPALIGN_DOUBLE));
		cf.period_starts = PointerGetDatum(construct_array(starts, nmoved, TIMESTAMPTZOID, 8, true,
														   TYPALIGN_DOUBLE));
		cf.deltas = PointerGetDatum(construct_md_array(deltas, delta_null, 1, dims, lbs, NUMERICOID, -1, false,
													   TYPALIGN_INT));
		cf.items = PointerGetDatum(construct_md_array(items, items_null, 1, dims, lbs, JSONBOID, -1, false,
													  TYPALIGN_INT));
		store_insert_challenge_facts(f->w, &cf);
	}
	if (ndone > 1)
		qsort(*done, ndone, sizeof(ChallengeDone), CompareDone);
	return ndone;
}

/* Complete the periods that reached their goal: points, badge, events. */
void
challenges_complete(int64 member_id, const ChallengeDone *done, int n, TimestampTz at)
{
	static const Oid types[4] = {INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	int			i;

	for (i = 0; i < n; i++)
	{
		Datum		values[4];

		values[0] = Int64GetDatum(member_id);
		values[1] = Int64GetDatum(done[i].challenge_id);
		values[2] = TimestampTzGetDatum(done[i].period_start);
		values[3] = TimestampTzGetDatum(at);
		if (loyalty_run(&complete_plan, "SELECT loyalty.challenge_complete($1, $2, $3, $4)",
						4, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "loyalty: completing a challenge failed");
	}
}

/*
 * loyalty.challenge_move(member, entry, fact, amount, occurred_at, channel,
 * lines, detail): the same for SQL callers (an activity, a referral payout),
 * under the member's lock; returns the periods completed.
 */
Datum
loyalty_challenge_move(PG_FUNCTION_ARGS)
{
	static const Oid types[1] = {INT8OID};
	ChallengeFact f = {0};
	ChallengeDone *done;
	Datum		values[1];
	char	   *fact;
	bool		isnull;
	int			n = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		PG_RETURN_INT32(0);
	fact = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(fact, "purchase") == 0)
		f.kind = 'p';
	else if (strcmp(fact, "activity") == 0)
		f.kind = 'a';
	else if (strcmp(fact, "referral") == 0)
		f.kind = 'r';
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown challenge fact \"%s\"", fact),
				 errhint("A purchase, an activity or a referral moves challenges.")));
	f.member_id = PG_GETARG_INT64(0);
	f.entry_id = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	f.amount = PG_ARGISNULL(3) ? NULL : PG_GETARG_NUMERIC(3);
	f.at = PG_GETARG_TIMESTAMPTZ(4);
	f.channel = PG_ARGISNULL(5) ? NULL : PG_GETARG_TEXT_PP(5);
	f.lines = PG_ARGISNULL(6) ? NULL : PG_GETARG_JSONB_P(6);
	f.detail = PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7));

	SPI_connect();
	values[0] = Int64GetDatum(f.member_id);
	if (loyalty_run(&account_plan,
					"SELECT a.program_id, a.status" EQ "'active', a.segment, loyalty.tier_rank(a.tier),"
					" p.time_zone, p.rules_version"
					" FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id" EQ "a.program_id"
					" WHERE a.member_id" EQ "$1",
					1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: reading the account failed");
	if (SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		d;

		f.program_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		f.segment = isnull ? NULL : DatumGetTextPP(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		f.tier_rank = isnull ? -1 : DatumGetInt32(d);
		f.time_zone = SPI_getvalue(tup, desc, 5);
		f.rules_version = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		f.w = store_begin();
		n = challenges_move(&f, &done);
		store_end(f.w);
		challenges_complete(f.member_id, done, n, f.at);
	}
	SPI_finish();
	PG_RETURN_INT32(n);
}

/*
 * loyalty.challenge_period(period, period_days, valid_from, valid_until, at,
 * time_zone, joined_at): the period a fact at `at` falls in (or opens), as
 * the write path decides it, for member_progress.
 */
Datum
loyalty_challenge_period(PG_FUNCTION_ARGS)
{
	TypeCacheEntry *typcache;
	RangeBound	lower = {0},
				upper = {0};
	LocalDay	day;
	TimestampTz start,
				end,
				at;
	bool		open_ended;
	Period		period;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(4) || PG_ARGISNULL(5))
		PG_RETURN_NULL();
	period = period_from(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if ((period == P_DAYS || period == P_JOINING) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	if (period == P_JOINING && PG_ARGISNULL(6))
		PG_RETURN_NULL();
	at = PG_GETARG_TIMESTAMPTZ(4);
	day = local_day(at, text_to_cstring(PG_GETARG_TEXT_PP(5)), NULL);
	period_of(period, PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1),
			  !PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_TIMESTAMPTZ(2),
			  !PG_ARGISNULL(3), PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3),
			  at, &day, PG_ARGISNULL(6) ? 0 : PG_GETARG_TIMESTAMPTZ(6), &start, &end, &open_ended);

	typcache = lookup_type_cache(TSTZRANGEOID, TYPECACHE_RANGE_INFO);
	lower.val = TimestampTzGetDatum(start);
	lower.inclusive = true;
	lower.lower = true;
	upper.val = TimestampTzGetDatum(end);
	upper.infinite = open_ended;
	upper.inclusive = false;
	upper.lower = false;
#if PG_VERSION_NUM >= 160000
	PG_RETURN_RANGE_P(make_range(typcache, &lower, &upper, false, NULL));
#else
	PG_RETURN_RANGE_P(make_range(typcache, &lower, &upper, false));
#endif
}

/* A column of a challenge_progress row, or an error when it is NULL but must not be. */
static Datum
period_column(HeapTupleHeader t, const char *name, bool required, bool *isnull)
{
	Datum		d = GetAttributeByName(t, name, isnull);

	if (*isnull && required)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a challenge period's %s must not be null", name)));
	return d;
}

/*
 * loyalty.challenge_progress_put(period): store a member's period as given,
 * for the SQL writers (completion, refund, merge), under the member's lock:
 * over the period with its member, challenge and start, or as a new one,
 * where it belongs (the same decision as the write path's).
 */
Datum
loyalty_challenge_progress_put(PG_FUNCTION_ARGS)
{
	HeapTupleHeader t = PG_GETARG_HEAPTUPLEHEADER(0);
	ProgressRow p = {0};
	ProgressRow *slot;
	MemberState ms;
	StoreWriter *w;
	int64		member_id;
	int64		program_id;
	bool		isnull;
	Datum		d;

	member_id = DatumGetInt64(period_column(t, "member_id", true, &isnull));
	program_id = DatumGetInt64(period_column(t, "program_id", true, &isnull));
	p.challenge_id = DatumGetInt64(period_column(t, "challenge_id", true, &isnull));
	p.period_start = DatumGetTimestampTz(period_column(t, "period_start", true, &isnull));
	d = period_column(t, "period_end", false, &p.end_null);
	p.period_end = p.end_null ? 0 : DatumGetTimestampTz(d);
	p.value = PointerGetDatum(PG_DETOAST_DATUM_COPY(period_column(t, "value", true, &isnull)));
	d = period_column(t, "items", false, &isnull);
	p.items = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
	d = period_column(t, "last_item", false, &isnull);
	p.last_item = isnull ? NULL : DatumGetTextPCopy(d);
	d = period_column(t, "completed_at", false, &isnull);
	p.completed = !isnull;
	p.completed_at = isnull ? 0 : DatumGetTimestampTz(d);
	p.completions = DatumGetInt32(period_column(t, "completions", true, &isnull));
	d = period_column(t, "award_entry", false, &p.award_null);
	p.award_entry = p.award_null ? 0 : DatumGetInt64(d);
	d = period_column(t, "award_member", false, &p.award_member_null);
	p.award_member = p.award_member_null ? 0 : DatumGetInt64(d);
	d = period_column(t, "clawed_back_at", false, &p.clawed_null);
	p.clawed_back_at = p.clawed_null ? 0 : DatumGetTimestampTz(d);
	p.updated_at = DatumGetTimestampTz(period_column(t, "updated_at", true, &isnull));
	p.slot = -1;

	SPI_connect();
	w = store_begin();
	StateLoad(w, member_id, program_id, &ms);
	slot = SlotOf(&ms, p.challenge_id);
	if (slot != NULL && slot->period_start == p.period_start)
		SlotSet(&ms, slot, &p, false);
	else if (slot == NULL || slot->period_start < p.period_start)
		PlaceNew(w, &ms, &p);
	else
	{
		/* an earlier period: over its row, or a new row */
		ProgressRow *rows;
		bool		every = false;

		if (store_read_progress(w, member_id, &p.challenge_id, &p.period_start, &every, 1, &rows) > 0)
		{
			bool		was_done = rows[0].completed;
			bool		done = p.completed;

			p.tid = rows[0].tid;
			p.tuple = rows[0].tuple;
			store_update_progress(w, member_id, &p);
			if (was_done && !done)
			{
				int			n,
							i;

				/* undone: is another earlier period of it completed? */
				every = true;
				n = store_read_progress(w, member_id, &p.challenge_id, &p.period_start, &every, 1, &rows);
				for (i = 0; i < n && !done; i++)
					done = rows[i].completed;
			}
			if (was_done || done)
				SetEarlierDone(&ms, p.challenge_id, done);
		}
		else
		{
			store_insert_progress(w, member_id, ms.program_id, &p);
			if (p.completed)
				SetEarlierDone(&ms, p.challenge_id, true);
		}
	}
	StateSave(w, &ms);
	store_end(w);
	SPI_finish();
	PG_RETURN_VOID();
}
