/*
 * store.h
 *		The ledger store: every row the books write, behind one interface
 *		with two implementations.
 *
 * The operations of the books (ledger.c) lock and read an account, append
 * ledger entries and lots, take points from lots and give them back, update
 * the account and record idempotency keys only through the store_*
 * functions below (store.c).  For each of them, once the table it touches is
 * locked, store.c picks one of two implementations:
 *
 *	- the SQL store (store_sql.c): prepared SELECT/INSERT/UPDATE statements,
 *	  which do everything PostgreSQL does for such a statement whatever a DBA
 *	  did to the table (triggers of every kind, rules, defaults, domains,
 *	  typmods and coercion, row-level security, privileges, replica identity,
 *	  partitions, foreign keys).  Always used on Citus, whose shards only a
 *	  statement reaches, and when loyalty.fast_store is off;
 *	- the fast store (store_exec.c): the executor's row routines, as COPY
 *	  and logical replication's apply worker use them, with no statement
 *	  planned or started per row.  Used only for a table whose shape
 *	  (store.c) proves that it would do exactly what the statement does.
 *
 * Both stores write the same rows in the same order, one row operation at a
 * time (each one like a statement of its own: its AFTER triggers fire and the
 * command counter moves on before the next).
 */
#ifndef LOYALTY_STORE_H
#define LOYALTY_STORE_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "storage/itemptr.h"
#include "utils/acl.h"
#include "utils/date.h"
#include "utils/timestamp.h"

/* The tables of the books, and the programs table the writes read. */
typedef enum StoreTable
{
	ST_LEDGER,
	ST_LOTS,
	ST_ACCOUNTS,
	ST_IDEM,
	ST_ALLOC,
	ST_PROGRAMS,
	ST_PROGRESS,
	ST_STATE,
	ST_FACTS,
	ST_MEMBERS,
	ST_COUNT
} StoreTable;

/* The columns each store knows, in store.c's column lists' order. */
enum
{
	L_MEMBER, L_ENTRY, L_PROGRAM, L_KIND, L_POINTS, L_HELD, L_AMOUNT, L_CHANNEL,
	L_REFERENCE, L_REASON, L_ACTOR, L_SOURCE, L_HOLD, L_IDEM, L_CREATED,
	L_OCCURRED, L_DETAILS, L_NCOLS
};
enum
{
	T_MEMBER, T_LOT, T_ENTRY, T_ORIGINAL, T_REMAINING, T_REVERSED,
	T_REVERSED_AMOUNT, T_VESTS, T_EXPIRES, T_CREATED, T_IS_OPEN, T_NCOLS
};
enum
{
	A_MEMBER, A_PROGRAM, A_STATUS, A_TIER, A_REFERRAL, A_SEGMENT, A_BALANCE,
	A_HELD, A_DEBT, A_EARNED, A_REDEEMED, A_EXPIRED, A_FIRST, A_LAST, A_COUNT,
	A_DAYS, A_AMOUNT, A_UPDATED, A_NEXT_EXPIRY, A_TIER_SINCE, A_TIER_LOCKED,
	A_TIER_GRACE, A_RISK_BAND, A_SEGMENT_SINCE, A_NCOLS
};
enum
{
	K_MEMBER, K_KEY, K_OP, K_HASH, K_RESULT, K_ENTRY, K_CREATED, K_NCOLS
};
enum
{
	X_MEMBER, X_ENTRY, X_LOT, X_POINTS, X_RETURNED, X_NCOLS
};
enum
{
	P_PROGRAM, P_EARN_RATE, P_ROUNDING, P_EXPIRY, P_PENDING, P_REFUND, P_MAX_HOLD,
	P_CLOSED, P_EVENTS, P_TIME_ZONE, P_RULES_VERSION, P_TIER_METRIC, P_POOL_SHARE, P_MAX_MULTIPLIER,
	P_HAS_CHALLENGES, P_NCOLS
};

enum
{
	PR_MEMBER, PR_CHALLENGE, PR_START, PR_END, PR_PROGRAM, PR_VALUE, PR_ITEMS, PR_LAST,
	PR_COMPLETED, PR_COMPLETIONS, PR_AWARD, PR_AWARD_MEMBER, PR_CLAWED, PR_UPDATED, PR_NCOLS
};
enum
{
	SS_MEMBER, SS_PROGRAM, SS_IDS, SS_STARTS, SS_ENDS, SS_VALUES, SS_ITEMS, SS_LAST, SS_COMPLETED,
	SS_COMPLETIONS, SS_AWARD, SS_AWARD_MEMBER, SS_CLAWED, SS_UPDATED, SS_JOINED, SS_EARLIER_DONE, SS_NCOLS
};
enum
{
	M_MEMBER, M_JOINED, M_NCOLS
};
enum
{
	CF_MEMBER, CF_ENTRY, CF_PROGRAM, CF_CHALLENGES, CF_STARTS, CF_DELTAS, CF_ITEMS, CF_STANDING,
	CF_NCOLS
};

#define STORE_MAX_COLS 24

/* A column a store reads or writes: its name and the type it must have. */
typedef struct StoreColumn
{
	const char *name;
	const char *type;			/* regtype input: "pg_catalog.int8" */
	char		generated;		/* ATTRIBUTE_GENERATED_STORED or '\0' */
	char		identity;		/* ATTRIBUTE_IDENTITY_ALWAYS or '\0' */
	bool		optional;		/* an older schema may lack it (ALTER
								 * EXTENSION UPDATE not run yet) */
} StoreColumn;

typedef struct StoreTableDef
{
	const char *name;
	int			ncols;
	StoreColumn cols[STORE_MAX_COLS];
	AclMode		writes;			/* what the writes do to it */
	bool		others_allowed; /* other columns may exist (an UPDATE keeps
								 * them; an INSERT would need their defaults) */
} StoreTableDef;

extern const StoreTableDef store_tables[ST_COUNT];

/*
 * What store.c found out about a table since its last invalidation: where
 * each known column is and whether the fast store may write it (and if not,
 * the first reason why).
 */
typedef struct TableShape
{
	bool		checked;
	Oid			relid;
	char		relkind;
	bool		fast;
	char		why[192];
	AttrNumber	attno[STORE_MAX_COLS];	/* 0-based; -1: an optional column the
										 * table lacks */
	Oid			col_type[STORE_MAX_COLS];	/* the types expected */
	int			natts;
	Oid			key_index;		/* accounts, programs, idempotency keys: the
								 * valid unique index on the key (keys: none
								 * when missing, and the SQL store reads) */
	Oid			open_lot_index; /* lots: a valid (member, expiry, creation)
								 * index of the open lots */
	Oid			entry_seq;		/* ledger: entry_id's identity sequence */
	int			nrelated;
	Oid		   *related;		/* partitions and indexes the shape depends on */
} TableShape;

/*
 * A member's account row (locked FOR NO KEY UPDATE when asked) and its
 * program's policies, by column index.  By-reference values live in the
 * caller's memory context.
 */
typedef struct AccountRead
{
	ItemPointerData tid;		/* the fast store's row (invalid from SQL) */
	Datum		acc[A_NCOLS];
	bool		acc_null[A_NCOLS];
	Datum		prog[P_NCOLS];
	bool		prog_null[P_NCOLS];
} AccountRead;

/* One ledger row. */
typedef struct LedgerRow
{
	int64		member_id;
	int64		program_id;
	const char *kind;
	int64		points;
	int64		held_delta;
	Datum		amount;			/* numeric, or 0 for NULL */
	text	   *channel;
	text	   *reference;
	text	   *reason;
	int64		source_entry;	/* 0: none */
	int64		hold_id;		/* 0: none */
	text	   *idem_key;
	TimestampTz occurred_at;	/* 0: now */
	TimestampTz created_at;		/* 0: now (a carry-forward: its horizon) */
	const char *details;		/* jsonb text or NULL */
} LedgerRow;

/* One lot. */
typedef struct LotRow
{
	int64		member_id;
	int64		lot_id;			/* a credit's: its entry_id; a merge's: a
								 * fresh number (store_next_entry_id) */
	int64		entry_id;
	int64		original;
	int64		remaining;
	TimestampTz vests_at;
	TimestampTz expires_at;		/* 0: never */
} LotRow;

/*
 * Changes of a member's account row: deltas added, bounds moved.  The SQL
 * store's UPDATE sets, and the fast store's row update declares, the same
 * columns for every change (UPDATE OF triggers see the same column list).
 */
typedef struct AccountDelta
{
	int64		balance;
	int64		held;
	int64		debt;
	int64		earned;
	int64		redeemed;
	int64		expired;
	TimestampTz purchase_first; /* 0: none; else first_purchase_at takes the
								 * earlier of the two */
	TimestampTz purchase_last;	/* 0: none; else last_purchase_at the later */
	int64		purchase_count;
	int64		purchase_days;
	Datum		purchase_amount;	/* numeric to add, or 0 */
	TimestampTz expiry_floor;	/* a lot opened that expires then: lower
								 * next_expiry_at to it (0: none) */
	bool		exact_next_expiry;	/* set next_expiry_at to expiry_floor (0:
									 * NULL) instead */
	bool		clear_purchase_dates;	/* first and last purchase become NULL */
	bool		keep_updated_at;	/* nothing the member sees changed */
} AccountDelta;

/*
 * A change of a member's tier columns.  The SQL store's UPDATE sets, and the
 * fast store's row update declares, all four tier columns and updated_at
 * whatever the change (each kept as it is when not asked for).
 */
typedef struct TierChange
{
	bool		set_tier;		/* tier := tier (NULL when tier_null),
								 * tier_since and updated_at := now */
	Datum		tier;
	bool		tier_null;
	bool		set_locked;		/* tier_locked_until := locked_until */
	TimestampTz locked_until;
	bool		locked_null;
	bool		set_grace;		/* tier_grace_until := grace_until */
	TimestampTz grace_until;
	bool		grace_null;
} TierChange;

/*
 * A member's stored segment (NULL: none), churn-risk band (NULL: none) and
 * the date the segment was entered; both stores set all three columns.
 */
typedef struct SegmentChange
{
	text	   *segment;
	text	   *risk_band;
	DateADT		since;
	bool		since_null;
} SegmentChange;

/* A lot a debit may take from (or an expiry write off). */
typedef struct OpenLot
{
	int64		lot_id;
	int64		remaining;
	TimestampTz vests_at;
	TimestampTz expires_at;		/* DT_NOEND: never */
	TimestampTz created_at;
	ItemPointerData tid;		/* the fast store's row */
} OpenLot;

/* What store_open_lots returns. */
typedef enum LotFilter
{
	LOTS_SPENDABLE,				/* vested and unexpired at the time given */
	LOTS_EXPIRED,				/* expired at or before the time given */
	LOTS_ALL_OPEN				/* every lot with points left */
} LotFilter;

/* A debit's allocation and its lot, for giving points back. */
typedef struct Allocation
{
	int64		lot_id;
	int64		open;			/* points - returned */
	TimestampTz lot_expires_at; /* DT_NOEND: never */
	TimestampTz lot_created_at;
	ItemPointerData lot_tid;	/* the fast store's row */
} Allocation;

/*
 * One period of a member's challenge (a row of loyalty.challenge_progress):
 * the latest of its challenge is an element of the member's
 * loyalty.challenge_state row (slot >= 0), an earlier one a row of
 * loyalty.challenge_periods (slot -1).
 */
typedef struct ProgressRow
{
	int64		challenge_id;
	TimestampTz period_start;
	TimestampTz period_end;
	bool		end_null;		/* open-ended */
	Datum		value;			/* numeric */
	Datum		items;			/* jsonb; (Datum) 0: NULL */
	text	   *last_item;		/* NULL: none */
	bool		completed;		/* completed_at is not NULL */
	TimestampTz completed_at;
	int32		completions;
	bool		award_null;
	int64		award_entry;
	bool		award_member_null;
	int64		award_member;
	bool		clawed_null;
	TimestampTz clawed_back_at;
	TimestampTz updated_at;
	int			slot;			/* index in the state row's arrays, or -1 */
	ItemPointerData tid;		/* the fast store's row */
	struct HeapTupleData *tuple;	/* the fast store's copy of the row read,
									 * or NULL */
} ProgressRow;

/*
 * A member's loyalty.challenge_state row: its columns by SS_ index (the
 * arrays detoasted, in the caller's memory context).
 */
typedef struct StateRow
{
	bool		found;
	Datum		cols[SS_NCOLS];
	bool		nulls[SS_NCOLS];
	ItemPointerData tid;		/* the fast store's row */
	struct HeapTupleData *tuple;	/* the fast store's copy of the row read,
									 * or NULL */
} StateRow;

/* What a purchase moved in its member's challenges (loyalty.challenge_facts). */
typedef struct ChallengeFactsRow
{
	int64		member_id;
	int64		entry_id;
	int64		program_id;
	Datum		challenge_ids;	/* int8[] */
	Datum		period_starts;	/* timestamptz[] */
	Datum		deltas;			/* numeric[] */
	Datum		items;			/* jsonb[] */
} ChallengeFactsRow;

/* A keyed call's first result (store_read_idempotency). */
typedef struct IdemRow
{
	char		operation[64];
	int64		request_hash;
	int64		result;			/* 0 for NULL */
	int64		entry_id;		/* 0 for NULL */
} IdemRow;

typedef struct StoreWriter StoreWriter;

/* The implementation of each row operation (store_exec.c, store_sql.c). */
typedef struct StoreRoutine
{
	const char *name;
	bool		(*read_account) (StoreWriter *w, int64 member_id, bool lock, AccountRead *out);
	int64		(*insert_entry) (StoreWriter *w, const LedgerRow *r);
	int64		(*insert_lot) (StoreWriter *w, const LotRow *l);
	void		(*update_account) (StoreWriter *w, int64 member_id, ItemPointer tid,
								   const AccountDelta *d);
	void		(*insert_idempotency) (StoreWriter *w, int64 member_id, text *key, const char *op,
									   int64 hash, int64 result, int64 entry_id);
	bool		(*read_idempotency) (StoreWriter *w, int64 member_id, text *key, IdemRow *out);
	int			(*open_lots) (StoreWriter *w, int64 member_id, LotFilter f, TimestampTz at,
							  int64 need, OpenLot **out);
	void		(*change_lot) (StoreWriter *w, int64 member_id, const OpenLot *lot,
							   int64 remaining_delta, int64 reversed_delta, Datum reversed_amount);
	void		(*insert_allocation) (StoreWriter *w, int64 member_id, int64 entry_id, int64 lot_id,
									  int64 points);
	int			(*allocations) (StoreWriter *w, int64 member_id, int64 entry_id, Allocation **out);
	void		(*return_allocation) (StoreWriter *w, int64 member_id, int64 entry_id,
									  int64 lot_id, int64 points);
	void		(*set_status) (StoreWriter *w, int64 member_id, const char *status);
	void		(*set_tier) (StoreWriter *w, int64 member_id, const TierChange *c);
	void		(*set_referral) (StoreWriter *w, int64 member_id, bool pending);
	void		(*set_segment) (StoreWriter *w, int64 member_id, const SegmentChange *c);
	int64		(*next_entry_id) (StoreWriter *w);
	int			(*read_progress) (StoreWriter *w, int64 member_id, const int64 *ids,
								  const TimestampTz *starts, const bool *every, int n,
								  ProgressRow **out);
	void		(*insert_progress) (StoreWriter *w, int64 member_id, int64 program_id,
									const ProgressRow *r);
	void		(*update_progress) (StoreWriter *w, int64 member_id, const ProgressRow *r);
	bool		(*read_state) (StoreWriter *w, int64 member_id, StateRow *out);
	void		(*write_state) (StoreWriter *w, int64 member_id, const StateRow *r);
	void		(*insert_challenge_facts) (StoreWriter *w, const ChallengeFactsRow *f);
	bool		(*read_joined) (StoreWriter *w, int64 member_id, TimestampTz *joined);
} StoreRoutine;

/*
 * One API call's writes: which store does each table (chosen when the call
 * first touches it), and the fast store's executor state.
 */
typedef struct StoreChoice
{
	const StoreRoutine *store;
	AclMode		checked;		/* what the fast store was cleared to do */
} StoreChoice;

struct StoreWriter
{
	struct FastState *fast;		/* created on first use */
	MemoryContext cxt;
	StoreChoice choices[ST_COUNT];
};

extern const StoreRoutine fast_store;
extern const StoreRoutine sql_store;

/* store.c: the interface ledger.c uses */
extern bool loyalty_fast_store;
extern void store_init(void);
extern StoreWriter *store_begin(void);
extern void store_end(StoreWriter *w);
extern bool store_read_account(StoreWriter *w, int64 member_id, bool lock, AccountRead *out);
extern int64 store_insert_entry(StoreWriter *w, const LedgerRow *r);
extern int64 store_insert_lot(StoreWriter *w, const LotRow *l);
extern void store_update_account(StoreWriter *w, int64 member_id, ItemPointer tid,
								 const AccountDelta *d);
extern void store_insert_idempotency(StoreWriter *w, int64 member_id, text *key, const char *op,
									 int64 hash, int64 result, int64 entry_id);
extern bool store_read_idempotency(StoreWriter *w, int64 member_id, text *key, IdemRow *out);
extern int64 store_consume_lots(StoreWriter *w, int64 member_id, int64 entry_id, int64 points,
								TimestampTz at);
extern int	store_open_lots(StoreWriter *w, int64 member_id, LotFilter f, TimestampTz at,
							OpenLot **out);

/* The order of spending (first to expire first), for qsort of OpenLots. */
extern int	store_compare_fefo(const void *a, const void *b);
extern void store_take_lot(StoreWriter *w, int64 member_id, int64 entry_id, const OpenLot *lot,
						   int64 points);
extern TimestampTz store_first_expiry(StoreWriter *w, int64 member_id);
extern void store_set_status(StoreWriter *w, int64 member_id, const char *status);
extern void store_set_tier(StoreWriter *w, int64 member_id, const TierChange *c);
extern void store_set_referral(StoreWriter *w, int64 member_id, bool pending);
extern void store_set_segment(StoreWriter *w, int64 member_id, const SegmentChange *c);
extern void store_insert_account(StoreWriter *w, int64 member_id, int64 program_id);
extern void store_archive_rows(StoreWriter *w, const Oid *parts, int nparts,
							   TimestampTz horizon, const char *archive_schema, int64 *lots,
							   int64 *allocations);
extern int64 store_next_entry_id(StoreWriter *w);
extern int	store_read_progress(StoreWriter *w, int64 member_id, const int64 *ids,
								const TimestampTz *starts, const bool *every, int n, ProgressRow **out);
extern void store_insert_progress(StoreWriter *w, int64 member_id, int64 program_id,
								  const ProgressRow *r);
extern void store_update_progress(StoreWriter *w, int64 member_id, const ProgressRow *r);
extern bool store_read_state(StoreWriter *w, int64 member_id, StateRow *out);
extern void store_write_state(StoreWriter *w, int64 member_id, const StateRow *r);
extern void store_insert_challenge_facts(StoreWriter *w, const ChallengeFactsRow *f);
extern TimestampTz store_read_joined(StoreWriter *w, int64 member_id);
extern void store_take_from_lot(StoreWriter *w, int64 member_id, int64 entry_id, int64 lot_id,
								int64 points, int64 reversed, Datum reversed_amount);
extern TimestampTz store_return_to_lots(StoreWriter *w, int64 member_id, int64 source_entry,
										int64 points, const LotRow *into);
extern TimestampTz store_mirror_lots(StoreWriter *w, int64 member_id, int64 source_entry,
									 const LotRow *into, int64 repay);

/* store.c: for the stores */
extern const TableShape *store_shape(StoreTable t);
extern Oid	store_lock_table(StoreTable t, LOCKMODE mode);
extern const char *store_user_name(void);

/* store_sql.c */
extern bool loyalty_distributed(void);
extern void sql_insert_account(int64 member_id, int64 program_id);
extern int64 sql_archive_allocations(const Oid *parts, int nparts, const char *archive_schema);
extern int64 sql_archive_lots(TimestampTz horizon, const char *archive_schema);

/* store_exec.c */
extern void fast_store_end(StoreWriter *w);

#endif							/* LOYALTY_STORE_H */
