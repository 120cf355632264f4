/*
 * rules.h
 *		Earning rules: points of a purchase from the program's rules.
 */
#ifndef LOYALTY_RULES_H
#define LOYALTY_RULES_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "access/htup.h"
#include "access/tupdesc.h"

#include "points.h"

/* A text[] condition as C strings. */
typedef struct StrList
{
	int			n;				/* -1: no condition */
	char	  **v;
} StrList;

extern StrList text_array(HeapTuple tup, TupleDesc desc, int col);
extern bool strlist_has(const StrList *l, const char *s);
extern bool strlist_meets(const StrList *l, const StrList *have);
extern StrList member_tags(int64 member_id);
extern int	rules_order_lines(Jsonb *lines, char ***categories, Numeric **amounts);

/* Local calendar facts of a moment in a program's time zone. */
typedef struct LocalTime
{
	int			year,
				month,
				day,
				hour,
				isodow;			/* 1 Monday .. 7 Sunday */
	int			julian;			/* the day's Julian day number */
} LocalTime;

extern LocalTime local_time(TimestampTz ts, const char *zone);

/*
 * What the rules engine found out about a purchase, handed on to the
 * challenges so that they do not parse the lines, convert the time or read
 * the tags a second time.
 */
typedef struct PurchaseFacts
{
	bool		valid;			/* filled by rules_earn_points */
	int			nlines;
	char	  **categories;		/* per line, NULL where none */
	Numeric    *amounts;		/* per line */
	LocalTime	lt;
	bool		tags_read;
	StrList		tags;
} PurchaseFacts;

/* What the rules look at; filled by the caller (ledger.c). */
typedef struct EarnContext
{
	int64		member_id;
	int64		program_id;
	int64		rules_version;
	Datum		earn_rate;		/* numeric */
	PointsRounding rounding;
	const char *rounding_name;
	const char *time_zone;
	TimestampTz occurred_at;
	text	   *channel;		/* may be NULL */
	text	   *store;			/* may be NULL */
	int32		tier_rank;		/* -1: no tier */
	text	   *segment;		/* may be NULL */
	text	   *risk_band;		/* may be NULL */
	bool		first_purchase;
	Numeric		amount;			/* the purchase total, or NULL with lines */
	Jsonb	   *lines;			/* order lines, or NULL */
	Datum		max_multiplier; /* numeric: the program's ceiling on the
								 * points of a purchase over its base points
								 * (0: none) */
	PurchaseFacts *facts;		/* if not NULL: filled for the challenges */
} EarnContext;

/*
 * Points of a purchase; *base_amount gets the earn base (sum of the lines),
 * and details (if not NULL) the JSON explanation.  Needs an SPI connection.
 */
extern List *rules_take_tags(void);
extern bool rules_in_control(int64 member_id, const char *seed, double share);
extern int	rules_active_count(int64 program_id, int64 rules_version);
extern Points rules_earn_points(EarnContext *ctx, Numeric *base_amount, StringInfo details);

#endif							/* LOYALTY_RULES_H */
