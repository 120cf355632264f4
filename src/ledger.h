/*
 * ledger.h
 *		The operations of the books, one C function each (ledger.c).
 *
 * Every writer calls these: the SQL-callable API (ledger_api.c), the order
 * trigger (trigger.c), merges and expiry.  Each operation checks its
 * request, locks the member's account row (merges: both, in member_id
 * order), looks its idempotency key up after the lock, writes through the
 * ledger store (store.h) and records the key.  A request's text and numeric
 * values are not modified.  The caller needs no SPI connection.
 */
#ifndef LOYALTY_LEDGER_H
#define LOYALTY_LEDGER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "points.h"
#include "tier.h"

/* What an operation did. */
typedef struct LedgerResult
{
	bool		replayed;		/* an idempotent replay: nothing written */
	Points		points;			/* points the call credited, debited, gave
								 * back or moved */
	int64		entry_id;		/* its (first) ledger entry, 0: none */
	int64		hold_id;		/* hold: the new hold */
	int64		count;			/* release_expired: holds released */
} LedgerResult;

/* A time given by the caller, or none (now). */
typedef struct OptTime
{
	bool		given;
	TimestampTz value;
} OptTime;

typedef struct EarnRequest
{
	int64		member_id;
	Numeric		amount;			/* NULL: the sum of the lines */
	Jsonb	   *lines;			/* NULL: none */
	text	   *channel;
	text	   *reference;
	text	   *idempotency_key;
	OptTime		occurred_at;
	text	   *store;
} EarnRequest;

typedef struct AwardRequest
{
	int64		member_id;
	Points		points;
	text	   *reason;
	text	   *channel;
	text	   *reference;
	text	   *idempotency_key;
	OptTime		occurred_at;
	OptTime		expires_at;
} AwardRequest;

typedef struct RedeemRequest
{
	int64		member_id;
	Points		points;
	text	   *channel;
	text	   *reference;
	text	   *idempotency_key;
	OptTime		occurred_at;
} RedeemRequest;

typedef struct HoldRequest
{
	int64		member_id;
	Points		points;
	Interval   *ttl;
	text	   *channel;
	text	   *reference;
	text	   *idempotency_key;
} HoldRequest;

typedef struct CaptureRequest
{
	int64		hold_id;
	bool		has_points;		/* false: the whole hold */
	Points		points;
	text	   *idempotency_key;
} CaptureRequest;

typedef struct ReleaseRequest
{
	int64		hold_id;
	text	   *idempotency_key;
} ReleaseRequest;

typedef struct ReverseRequest
{
	int64		member_id;
	int64		entry_id;
	bool		has_points;		/* reverse these points... */
	Points		points;
	Numeric		amount;			/* ...or in proportion to this refund (NULL) */
	text	   *reference;
	text	   *reason;
	text	   *idempotency_key;
} ReverseRequest;

/* A refund of a purchase known by its reference (the order). */
typedef struct RefundRequest
{
	int64		member_id;
	text	   *reference;
	Numeric		amount;			/* NULL: all that is left of the purchase */
	text	   *reason;
	text	   *idempotency_key;
} RefundRequest;

typedef struct AdjustRequest
{
	int64		member_id;
	Points		points;			/* signed, not zero */
	text	   *reason;
	text	   *idempotency_key;
	text	   *reference;
} AdjustRequest;

typedef struct MergeRequest
{
	int64		survivor;
	int64		absorbed;
	text	   *idempotency_key;
} MergeRequest;

/* Points given by one member to another of the program. */
typedef struct TransferRequest
{
	int64		from_member;
	int64		to_member;
	Points		points;
	text	   *reason;
	text	   *idempotency_key;
} TransferRequest;

/* An administrator's reversal of a transfer, named by the sender's entry. */
typedef struct TransferReversal
{
	int64		member_id;		/* the sender */
	int64		entry_id;
	text	   *reason;
	text	   *idempotency_key;
} TransferReversal;

/* A redemption from a household's pooled points. */
typedef struct HouseholdRedeemRequest
{
	int64		redeemer;
	Points		points;
	text	   *channel;
	text	   *reference;
	text	   *idempotency_key;
} HouseholdRedeemRequest;

/* The end of a member's books (erasure of its personal data). */
typedef struct ForfeitRequest
{
	int64		member_id;
	text	   *reason;
} ForfeitRequest;

typedef struct ExpireRequest
{
	int64		member_id;
	OptTime		as_of;
} ExpireRequest;

typedef struct StatusRequest
{
	int64		member_id;
	const char *status;			/* active, suspended or closed; NULL refused */
} StatusRequest;

typedef struct TierRequest
{
	int64		member_id;
	Tier	   *tier;			/* NULL: no tier */
	text	   *reason;
	bool		locked;			/* until locked_until (else no lock) */
	TimestampTz locked_until;
} TierRequest;

/* One member's decision of a tier review. */
typedef struct TierDecision
{
	int64		member_id;
	bool		change;			/* to `tier`; else the grace period only */
	Datum		tier;
	bool		tier_null;
	TimestampTz grace_until;
	bool		grace_null;		/* ends the grace period */
} TierDecision;

/* A segment refresh's result for one member (loyalty.apply_segments). */
typedef struct SegmentDecision
{
	int64		member_id;
	text	   *segment;		/* NULL: none */
	text	   *risk_band;		/* NULL: none */
	DateADT		since;			/* the date the segment was entered */
	bool		since_null;
} SegmentDecision;

typedef struct ArchiveRequest
{
	const Oid  *parts;			/* the ledger partitions that leave */
	int			nparts;
	TimestampTz horizon;		/* every archived entry was created before */
	const char *archive_schema; /* NULL: the rows are dropped */
} ArchiveRequest;

typedef struct ArchiveResult
{
	int64		carried;		/* carry_forward entries written */
	int64		lots;
	int64		allocations;
} ArchiveResult;

extern void ledger_earn(const EarnRequest *r, LedgerResult *res);

/* Earns and reversals in bulk: one writer, each member's account updated once per run. */
typedef struct LedgerBulk LedgerBulk;
extern LedgerBulk *ledger_bulk_begin(void);
extern void ledger_bulk_earn(LedgerBulk *b, const EarnRequest *r, LedgerResult *res);
extern void ledger_bulk_reverse(LedgerBulk *b, const ReverseRequest *r, LedgerResult *res);
extern void ledger_bulk_flush(LedgerBulk *b);
extern void ledger_bulk_pause(LedgerBulk *b);
extern void ledger_bulk_end(LedgerBulk *b);
extern void ledger_award(const AwardRequest *r, LedgerResult *res);
extern void ledger_redeem(const RedeemRequest *r, LedgerResult *res);
extern void ledger_hold(const HoldRequest *r, LedgerResult *res);
extern void ledger_capture(const CaptureRequest *r, LedgerResult *res);
extern void ledger_release(const ReleaseRequest *r, LedgerResult *res);
extern void ledger_reverse(const ReverseRequest *r, LedgerResult *res);
extern void ledger_refund(const RefundRequest *r, LedgerResult *res);
extern void ledger_adjust(const AdjustRequest *r, LedgerResult *res);
extern void ledger_transfer(const TransferRequest *r, LedgerResult *res);
extern void ledger_reverse_transfer(const TransferReversal *r, LedgerResult *res);
extern void ledger_forfeit(const ForfeitRequest *r, LedgerResult *res);
extern void ledger_household_redeem(const HouseholdRedeemRequest *r, LedgerResult *res);
extern void ledger_household_close(int64 household, text *reason, LedgerResult *res);
extern void ledger_release_expired(int64 member_id, LedgerResult *res);
extern void ledger_merge(const MergeRequest *r, LedgerResult *res);
extern void ledger_expire(const ExpireRequest *r, LedgerResult *res);
extern void ledger_set_status(const StatusRequest *r);
extern bool ledger_tier_change(const TierRequest *r);
extern void ledger_tier_grace(int64 member_id, bool grace, TimestampTz until);
extern void ledger_apply_tiers(const TierDecision *d, int n);
extern void ledger_set_referral_pending(int64 member_id, bool pending);
extern void ledger_apply_segments(const SegmentDecision *d, int n);
extern void ledger_open_account(int64 member_id, int64 program_id);
extern void ledger_archive(const ArchiveRequest *r, ArchiveResult *res);

/* partitions.c: partitions whose entries were carried forward may leave the ledger */
extern void ledger_mark_carried(const Oid *parts, int nparts);

/* The earn's explanation without writing anything (preview_earn). */
extern Jsonb *ledger_preview_earn(const EarnRequest *r);

/* for loyalty.last_entry(): the entry a write call wrote */
extern void ledger_remember_entry(const LedgerResult *res);

#endif							/* LOYALTY_LEDGER_H */
