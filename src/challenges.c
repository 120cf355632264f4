/*
 * challenges.c
 *		Challenge progress, moved in the transaction of the fact that moves
 *		it: a purchase (from the write path), an activity or a referral
 *		payout (from SQL, through loyalty.challenge_move).
 *
 * A program's active challenges are read once per backend and kept until
 * the program's rules_version changes (a trigger on loyalty.challenges
 * bumps it, as for earning rules), so a purchase decides in C which
 * challenges it moves and in which period, and writes the progress of all
 * of them, and what it moved (for its refund), in one statement.  Completion
 * (points through the write path, a badge, events) is rare and stays in
 * loyalty.challenge_complete.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
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

PG_FUNCTION_INFO_V1(loyalty_challenge_move);
PG_FUNCTION_INFO_V1(loyalty_challenge_period);

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
	Datum		items;			/* jsonb: the day, week or categories */
	bool		has_items;
	TimestampTz start;
	TimestampTz end;
	bool		has_start;		/* an existing period was found */
	bool		open_ended;
	bool		dropped;
} Move;

/*
 * Every moved period of a fact, and what a purchase moved (so that its
 * refund can take it back), in one statement.  $1 member, $2 program, $3
 * challenges, $4 deltas, $5 items, $6 and $7 the periods, $8 the purchase's
 * entry (NULL: not a purchase).  Two forms: with items (days, weeks or
 * categories, each kept with the number of facts behind it) and, cheaper to
 * start, without.
 */
#define UPSERT_HEAD \
	"WITH x AS (" \
	" SELECT * FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.int8[])," \
	"  pg_catalog.unnest($4::pg_catalog.numeric[]), pg_catalog.unnest($5::pg_catalog.jsonb[])," \
	"  pg_catalog.unnest($6::pg_catalog.timestamptz[]), pg_catalog.unnest($7::pg_catalog.timestamptz[]))" \
	"  AS x(challenge_id, delta, items, period_start, period_end)" \
	"), moved AS ("
#define UPSERT_TAIL \
	" RETURNING p.challenge_id, p.period_start, p.value, p.completed_at IS NULL" \
	"), recorded AS (" \
	" INSERT INTO loyalty.challenge_facts" \
	"  (member_id, entry_id, program_id, challenge_ids, period_starts, deltas, items)" \
	" SELECT $1, $8, $2, $3, $6, $4, $5 WHERE $8 IS NOT NULL" \
	")" \
	" SELECT * FROM moved"
#define UPSERT \
	UPSERT_HEAD \
	" INSERT INTO loyalty.challenge_progress AS p" \
	"  (member_id, challenge_id, period_start, period_end, program_id, value, updated_at)" \
	" SELECT $1, x.challenge_id, x.period_start, x.period_end, $2, x.delta, pg_catalog.now() FROM x" \
	" ON CONFLICT (member_id, challenge_id, period_start) DO UPDATE" \
	" SET value = p.value" PLUS "EXCLUDED.value, updated_at = EXCLUDED.updated_at" \
	UPSERT_TAIL
#define UPSERT_ITEMS \
	UPSERT_HEAD \
	" INSERT INTO loyalty.challenge_progress AS p" \
	"  (member_id, challenge_id, period_start, period_end, program_id, value, items, last_item," \
	"   updated_at)" \
	" SELECT $1, x.challenge_id, x.period_start, x.period_end, $2," \
	"  coalesce(x.delta, (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(x.items)))," \
	"  x.items, (SELECT pg_catalog.max(k) FROM pg_catalog.jsonb_object_keys(x.items) k)," \
	"  pg_catalog.now()" \
	" FROM x" \
	" ON CONFLICT (member_id, challenge_id, period_start) DO UPDATE" \
	" SET items = CASE WHEN EXCLUDED.items IS NULL THEN p.items" \
	"  ELSE p.items OPERATOR(pg_catalog.||) (SELECT pg_catalog.jsonb_object_agg(k," \
	"   coalesce((p.items OPERATOR(pg_catalog.->>) k)::pg_catalog.numeric, 0)" PLUS "1)" \
	"   FROM pg_catalog.jsonb_object_keys(EXCLUDED.items) k) END," \
	"  value = CASE WHEN EXCLUDED.items IS NULL THEN p.value" PLUS "EXCLUDED.value" \
	"  ELSE p.value" PLUS "(SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_object_keys(EXCLUDED.items) k" \
	"   WHERE NOT p.items OPERATOR(pg_catalog.?) k) END," \
	"  last_item = greatest(p.last_item, EXCLUDED.last_item)," \
	"  updated_at = EXCLUDED.updated_at" \
	UPSERT_TAIL

static HTAB *cache = NULL;
static KeptPlan load_plan;
static KeptPlan account_plan;
static KeptPlan rows_plan;
static KeptPlan joined_plan;
static KeptPlan upsert_plan;
static KeptPlan upsert_items_plan;
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
	elog(ERROR, "loyalty: unknown challenge period \"%s\"", s);
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

static int
num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static bool
num_positive(Numeric a)
{
	return !numeric_is_nan(a) && num_cmp(a, int64_to_numeric(0)) > 0;
}

/* A local date (in the program's time zone) as the key of a day or week. */
static char *
date_key(int julian)
{
	int			y,
				m,
				d;

	j2date(julian, &y, &m, &d);
	return psprintf("%04d-%02d-%02d", y, m, d);
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

/* A JSON object of the keys, each counted once: {"key": 1, ...}. */
static Datum
items_json(char **keys, int n)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, keys[i]);
		appendStringInfoString(&buf, ": 1");
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

static char *
text_or_null(text *t)
{
	return t ? text_to_cstring(t) : NULL;
}

/* When the member joined (for challenges of the first days of membership). */
static TimestampTz
joined_at(int64 member_id)
{
	static const Oid types[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;

	values[0] = Int64GetDatum(member_id);
	if (loyalty_run(&joined_plan, "SELECT joined_at FROM loyalty.members WHERE member_id" EQ "$1",
					1, types, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "loyalty: member %lld not found", (long long) member_id);
	return DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* The calendar of a moment in the program's time zone. */
typedef struct LocalDay
{
	Datum		zone;			/* text */
	int			year,
				month;
	int			today;			/* Julian day numbers */
	int			monday;			/* of the ISO week */
} LocalDay;

static LocalDay
local_day(TimestampTz at, const char *time_zone)
{
	LocalDay	d;
	Timestamp	local;
	struct pg_tm tm;
	fsec_t		fsec;

	d.zone = CStringGetTextDatum(time_zone);
	local = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone, d.zone, TimestampTzGetDatum(at)));
	if (timestamp2tm(local, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	d.year = tm.tm_year;
	d.month = tm.tm_mon;
	d.today = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);
	d.monday = d.today - (j2day(d.today) + 6) % 7;
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
		  TimestampTz valid_until, TimestampTz at, const LocalDay *d, TimestampTz joined,
		  TimestampTz *start, TimestampTz *end, bool *open_ended)
{
	*open_ended = false;
	*end = 0;
	switch (period)
	{
		case P_MONTH:
			*start = local_midnight(date2j(d->year, d->month, 1), d->zone);
			*end = local_midnight(d->month == 12 ? date2j(d->year + 1, 1, 1) : date2j(d->year, d->month + 1, 1),
								  d->zone);
			break;
		case P_WEEK:
			*start = local_midnight(d->monday, d->zone);
			*end = local_midnight(d->monday + 7, d->zone);
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
		case P_STREAK:
			*start = local_midnight(d->monday, d->zone);
			*open_ended = true;
			break;
	}
}

/*
 * The member's earlier periods, for the challenges that need them: one that
 * does not repeat is done once completed; a fact continues the instance of
 * a 'days' challenge it falls in, and the unfinished streak whose last week
 * is this week or the one before.
 */
static void
FindPeriods(const ChallengeFact *f, Move *mv, int nmv, const char *prev_week)
{
	static const Oid types[2] = {INT8OID, INT8ARRAYOID};
	Datum	   *ids = palloc(sizeof(Datum) * nmv);
	int			nids = 0;
	Datum		values[2];
	uint64		r;
	int			i;

	for (i = 0; i < nmv; i++)
		if (mv[i].c->period == P_DAYS || mv[i].c->period == P_STREAK || !mv[i].c->repeating)
			ids[nids++] = Int64GetDatum(mv[i].c->id);
	if (nids == 0)
		return;
	values[0] = Int64GetDatum(f->member_id);
	values[1] = PointerGetDatum(construct_array(ids, nids, INT8OID, 8, true, TYPALIGN_DOUBLE));
	if (loyalty_run(&rows_plan,
					"SELECT challenge_id, period_start, period_end, completed_at IS NOT NULL, last_item"
					" FROM loyalty.challenge_progress"
					" WHERE member_id" EQ "$1 AND challenge_id" EQ "ANY ($2)"
					" ORDER BY challenge_id, period_start DESC",
					2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: reading challenge progress failed");

	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		TimestampTz start = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		end = SPI_getbinval(tup, desc, 3, &isnull);
		bool		end_null = isnull;
		bool		completed = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));

		for (i = 0; i < nmv; i++)
		{
			Move	   *m = &mv[i];

			if (m->c->id != id || m->dropped)
				continue;
			if (completed && !m->c->repeating)
			{
				m->dropped = true;
				continue;
			}
			if (m->has_start)
				continue;		/* the latest match is taken (rows come newest
								 * first) */
			if (m->c->period == P_DAYS && !end_null &&
				start <= f->at && f->at < DatumGetTimestampTz(end))
			{
				m->has_start = true;
				m->start = start;
				m->end = DatumGetTimestampTz(end);
			}
			else if (m->c->period == P_STREAK && !completed)
			{
				char	   *last = SPI_getvalue(tup, desc, 5);

				if (last != NULL && strcmp(last, prev_week) >= 0)
				{
					m->has_start = true;
					m->start = start;
					m->open_ended = end_null;
					m->end = end_null ? 0 : DatumGetTimestampTz(end);
				}
			}
		}
	}
}

static int
CompareDone(const void *a, const void *b)
{
	int64		x = ((const ChallengeDone *) a)->challenge_id;
	int64		y = ((const ChallengeDone *) b)->challenge_id;

	return x < y ? -1 : x > y ? 1 : 0;
}

int
challenges_move(const ChallengeFact *f, ChallengeDone **done)
{
	static const Oid types[8] = {INT8OID, INT8OID, INT8ARRAYOID, NUMERICARRAYOID, JSONBARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, INT8OID};
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
	bool		joined_read = false;
	TimestampTz joined = 0;
	Datum	   *ids,
			   *deltas,
			   *items,
			   *starts,
			   *ends;
	bool	   *delta_null,
			   *items_null,
			   *ends_null;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int			ndone = 0;
	bool		any_items = false;
	uint64		r;
	int			i,
				j;

	*done = NULL;
	if (pc->n == 0)
		return 0;

	if (f->kind == 'p')
	{
		if (f->lines)
			nlines = rules_order_lines(f->lines, &cats, &amounts);
		else
		{
			nlines = 1;
			cats = palloc0(sizeof(char *));
			amounts = palloc(sizeof(Numeric));
			amounts[0] = f->amount ? f->amount : int64_to_numeric(0);
		}
		total = int64_to_numeric(0);
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
				spend = int64_to_numeric(0);
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
				tags = member_tags(f->member_id);
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

	/* calendar facts of the moment in the program's time zone */
	day = local_day(f->at, f->time_zone);
	prev_week = date_key(day.monday - 7);

	FindPeriods(f, mv, nmv, prev_week);

	/* each one's period and what it adds */
	for (i = 0; i < nmv; i++)
	{
		Move	   *m = &mv[i];
		const Challenge *c = m->c;

		if (m->dropped)
			continue;
		if (!m->has_start)
		{
			if (c->period == P_JOINING && !joined_read)
			{
				joined = joined_at(f->member_id);
				joined_read = true;
			}
			period_of(c->period, c->period_days, c->has_from, c->valid_from, c->has_until, c->valid_until,
					  f->at, &day, joined, &m->start, &m->end, &m->open_ended);
		}
		if (f->at < m->start || (!m->open_ended && f->at >= m->end))
		{
			m->dropped = true;
			continue;
		}

		switch (c->metric)
		{
			case M_SPEND:
				m->delta = NumericGetDatum(m->spend);
				m->has_delta = true;
				break;
			case M_VISITS:
				{
					char	   *k = date_key(day.today);

					m->items = items_json(&k, 1);
					m->has_items = true;
					break;
				}
			case M_STREAK:
				{
					char	   *k = date_key(day.monday);

					m->items = items_json(&k, 1);
					m->has_items = true;
					break;
				}
			case M_CATEGORIES:
				{
					char	  **keys = palloc(sizeof(char *) * nlines);
					int			nk = 0,
								k;

					for (j = 0; j < nlines; j++)
					{
						bool		seen = false;

						if (cats[j] == NULL || !num_positive(amounts[j]) || !strlist_has(&c->categories, cats[j]))
							continue;
						for (k = 0; k < nk && !seen; k++)
							seen = strcmp(keys[k], cats[j]) == 0;
						if (!seen)
							keys[nk++] = cats[j];
					}
					if (nk == 0)
					{
						/* only lines without a category: nothing to count */
						m->dropped = true;
						continue;
					}
					m->items = items_json(keys, nk);
					m->has_items = true;
					break;
				}
			default:
				m->delta = NumericGetDatum(int64_to_numeric(1));
				m->has_delta = true;
		}
	}

	/* all of them written in one statement, with what the purchase moved */
	ids = palloc(sizeof(Datum) * nmv);
	deltas = palloc(sizeof(Datum) * nmv);
	items = palloc(sizeof(Datum) * nmv);
	starts = palloc(sizeof(Datum) * nmv);
	ends = palloc(sizeof(Datum) * nmv);
	delta_null = palloc(sizeof(bool) * nmv);
	items_null = palloc(sizeof(bool) * nmv);
	ends_null = palloc(sizeof(bool) * nmv);
	j = 0;
	for (i = 0; i < nmv; i++)
	{
		Move	   *m = &mv[i];

		if (m->dropped)
			continue;
		any_items |= m->has_items;
		ids[j] = Int64GetDatum(m->c->id);
		deltas[j] = m->delta;
		delta_null[j] = !m->has_delta;
		items[j] = m->items;
		items_null[j] = !m->has_items;
		starts[j] = TimestampTzGetDatum(m->start);
		ends[j] = TimestampTzGetDatum(m->end);
		ends_null[j] = m->open_ended;
		mv[j] = *m;
		j++;
	}
	nmv = j;
	if (nmv == 0)
		return 0;
	dims[0] = nmv;
	values[0] = Int64GetDatum(f->member_id);
	values[1] = Int64GetDatum(f->program_id);
	values[2] = PointerGetDatum(construct_array(ids, nmv, INT8OID, 8, true, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_md_array(deltas, delta_null, 1, dims, lbs, NUMERICOID, -1, false,
												   TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_md_array(items, items_null, 1, dims, lbs, JSONBOID, -1, false,
												   TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(starts, nmv, TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE));
	values[6] = PointerGetDatum(construct_md_array(ends, ends_null, 1, dims, lbs, TIMESTAMPTZOID, 8, true,
												   TYPALIGN_DOUBLE));
	values[7] = Int64GetDatum(f->entry_id);
	if (f->kind != 'p' || f->entry_id == 0)
		nulls[7] = 'n';
	if (loyalty_run(any_items ? &upsert_items_plan : &upsert_plan,
					any_items ? UPSERT_ITEMS : UPSERT,
					8, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "loyalty: moving challenge progress failed");

	/* the periods that reached their goal now */
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Numeric		value = DatumGetNumeric(SPI_getbinval(tup, desc, 3, &isnull));

		if (!DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull)))
			continue;
		for (i = 0; i < nmv; i++)
		{
			if (mv[i].c->id != id || num_cmp(value, mv[i].c->goal) < 0)
				continue;
			if (*done == NULL)
				*done = palloc(sizeof(ChallengeDone) * nmv);
			(*done)[ndone].challenge_id = id;
			(*done)[ndone].period_start = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
			ndone++;
			break;
		}
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
		n = challenges_move(&f, &done);
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
	day = local_day(at, text_to_cstring(PG_GETARG_TEXT_PP(5)));
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
