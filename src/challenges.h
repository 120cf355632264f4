/*
 * challenges.h
 *		Challenge progress moved by purchases, activities and referrals.
 */
#ifndef LOYALTY_CHALLENGES_H
#define LOYALTY_CHALLENGES_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "rules.h"

/* A fact that may move challenges, and what the member's account says. */
typedef struct ChallengeFact
{
	struct StoreWriter *w;		/* the call's writes */
	int64		member_id;
	int64		program_id;
	int64		rules_version;	/* the program's: the definitions' cache key */
	const char *time_zone;		/* the program's */
	int32		tier_rank;		/* -1: no tier */
	text	   *segment;		/* may be NULL */
	char		kind;			/* 'p' purchase, 'a' activity, 'r' referral */
	int64		entry_id;		/* the purchase's ledger entry (0: none) */
	Numeric		amount;			/* a purchase's amount (its base, without
								 * lines) */
	Jsonb	   *lines;			/* a purchase's order lines, or NULL */
	TimestampTz at;
	text	   *channel;		/* may be NULL */
	const char *detail;			/* the activity, or NULL */
	const PurchaseFacts *purchase;	/* what the rules found out about a
									 * purchase, or NULL */
	List	   *new_tags;		/* text *: tags the rules put on the member
								 * with this purchase */
} ChallengeFact;

/* A challenge period that reached its goal. */
typedef struct ChallengeDone
{
	int64		challenge_id;
	TimestampTz period_start;
} ChallengeDone;

/*
 * Move the member's progress (under its lock, with SPI connected); returns
 * how many periods reached their goal, listed in *done, which the caller
 * completes with challenges_complete (which awards points through the write
 * path: the caller's pending account changes must be written first).
 */
extern int	challenges_move(const ChallengeFact *f, ChallengeDone **done);
extern void challenges_complete(int64 member_id, const ChallengeDone *done, int n, TimestampTz at);

#endif							/* LOYALTY_CHALLENGES_H */
