/*
 * direct.h
 *		Rows of the write path written without planning or executor start-up
 *		(direct.c).
 */
#ifndef LOYALTY_DIRECT_H
#define LOYALTY_DIRECT_H

#include "postgres.h"

#include "storage/itemptr.h"
#include "utils/timestamp.h"

/* Deltas applied to a member's account row in one update. */
typedef struct AccountDelta
{
	int64		balance;
	int64		held;
	int64		debt;
	int64		earned;
	int64		redeemed;
	int64		expired;
	bool		purchase;
	TimestampTz purchase_at;
	int64		purchase_count;
	int64		purchase_days;
	Datum		purchase_amount;	/* numeric, or 0 for none */
	TimestampTz expiry_floor;	/* a lot opened that expires then: lower
								 * next_expiry_at to it (0: none) */
} AccountDelta;

/* One ledger row, and the lot of a credit (ledger.c's Entry). */
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
	TimestampTz occurred_at;
	const char *details;		/* jsonb text or NULL */
	int64		lot_original;	/* 0: no lot */
	int64		lot_remaining;
	TimestampTz lot_vests_at;
	TimestampTz lot_expires_at; /* 0: never */
	bool		purchase_event; /* a purchase: ledger.c writes points.earned */
} LedgerRow;

/*
 * A member's account row, found by member id and (when locked) locked FOR
 * NO KEY UPDATE, with its program's policies.  By-reference values are
 * copied into the caller's memory context.
 */
typedef enum AccountField
{
	AF_BALANCE, AF_HELD, AF_DEBT, AF_STATUS, AF_PROGRAM, AF_FIRST_PURCHASE,
	AF_LAST_PURCHASE, AF_REFERRAL_PENDING, AF_TIER, AF_SEGMENT, AF_NEXT_EXPIRY, AF_COUNT
} AccountField;

typedef enum ProgramField
{
	PF_EARN_RATE, PF_ROUNDING, PF_EXPIRY, PF_PENDING, PF_REFUND, PF_MAX_HOLD,
	PF_CLOSED, PF_EVENTS, PF_TIME_ZONE, PF_RULES_VERSION, PF_TIER_METRIC, PF_COUNT
} ProgramField;

typedef struct AccountRead
{
	ItemPointerData tid;		/* the (locked) account row */
	Datum		acc[AF_COUNT];
	bool		acc_null[AF_COUNT];
	Datum		prog[PF_COUNT];
	bool		prog_null[PF_COUNT];
} AccountRead;

extern bool direct_read_account(int64 member_id, bool lock, AccountRead *out);

/* One lot a debit took points from. */
typedef struct LotTake
{
	int64		lot_id;
	int64		points;
} LotTake;

typedef struct DirectWriter DirectWriter;

extern DirectWriter *direct_begin(void);
extern int64 direct_insert_entry(DirectWriter *w, const LedgerRow *r);
extern void direct_update_account(DirectWriter *w, int64 member_id, ItemPointer tid,
								  const AccountDelta *d);
extern void direct_insert_idempotency(DirectWriter *w, int64 member_id, text *key,
									  const char *op, int64 hash, int64 result,
									  int64 entry_id);
extern int64 direct_consume_lots(DirectWriter *w, int64 member_id, int64 entry_id,
								 int64 points, TimestampTz at);
extern void direct_end(DirectWriter *w);

/*
 * The same operations by SQL statements, for Citus tables (spiwrite.c): each
 * direct_* function hands over to its spi_* twin when loyalty_distributed().
 */
extern bool loyalty_distributed(void);
extern bool spi_read_account(int64 member_id, bool lock, AccountRead *out);
extern DirectWriter *spi_begin(void);
extern int64 spi_insert_entry(DirectWriter *w, const LedgerRow *r);
extern void spi_update_account(DirectWriter *w, int64 member_id, const AccountDelta *d);
extern void spi_insert_idempotency(DirectWriter *w, int64 member_id, text *key,
								   const char *op, int64 hash, int64 result,
								   int64 entry_id);
extern int64 spi_consume_lots(DirectWriter *w, int64 member_id, int64 entry_id,
							  int64 points, TimestampTz at);
extern void spi_end(DirectWriter *w);

#endif							/* LOYALTY_DIRECT_H */
