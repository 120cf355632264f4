/*
 * ledger.c
 *		The operations of the books (ledger.h): earn, award, redeem, hold,
 *		capture, release, reverse, adjust, release of expired holds, merge and
 *		expiry.  The SQL-callable functions (ledger_api.c) and the order
 *		trigger (trigger.c) call them.
 *
 * Every call follows one protocol, which is what makes the invariants hold
 * under concurrency:
 *	1. lock the member's account row (FOR NO KEY UPDATE): all writers of a member
 *	   serialise there, in one fixed order, so nothing is lost or overspent
 *	   and two members are only ever locked in member_id order (merge);
 *	2. with an idempotency key, look the key up after the lock, so a racing
 *	   replay sees the first call's committed result and returns it;
 *	3. write one ledger row, move lots (credit creates a lot, debit consumes
 *	   lots first-to-expire-first and records allocations), and update the
 *	   account with the same deltas.
 * The rows of the books go through the ledger store (store.h); the other
 * statements are kept plans (loyalty_run).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "challenges.h"
#include "ledger.h"
#include "loyalty.h"
#include "points.h"
#include "rules.h"
#include "store.h"
#include "tier.h"

/* Domain SQLSTATEs (class LY), documented in the README. */
#define ERRCODE_LOYALTY_INSUFFICIENT_POINTS	MAKE_SQLSTATE('L','Y','0','0','1')
#define ERRCODE_LOYALTY_IDEMPOTENCY_CONFLICT	MAKE_SQLSTATE('L','Y','0','0','2')
#define ERRCODE_LOYALTY_HOLD_NOT_ACTIVE		MAKE_SQLSTATE('L','Y','0','0','3')
#define ERRCODE_LOYALTY_OVER_REVERSAL		MAKE_SQLSTATE('L','Y','0','0','4')
#define ERRCODE_LOYALTY_TRANSFER_REFUSED	MAKE_SQLSTATE('L','Y','0','4','0')
#define ERRCODE_LOYALTY_TRANSFER_LIMIT		MAKE_SQLSTATE('L','Y','0','4','1')
#define ERRCODE_LOYALTY_HOUSEHOLD			MAKE_SQLSTATE('L','Y','0','6','0')
#define ERRCODE_LOYALTY_HOUSEHOLD_LIMIT		MAKE_SQLSTATE('L','Y','0','6','1')



/* The statements of the write path, prepared once per backend. */
typedef enum LedgerStmt
{
	S_MERGED,
	S_SAME_DAY,
	S_IDEM_GET,
	S_EVENT_INS,
	S_AVAILABLE,
	S_ENTRY_GET,
	S_PURCHASE_BY_REF,
	S_ABSORBED_PURCHASE,
	S_LOT_OF_ENTRY,
	S_OPEN_ALLOC,
	S_HOLD_GET,
	S_HOLD_MEMBER,
	S_HOLD_RESOLVE,
	S_HOLD_INS,
	S_EXPIRED_HOLDS,
	S_TIER_HISTORY,
	S_TIER_EVENT,
	S_ACCOUNT_CHANGE,
	S_ACTIVE_HOLDS,
	S_MOVE_IDENTITIES,
	S_MEMBER_KEYS,
	S_CLOSE_MEMBER,
	S_MEMBER_STATUS,
	S_REPOINT_MERGED,
	S_MERGE_ENGAGEMENT,
	S_REFERRAL,
	S_RULE_TAGS,
	S_CHALLENGE_REFUND,
	S_TIER,
	S_TRANSFER_RULES,
	S_TRANSFER_SUMS,
	S_TRANSFER_IN,
	S_ENTRY_LOTS,
	S_HOUSEHOLD_OF,
	S_HOUSEHOLD_LOCK,
	S_HOUSEHOLD_MEMBERS,
	S_HOUSEHOLD_RULES,
	S_HOUSEHOLD_SPENT,
	S_HOUSEHOLD_POOL,
	S_SHARE_INS,
	S_SHARE_GET,
	S_SHARE_SUMS,
	S_SHARE_REVERSED,
	S_COUPONS_REFUNDED,
	NUM_STMTS
} LedgerStmt;

typedef struct StmtDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[32];
} StmtDef;

static const StmtDef stmt_defs[NUM_STMTS] = {
	[S_MERGED] = {
		"SELECT merged_into FROM loyalty.members WHERE member_id" EQ "$1",
	1, {INT8OID}},
	/* a back-dated purchase: did its UTC day already have one? */
	[S_SAME_DAY] = {
		"SELECT EXISTS (SELECT 1 FROM loyalty.ledger x WHERE x.member_id" EQ "$1"
		" AND x.kind" EQ "'earn' AND x.occurred_at" GE "$2 AND x.occurred_at" LT "$3)",
	3, {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID}},
	[S_IDEM_GET] = {
		"SELECT operation, request_hash, result, entry_id FROM loyalty.idempotency_keys"
		" WHERE member_id" EQ "$1 AND idempotency_key" EQ "$2",
	2, {INT8OID, TEXTOID}},
	[S_EVENT_INS] = {
		"INSERT INTO loyalty.events (member_id, program_id, kind, payload)"
		" VALUES ($1, $2, 'points.earned', pg_catalog.jsonb_build_object('entry_id', $3,"
		"  'points', $4, 'amount', $5, 'channel', $6, 'reference', $7)) RETURNING event_id",
	7, {INT8OID, INT8OID, INT8OID, INT8OID, NUMERICOID, TEXTOID, TEXTOID}},
	[S_AVAILABLE] = {
		"SELECT COALESCE(pg_catalog.sum(remaining" I8 "), 0)" I8
		" FROM loyalty.lots WHERE member_id" EQ "$1"
		" AND is_open AND vests_at" LE "$2 AND (expires_at IS NULL OR expires_at" GT "$2)",
	2, {INT8OID, TIMESTAMPTZOID}},
	[S_ENTRY_GET] = {
		"SELECT kind, points" I8 ", amount, source_entry, hold_id,"
		" (details OPERATOR(pg_catalog.->>) 'to_member')" I8 " FROM loyalty.ledger"
		" WHERE member_id" EQ "$1 AND entry_id" EQ "$2",
	2, {INT8OID, INT8OID}},
	/* a member's purchases under a reference, and what each stands for */
	[S_PURCHASE_BY_REF] = {
		"SELECT l.entry_id, l.amount" MINUS "coalesce(lo.reversed_amount, 0)"
		" FROM loyalty.ledger l LEFT JOIN loyalty.lots lo"
		"  ON lo.member_id" EQ "l.member_id AND lo.lot_id" EQ "l.entry_id"
		" WHERE l.member_id" EQ "$1 AND l.reference" EQ "$2 AND l.kind" EQ "'earn'"
		" ORDER BY l.entry_id LIMIT 2",
	2, {INT8OID, TEXTOID}},
	/* the members merged into a member that have a purchase under a reference */
	[S_ABSORBED_PURCHASE] = {
		"SELECT DISTINCT l.member_id FROM loyalty.members m JOIN loyalty.ledger l"
		"  ON l.member_id" EQ "m.member_id"
		" WHERE m.merged_into" EQ "$1 AND l.reference" EQ "$2 AND l.kind" EQ "'earn'"
		" LIMIT 2",
	2, {INT8OID, TEXTOID}},
	[S_LOT_OF_ENTRY] = {
		"SELECT lot_id, original" I8 ", remaining" I8 ", reversed" I8 ", reversed_amount,"
		" (vests_at" LE "$3 AND (expires_at IS NULL OR expires_at" GT "$3))"
		" FROM loyalty.lots WHERE member_id" EQ "$1 AND lot_id" EQ "$2",
	3, {INT8OID, INT8OID, TIMESTAMPTZOID}},
	[S_OPEN_ALLOC] = {
		"SELECT COALESCE(pg_catalog.sum(points" I8 MINUS "returned" I8 "), 0)" I8
		" FROM loyalty.allocations WHERE member_id" EQ "$1 AND entry_id" EQ "$2",
	2, {INT8OID, INT8OID}},
	[S_HOLD_GET] = {
		"SELECT entry_id, points" I8 ", status, expires_at" LE "pg_catalog.now()"
		" FROM loyalty.holds WHERE member_id" EQ "$1 AND hold_id" EQ "$2",
	2, {INT8OID, INT8OID}},
	[S_HOLD_MEMBER] = {
		"SELECT member_id FROM loyalty.holds WHERE hold_id" EQ "$1",
	1, {INT8OID}},
	[S_HOLD_RESOLVE] = {
		"UPDATE loyalty.holds SET status = $3, captured = $4" PTS ","
		" resolved_at = pg_catalog.now(), resolved_entry = $5"
		" WHERE member_id" EQ "$1 AND hold_id" EQ "$2",
	5, {INT8OID, INT8OID, TEXTOID, INT8OID, INT8OID}},
	[S_HOLD_INS] = {
		"INSERT INTO loyalty.holds (member_id, entry_id, points, channel, reference, expires_at)"
		" VALUES ($1, $2, $3" PTS ", $4, $5, pg_catalog.now()" PLUS "$6) RETURNING hold_id",
	6, {INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID, INTERVALOID}},
	/* rare: only while the member's referral waits for a qualifying purchase */
	[S_REFERRAL] = {
		"SELECT loyalty.referral_purchase($1, $2, $3)",
	3, {INT8OID, INT8OID, NUMERICOID}},

	/*
	 * programs with active challenges: a refund takes back what its purchase
	 * moved
	 */
	[S_CHALLENGE_REFUND] = {
		"SELECT loyalty.challenge_refund($1, $2, $3)",
	3, {INT8OID, INT8OID, NUMERICOID}},
	/* an earning rule that tags the member it applies to */
	[S_RULE_TAGS] = {
		"INSERT INTO loyalty.member_tags (member_id, tag, program_id, tagged_by)"
		" SELECT $1, t, $2, 'rule' FROM pg_catalog.unnest($3::pg_catalog.text[]) t"
		" ON CONFLICT DO NOTHING",
	3, {INT8OID, INT8OID, TEXTARRAYOID}},
	/* programs with tiers: upgrade after an earn, maybe demote after a refund */
	[S_TIER] = {
		"SELECT loyalty.tier_after_write($1, $2)",
	2, {INT8OID, TEXTOID}},
	/* a program's transfer rules, with the sender's earliest sending time */
	[S_TRANSFER_RULES] = {
		"SELECT r.enabled, r.min_points" I8 ", r.max_points" I8 ", m.joined_at" PLUS "r.min_tenure,"
		" r.min_tier_rank, r.sender_daily_points, r.sender_monthly_points, r.sender_daily_count,"
		" r.receiver_daily_points, r.receiver_monthly_points, r.same_household"
		" FROM loyalty.transfer_rules r, loyalty.members m"
		" WHERE r.program_id" EQ "$1 AND m.member_id" EQ "$2",
	2, {INT8OID, INT8OID}},

	/*
	 * a member's transfers sent ($4) or received this day and month ($3: time
	 * zone)
	 */
	[S_TRANSFER_SUMS] = {
		"SELECT COALESCE(pg_catalog.sum(pg_catalog.abs(points" I8 ")) FILTER"
		"  (WHERE created_at" GE "pg_catalog.date_trunc('day', $2, $3)), 0)" I8 ","
		" pg_catalog.count(*) FILTER (WHERE created_at" GE "pg_catalog.date_trunc('day', $2, $3)),"
		" COALESCE(pg_catalog.sum(pg_catalog.abs(points" I8 ")), 0)" I8
		" FROM loyalty.ledger WHERE member_id" EQ "$1 AND kind" EQ "'transfer'"
		" AND (points" I8 LT "0)" EQ "$4 AND created_at" GE "pg_catalog.date_trunc('month', $2, $3)"
		" AND (details OPERATOR(pg_catalog.->>) 'household') IS NULL",
	4, {INT8OID, TIMESTAMPTZOID, TEXTOID, BOOLOID}},
	/* the receiving side of a transfer */
	[S_TRANSFER_IN] = {
		"SELECT entry_id, points" I8 " FROM loyalty.ledger"
		" WHERE member_id" EQ "$1 AND source_entry" EQ "$2 AND kind" EQ "'transfer'",
	2, {INT8OID, INT8OID}},

	/*
	 * an entry's lots with points left, first to expire first; spendable at
	 * $3?
	 */
	[S_ENTRY_LOTS] = {
		"SELECT lot_id, remaining" I8 ", vests_at" LE "$3 AND (expires_at IS NULL OR expires_at" GT "$3)"
		" FROM loyalty.lots WHERE member_id" EQ "$1 AND entry_id" EQ "$2 AND is_open"
		" ORDER BY expires_at NULLS LAST, lot_id",
	3, {INT8OID, INT8OID, TIMESTAMPTZOID}},
	/* a member's household and role (the current membership) */
	[S_HOUSEHOLD_OF] = {
		"SELECT household_id, role FROM loyalty.household_members"
		" WHERE member_id" EQ "$1 AND left_at IS NULL",
	1, {INT8OID}},

	/*
	 * the household's lock, taken before its members' (membership changes
	 * take it too)
	 */
	[S_HOUSEHOLD_LOCK] = {
		"SELECT program_id, pool_member FROM loyalty.households WHERE household_id" EQ "$1 AND dissolved_at IS NULL"
		" FOR NO KEY UPDATE",
	1, {INT8OID}},
	/* the pool of a member's household, if it has one */
	[S_HOUSEHOLD_POOL] = {
		"SELECT h.household_id, h.pool_member FROM loyalty.household_members m"
		" JOIN loyalty.households h ON h.household_id" EQ "m.household_id"
		" WHERE m.member_id" EQ "$1 AND m.left_at IS NULL AND h.pool_member IS NOT NULL",
	1, {INT8OID}},
	[S_SHARE_INS] = {
		"INSERT INTO loyalty.household_shares (member_id, entry_id, program_id, household_id, pool_member,"
		" share_entry, points) VALUES ($1, $2, $3, $4, $5, $6, $7)",
	7, {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID}},
	[S_SHARE_GET] = {
		"SELECT pool_member, share_entry, points FROM loyalty.household_shares"
		" WHERE member_id" EQ "$1 AND entry_id" EQ "$2",
	2, {INT8OID, INT8OID}},
	/* only when the member has coupons under the reference: rare */
	[S_COUPONS_REFUNDED] = {
		"SELECT loyalty.coupons_refunded($1, $2) WHERE EXISTS (SELECT 1 FROM loyalty.coupon_redemptions"
		" WHERE member_id" EQ "$1 AND reference" EQ "$2 AND status" EQ "ANY ('{held,captured}'))",
	2, {INT8OID, TEXTOID}},
	[S_SHARE_REVERSED] = {
		"UPDATE loyalty.household_shares SET reversed = $3 WHERE member_id" EQ "$1 AND entry_id" EQ "$2",
	3, {INT8OID, INT8OID, INT8OID}},
	/* what each of the members gave a household's pool */
	[S_SHARE_SUMS] = {
		"SELECT member_id, pg_catalog.sum(points" MINUS "reversed)" I8 " FROM loyalty.household_shares"
		" WHERE household_id" EQ "$1 AND member_id" EQ "ANY ($2) GROUP BY member_id",
	2, {INT8OID, INT8ARRAYOID}},
	[S_HOUSEHOLD_MEMBERS] = {
		"SELECT member_id FROM loyalty.household_members WHERE household_id" EQ "$1 AND left_at IS NULL"
		" ORDER BY member_id",
	1, {INT8OID}},
	[S_HOUSEHOLD_RULES] = {
		"SELECT child_can_redeem, adult_monthly_points, child_monthly_points, pool_on_dissolve"
		" FROM loyalty.household_rules"
		" WHERE program_id" EQ "$1",
	1, {INT8OID}},

	/*
	 * what a member redeemed from the household this month ($3: the time
	 * zone)
	 */
	[S_HOUSEHOLD_SPENT] = {
		"SELECT COALESCE(pg_catalog.sum(" MINUS "points" I8 "), 0)" I8 " FROM loyalty.ledger"
		" WHERE member_id" EQ "ANY ($1) AND kind" EQ "'redeem'"
		" AND (details OPERATOR(pg_catalog.->>) 'redeemed_by')" EQ "$4"
		" AND created_at" GE "pg_catalog.date_trunc('month', $2, $3)",
	4, {INT8ARRAYOID, TIMESTAMPTZOID, TEXTOID, TEXTOID}},
	[S_ACTIVE_HOLDS] = {
		"SELECT hold_id FROM loyalty.holds WHERE member_id" EQ "$1"
		" AND status" EQ "'active' ORDER BY hold_id",
	1, {INT8OID}},
	/* a merge: the absorbed member's keys (carried to the survivor) */
	[S_MEMBER_KEYS] = {
		"SELECT idempotency_key, operation, request_hash, result, entry_id"
		" FROM loyalty.idempotency_keys k WHERE k.member_id" EQ "$1 ORDER BY idempotency_key",
	1, {INT8OID}},
	/* a merge: the absorbed member's identities and record */
	[S_MOVE_IDENTITIES] = {
		"UPDATE loyalty.identities SET member_id = $1 WHERE member_id" EQ "$2",
	2, {INT8OID, INT8OID}},
	[S_CLOSE_MEMBER] = {
		"UPDATE loyalty.members SET status = 'closed', merged_into = $1 WHERE member_id" EQ "$2",
	2, {INT8OID, INT8OID}},
	[S_MEMBER_STATUS] = {
		"UPDATE loyalty.members SET status = $2 WHERE member_id" EQ "$1 AND merged_into IS NULL",
	2, {INT8OID, TEXTOID}},
	/* members merged into the absorbed one now point at the survivor */
	[S_REPOINT_MERGED] = {
		"UPDATE loyalty.members SET merged_into = $1 WHERE merged_into" EQ "$2",
	2, {INT8OID, INT8OID}},
	/* the absorbed member's tags, badges, challenge progress, survey answers */
	[S_MERGE_ENGAGEMENT] = {
		"SELECT loyalty.merge_engagement($1, $2)",
	2, {INT8OID, INT8OID}},
	/* a tier change's history row and event (the tiers as text) */
	[S_TIER_HISTORY] = {
		"INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason)"
		" VALUES ($1, $2::loyalty.tier, $3::loyalty.tier, $4)",
	4, {INT8OID, TEXTOID, TEXTOID, TEXTOID}},
	[S_TIER_EVENT] = {
		"SELECT loyalty.emit_event($1, 'tier.changed',"
		" pg_catalog.jsonb_build_object('from', $2, 'to', $3, 'reason', $4))",
	4, {INT8OID, TEXTOID, TEXTOID, TEXTOID}},

	/*
	 * a change of an account's status or tier, which writes no ledger row:
	 * the rollups' refresh finds the accounts to count again by it
	 */
	[S_ACCOUNT_CHANGE] = {
		"INSERT INTO loyalty.account_changes (member_id) VALUES ($1)",
	1, {INT8OID}},
	[S_EXPIRED_HOLDS] = {
		"SELECT hold_id FROM loyalty.holds WHERE member_id" EQ "$1"
		" AND status" EQ "'active' AND expires_at" LE "pg_catalog.now() ORDER BY hold_id",
	1, {INT8OID}},
};

static KeptPlan plans[NUM_STMTS];

typedef struct Member Member;
static void RefusePool(Member *m);
static void RequireActive(Member *m);
static bool BeginWrite(int64 id, bool by_hold, bool need_active, text *key, const char *op,
					   int64 hash, Member *m, LedgerResult *res);
static bool Replayed(Member *m, text *key, const char *op, int64 hash, bool need_active,
					 LedgerResult *res);
static int64 ReverseHash(const ReverseRequest *r);
static void ReverseWrite(Member *m, const ReverseRequest *r, int64 hash, LedgerResult *res);

/*
 * A move of a household pool that follows a member's write: the share of an
 * earn credited, or taken back after a refund.  A bulk queues them and makes
 * them after its members (pools last, in pool order), so that two bulks, or
 * a bulk and single calls, never lock a pool and a member in opposite orders.
 */
typedef struct PoolMove
{
	bool		credit;			/* else take back */
	int64		pool;
	int64		household;
	int64		earner;
	int64		earn_entry;
	int64		share_entry;	/* take back: the share's entry */
	Points		points;			/* credit: the share; take back: the share
								 * reversed in all after this refund */
	TimestampTz occurred_at;
	TimestampTz expires_at;		/* 0: the program's expiry */
	text	   *channel;
	text	   *reference;
	text	   *reason;
	int			seq;			/* order of queueing */
} PoolMove;

static void PoolMoveWrite(StoreWriter *w, const PoolMove *mv);
static int	ComparePoolMoves(const ListCell *a, const ListCell *b);

/* What a write needs to know about the locked member and its program. */
struct Member
{
	int64		member_id;
	int64		program_id;
	char		status[16];
	Points		balance;
	Points		held;
	Points		debt;
	Datum		earn_rate;		/* numeric, copied to the caller's context */
	PointsRounding rounding;
	bool		has_expiry;
	Interval	expiry;
	Interval	pending;
	bool		refund_debt;
	Interval	max_hold_ttl;
	bool		has_closed;
	TimestampTz closed_through;
	TimestampTz now;
	TimestampTz first_purchase_at;	/* 0: no purchase yet */
	TimestampTz last_purchase_at;
	bool		emits_earned;	/* the program writes points.earned events */
	bool		referral_pending;	/* a purchase may settle a referral */
	char		time_zone[64];
	const char *rounding_name;
	int64		rules_version;
	int32		tier_rank;		/* -1: no tier */
	Tier	   *tier;			/* NULL: no tier */
	text	   *segment;
	text	   *risk_band;
	bool		has_tiers;		/* the program has a tier policy */
	TimestampTz next_expiry;	/* accounts.next_expiry_at (0: NULL) */
	ItemPointerData tid;		/* where the locked account row was */
	StoreWriter *w;				/* the call's writes */

	/*
	 * A bulk earn's account changes not yet written (NULL: each change is
	 * written at once): the member's earns of one statement update its
	 * account once (LedgerBulk).
	 */
	AccountDelta *deferred;
	bool		deferred_dirty;
	MemoryContext deferred_cxt; /* where the deferred sums live */
	bool		stale;			/* an SQL function changed the account */

	bool		has_pool_share; /* earns feed household pools */
	bool		has_challenges; /* the program has active challenges */
	bool		engagement;		/* the schema has 1.4's engagement tables */
	Datum		pool_share;		/* numeric: the share of each earn */
	Datum		max_multiplier; /* numeric ceiling of an earn (0: none) */

	/*
	 * A bulk's queue of pool moves (NULL: each is made at once), in the
	 * bulk's context.
	 */
	List	  **pool_queue;
	MemoryContext pool_cxt;
};

/* One ledger row and, for a credit, its lot (numbered by the entry). */
typedef struct Entry
{
	LedgerRow	row;
	int64		lot_original;	/* 0: no lot */
	int64		lot_remaining;
	TimestampTz lot_vests_at;
	TimestampTz lot_expires_at; /* 0: never */
	bool		purchase_event; /* a purchase: points.earned is emitted */
} Entry;

static void PoolShare(Member *m, Entry *earn, int64 entry_id, Points points);
static void PoolTakeBack(Member *m, int64 earn_entry, Points original, Points reversed, text *reason,
						 text *reference);

/*
 * Execute a kept plan, preparing it on first use.  Never read-only: a
 * read-only SPI call would reuse the calling statement's snapshot, and after
 * waiting for a member's lock every read must see what the previous holder
 * of the lock committed (READ COMMITTED takes a fresh snapshot per call).
 */
static int
ExecStmt(LedgerStmt s, Datum *values, const char *nulls, long tcount)
{
	int			rc;

	rc = loyalty_run(&plans[s], stmt_defs[s].sql, stmt_defs[s].nargs, stmt_defs[s].argtypes,
					 values, nulls, false, tcount);
	if (rc < 0)
		elog(ERROR, "loyalty: statement %d failed: %s", (int) s, SPI_result_code_string(rc));
	return rc;
}

/*
 * Record that the member's account changed in a way no ledger row of this
 * transaction shows (its status, its tier): the BI rollups count the member
 * again.  A row per change, never a shared one.  Not on Citus: the refresh is
 * refused there and the views compute from the accounts, so no one would
 * read or delete the row.
 */
static void
AccountChanged(int64 member_id)
{
	Datum		values[1];

	if (loyalty_distributed())
		return;
	values[0] = Int64GetDatum(member_id);
	ExecStmt(S_ACCOUNT_CHANGE, values, NULL, 0);
}

/*
 * loyalty.account_changed(member): the same for the SQL writers (a region
 * changed by update_member), under the member's lock.
 */
PG_FUNCTION_INFO_V1(loyalty_account_changed);
Datum
loyalty_account_changed(PG_FUNCTION_ARGS)
{
	SPI_connect();
	AccountChanged(PG_GETARG_INT64(0));
	SPI_finish();
	PG_RETURN_VOID();
}

/* Column `col` (1-based) of row `row` of the last result; *isnull set. */
static Datum
Col(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

/* An int8 column that cannot be NULL. */
static int64
ColInt8(int row, int col)
{
	bool		isnull;
	Datum		d = Col(row, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* A text value as a C string in a fixed buffer. */
static void
TextInto(Datum d, char *buf, size_t size)
{
	text	   *t = DatumGetTextPP(d);
	size_t		len = Min(VARSIZE_ANY_EXHDR(t), size - 1);

	memcpy(buf, VARDATA_ANY(t), len);
	buf[len] = '\0';
}

/* Whether a text[] holds `value`. */
static bool
TextArrayHas(Datum array, const char *value)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		char		buf[64];

		if (nulls[i])
			continue;
		TextInto(elems[i], buf, sizeof(buf));
		if (strcmp(buf, value) == 0)
			return true;
	}
	return false;
}

/*
 * Find the member's account (locked FOR NO KEY UPDATE when `lock`) and load
 * what the write needs.  Unknown members raise P0002; `need_active` refuses
 * suspended and closed members (55000).
 *
 * The account row is the member's lock, and it carries the member's status:
 * after waiting for the lock, READ COMMITTED follows the row to its latest
 * version, so anything a concurrent merge or status change wrote must be on
 * that row to be seen.
 */
static void
LoadMember(bool lock, int64 member_id, Member *m, bool need_active)
{
	AccountRead r;
	char		buf[16];
	StoreWriter *w = m->w;
	MemoryContext cxt = CurrentMemoryContext;
	bool		found;

	/*
	 * What is read lives in the caller's context (a bulk keeps it across
	 * calls); an SPI call of the SQL store returns in SPI's.
	 */
	found = store_read_account(w, member_id, lock, &r);
	MemoryContextSwitchTo(cxt);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %lld does not exist", (long long) member_id),
				 errhint("Enroll the member first with loyalty.enroll(), or look it up with loyalty.member_id().")));

	memset(m, 0, sizeof(*m));
	m->w = w;
	m->member_id = member_id;
	m->balance = DatumGetInt64(r.acc[A_BALANCE]);
	m->held = DatumGetInt64(r.acc[A_HELD]);
	m->debt = DatumGetInt64(r.acc[A_DEBT]);
	TextInto(r.acc[A_STATUS], m->status, sizeof(m->status));
	m->program_id = DatumGetInt64(r.acc[A_PROGRAM]);
	m->first_purchase_at = r.acc_null[A_FIRST] ? 0 : DatumGetTimestampTz(r.acc[A_FIRST]);
	m->last_purchase_at = r.acc_null[A_LAST] ? 0 : DatumGetTimestampTz(r.acc[A_LAST]);
	m->referral_pending = DatumGetBool(r.acc[A_REFERRAL]);
	m->tier = r.acc_null[A_TIER] ? NULL : DatumGetTierP(r.acc[A_TIER]);
	m->tier_rank = m->tier ? m->tier->rank : -1;
	m->segment = r.acc_null[A_SEGMENT] ? NULL : DatumGetTextPP(r.acc[A_SEGMENT]);
	m->risk_band = r.acc_null[A_RISK_BAND] ? NULL : DatumGetTextPP(r.acc[A_RISK_BAND]);
	m->next_expiry = r.acc_null[A_NEXT_EXPIRY] ? 0 : DatumGetTimestampTz(r.acc[A_NEXT_EXPIRY]);
	m->tid = r.tid;

	m->earn_rate = r.prog[P_EARN_RATE];
	m->rounding_name = TextDatumGetCString(r.prog[P_ROUNDING]);
	m->rounding = points_rounding_from_name(m->rounding_name);
	m->has_expiry = !r.prog_null[P_EXPIRY];
	if (m->has_expiry)
		m->expiry = *DatumGetIntervalP(r.prog[P_EXPIRY]);
	if (!r.prog_null[P_PENDING])
		m->pending = *DatumGetIntervalP(r.prog[P_PENDING]);
	TextInto(r.prog[P_REFUND], buf, sizeof(buf));
	m->refund_debt = strcmp(buf, "debt") == 0;
	if (!r.prog_null[P_MAX_HOLD])
		m->max_hold_ttl = *DatumGetIntervalP(r.prog[P_MAX_HOLD]);
	m->has_closed = !r.prog_null[P_CLOSED];
	if (m->has_closed)
		m->closed_through = DatumGetTimestampTz(r.prog[P_CLOSED]);
	m->emits_earned = !r.prog_null[P_EVENTS] && TextArrayHas(r.prog[P_EVENTS], "points.earned");
	TextInto(r.prog[P_TIME_ZONE], m->time_zone, sizeof(m->time_zone));
	m->rules_version = DatumGetInt64(r.prog[P_RULES_VERSION]);
	m->has_tiers = !r.prog_null[P_TIER_METRIC];
	m->has_pool_share = !r.prog_null[P_POOL_SHARE];
	if (m->has_pool_share)
		m->pool_share = r.prog[P_POOL_SHARE];
	m->max_multiplier = r.prog_null[P_MAX_MULTIPLIER] ? (Datum) 0 : r.prog[P_MAX_MULTIPLIER];
	m->has_challenges = !r.prog_null[P_HAS_CHALLENGES] && DatumGetBool(r.prog[P_HAS_CHALLENGES]);
	m->engagement = !r.prog_null[P_HAS_CHALLENGES];
	/* now(): the transaction's start, as the SQL statements see it */
	m->now = GetCurrentTransactionStartTimestamp();

	/* before any write or status message: a bound role learns nothing more */
	access_check_program(m->program_id);

	if (need_active)
		RequireActive(m);
}

/* Refuse a household's pool where a member is meant (55000). */
static void
RefusePool(Member *m)
{
	if (strcmp(m->status, "pool") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %lld is a household's pool, not a member", (long long) m->member_id),
				 errdetail("A pool is fed by its members' earnings and spent with loyalty.household_redeem()."),
				 errhint("Name a member of the household.")));
}

/*
 * Refuse a write on a suspended or closed member (55000); for a member
 * merged into another, the hint names the survivor.
 */
static void
RequireActive(Member *m)
{
	RefusePool(m);
	if (strcmp(m->status, "active") != 0)
	{
		Datum		values[1];
		bool		isnull;
		bool		merged = false;
		int64		survivor = 0;
		int64		member_id = m->member_id;

		values[0] = Int64GetDatum(member_id);
		ExecStmt(S_MERGED, values, NULL, 1);
		if (SPI_processed == 1)
		{
			survivor = DatumGetInt64(Col(0, 1, &isnull));
			merged = !isnull;
		}
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %lld is %s", (long long) member_id, m->status),
				 errdetail("Only active members can earn, redeem or hold points."),
				 merged ? errhint("The member was merged into member %lld; use that one.", (long long) survivor)
				 : errhint("Reactivate the member with loyalty.set_member_status() first.")));
	}
}

static void
LockMember(int64 member_id, Member *m, bool need_active)
{
	LoadMember(true, member_id, m, need_active);
}

/* Lock two members in member_id order (so that no two calls deadlock). */
static void
LockPair(int64 a_id, Member *a, int64 b_id, Member *b)
{
	if (a_id < b_id)
	{
		LockMember(a_id, a, false);
		LockMember(b_id, b, false);
	}
	else
	{
		LockMember(b_id, b, false);
		LockMember(a_id, a, false);
	}
}

/* Business time of a call: now when not given; never ahead, never closed. */
static TimestampTz
OccurredAt(const OptTime *t, Member *m)
{
	TimestampTz ts;

	if (!t->given)
		return m->now;
	ts = t->value;
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("occurred_at must be a finite time")));
	if (ts < m->now - (int64) loyalty_max_past_days * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("occurred_at %s lies too far in the past", timestamptz_to_str(ts)),
				 errdetail("loyalty.max_past_days allows %d days before the database time %s.",
						   loyalty_max_past_days, timestamptz_to_str(m->now)),
				 errhint("Send the time the sale happened; a backfill of older sales raises loyalty.max_past_days.")));
	if (ts > m->now + (int64) loyalty_max_future_seconds * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("occurred_at %s lies in the future", timestamptz_to_str(ts)),
				 errdetail("The database time is %s; loyalty.max_future_seconds allows %d seconds of clock skew.",
						   timestamptz_to_str(m->now), loyalty_max_future_seconds),
				 errhint("Send the time the event happened, from a synchronised clock.")));
	if (m->has_closed && ts <= m->closed_through)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("occurred_at %s lies in a closed period", timestamptz_to_str(ts)),
				 errdetail("The program's books are closed through %s.", timestamptz_to_str(m->closed_through)),
				 errhint("Post the correction with the current time instead.")));
	return ts;
}

/* timestamptz + interval, through the built-in operator. */
static TimestampTz
AddInterval(TimestampTz ts, Interval *iv)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(ts),
												   IntervalPGetDatum(iv)));
}

/*
 * A 64-bit fingerprint of a call's payload, so a replay with the same key
 * but other arguments can be told apart from a true replay.
 */
static void
HashStart(StringInfo b, const char *op)
{
	initStringInfo(b);
	appendStringInfoString(b, op);
}

/* Each part is "|value", or "|\N" for NULL (the format keys were stored with). */
static bool
HashPart(StringInfo b, bool isnull)
{
	appendStringInfoChar(b, '|');
	if (isnull)
		appendStringInfoString(b, "\\N");
	return !isnull;
}

static void
HashInt(StringInfo b, bool isnull, int64 v)
{
	if (HashPart(b, isnull))
		appendStringInfo(b, INT64_FORMAT, v);
}

/* normalized, so 10 and 10.00 are the same request */
static void
HashNumeric(StringInfo b, Numeric n)
{
	if (HashPart(b, n == NULL))
		appendStringInfoString(b, numeric_normalize(n));
}

static void
HashText(StringInfo b, text *t)
{
	if (HashPart(b, t == NULL))
		appendBinaryStringInfo(b, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

static void
HashTime(StringInfo b, const OptTime *t)
{
	if (HashPart(b, !t->given))
		appendStringInfo(b, INT64_FORMAT, (int64) t->value);
}

/* jsonb's text form is canonical (key order, spacing) */
static void
HashJsonb(StringInfo b, Jsonb *jb)
{
	if (HashPart(b, jb == NULL))
		appendStringInfoString(b, JsonbToCString(NULL, &jb->root, VARSIZE(jb)));
}

static void
HashInterval(StringInfo b, Interval *iv)
{
	if (HashPart(b, iv == NULL))
		appendStringInfo(b, INT64_FORMAT ":%d:%d", (int64) iv->time, iv->day, iv->month);
}

static int64
HashEnd(StringInfo b)
{
	int64		h = (int64) hash_bytes_extended((const unsigned char *) b->data, b->len, 0);

	pfree(b->data);
	return h;
}

/*
 * Look an idempotency key up (after the account lock).  Returns true with the
 * first call's result when it is a replay; raises LY002 when the key was used
 * for another operation or payload.
 */
static bool
IdemLookup(Member *m, text *key, const char *op, int64 hash, LedgerResult *res)
{
	IdemRow		k;
	const char *prev_op = k.operation;

	if (key == NULL)
		return false;
	if (!store_read_idempotency(m->w, m->member_id, key, &k))
		return false;
	if (strcmp(prev_op, op) != 0 || k.request_hash != hash)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_IDEMPOTENCY_CONFLICT),
				 errmsg("idempotency key \"%s\" was already used for a different request",
						text_to_cstring(key)),
				 errdetail("The key was first used by loyalty.%s() with other arguments.", prev_op),
				 errhint("Use a new key for a new request; replay a request only with identical arguments.")));
	res->replayed = true;
	res->points = res->entry_id = res->hold_id = k.result;
	res->entry_id = k.entry_id;
	return true;
}

/* Record the first result of a keyed call. */
static void
IdemStore(Member *m, text *key, const char *op, int64 hash, int64 result, int64 entry_id)
{
	if (key == NULL)
		return;
	store_insert_idempotency(m->w, m->member_id, key, op, hash, result, entry_id);
}

/* UTC day number of a time (purchase days are counted in UTC days). */
static int64
UtcDay(TimestampTz ts)
{
	return ts / USECS_PER_DAY - (ts % USECS_PER_DAY < 0 ? 1 : 0);
}

/*
 * Whether a purchase at `ts` falls on a UTC day that already has one.  The
 * account's first and last purchase times answer it for every purchase but
 * a back-dated one between them, which asks the ledger.
 */
static bool
PurchaseDaySeen(Member *m, TimestampTz ts)
{
	int64		day = UtcDay(ts);
	Datum		values[3];
	bool		isnull;

	if (m->last_purchase_at == 0)
		return false;
	if (day == UtcDay(m->last_purchase_at) || day == UtcDay(m->first_purchase_at))
		return true;
	if (day > UtcDay(m->last_purchase_at) || day < UtcDay(m->first_purchase_at))
		return false;
	values[0] = Int64GetDatum(m->member_id);
	values[1] = TimestampTzGetDatum(day * USECS_PER_DAY);
	values[2] = TimestampTzGetDatum((day + 1) * USECS_PER_DAY);
	ExecStmt(S_SAME_DAY, values, NULL, 1);
	return DatumGetBool(Col(0, 1, &isnull));
}

/* Keep the cached account in step with deltas just written. */
static void
ApplyDelta(Member *m, AccountDelta *d)
{
	m->balance = points_add_checked(m->balance, d->balance);
	m->held = points_add_checked(m->held, d->held);
	m->debt = points_add_checked(m->debt, d->debt);
	if (d->purchase_first && (m->first_purchase_at == 0 || d->purchase_first < m->first_purchase_at))
		m->first_purchase_at = d->purchase_first;
	if (d->purchase_last && (m->last_purchase_at == 0 || d->purchase_last > m->last_purchase_at))
		m->last_purchase_at = d->purchase_last;
	if (d->expiry_floor != 0 && (m->next_expiry == 0 || d->expiry_floor < m->next_expiry))
		m->next_expiry = d->expiry_floor;
}

/*
 * A lot that expires at `expires` is open (again): the account's expiry bound
 * must not lie after it, or the expiry job would not find the member.  Usually
 * the bound is already earlier (lots expire in the order they are credited),
 * and the account update stays a HOT one.
 */
static inline void
LowerExpiryBound(Member *m, AccountDelta *d, TimestampTz expires)
{
	if (expires == 0 || (m->next_expiry != 0 && m->next_expiry <= expires))
		return;
	if (d->expiry_floor == 0 || expires < d->expiry_floor)
		d->expiry_floor = expires;
}

/* Write a bulk's deferred account changes, if any. */
static void
FlushDeferred(Member *m)
{
	if (m->deferred == NULL || !m->deferred_dirty)
		return;
	store_update_account(m->w, m->member_id, &m->tid, m->deferred);
	memset(m->deferred, 0, sizeof(AccountDelta));
	m->deferred_dirty = false;
}

/*
 * Add `d` to the deferred changes: the one update they make at the end sets
 * what the updates one by one would have set (sums add up, the first and
 * last purchase and the expiry bound take the extremes, updated_at is set
 * unless every change kept it).  A change that sets a column outright is
 * not deferred.
 */
static bool
DeferDelta(Member *m, const AccountDelta *d)
{
	AccountDelta *p = m->deferred;

	if (p == NULL || d->exact_next_expiry || d->clear_purchase_dates)
		return false;
	p->balance = points_add_checked(p->balance, d->balance);
	p->held = points_add_checked(p->held, d->held);
	p->debt = points_add_checked(p->debt, d->debt);
	p->earned = points_add_checked(p->earned, d->earned);
	p->redeemed = points_add_checked(p->redeemed, d->redeemed);
	p->expired = points_add_checked(p->expired, d->expired);
	if (d->purchase_first && (p->purchase_first == 0 || d->purchase_first < p->purchase_first))
		p->purchase_first = d->purchase_first;
	if (d->purchase_last && (p->purchase_last == 0 || d->purchase_last > p->purchase_last))
		p->purchase_last = d->purchase_last;
	if (pg_add_s64_overflow(p->purchase_count, d->purchase_count, &p->purchase_count) ||
		pg_add_s64_overflow(p->purchase_days, d->purchase_days, &p->purchase_days))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("account purchase count out of range")));
	if (d->purchase_amount)
	{
		MemoryContext old = MemoryContextSwitchTo(m->deferred_cxt);

		if (p->purchase_amount)
			p->purchase_amount = DirectFunctionCall2(numeric_add, p->purchase_amount, d->purchase_amount);
		else
			p->purchase_amount = datumCopy(d->purchase_amount, false, -1);
		MemoryContextSwitchTo(old);
	}
	if (d->expiry_floor != 0 && (p->expiry_floor == 0 || d->expiry_floor < p->expiry_floor))
		p->expiry_floor = d->expiry_floor;
	p->keep_updated_at = m->deferred_dirty ? (p->keep_updated_at && d->keep_updated_at) : d->keep_updated_at;
	m->deferred_dirty = true;
	return true;
}

/*
 * Apply deltas to the locked account row, or to a bulk's deferred changes
 * (int8 overflow raises 22003).
 */
static void
UpdateAccount(Member *m, AccountDelta *d)
{
	if (!DeferDelta(m, d))
	{
		FlushDeferred(m);
		store_update_account(m->w, m->member_id, &m->tid, d);
	}
	ApplyDelta(m, d);
}

/*
 * Append one ledger row (with its lot, for a credit) and, when `d` is given,
 * apply the account deltas; returns its entry_id.
 */
static int64
InsertEntry(Member *m, Entry *e, AccountDelta *d)
{
	int64		entry_id;

	e->row.member_id = m->member_id;
	e->row.program_id = m->program_id;
	if (e->row.occurred_at == 0)
		e->row.occurred_at = m->now;
	if (d && e->lot_remaining > 0)
		LowerExpiryBound(m, d, e->lot_expires_at);
	else if (e->lot_remaining > 0 && e->lot_expires_at != 0)
		elog(ERROR, "loyalty: a credit must update its account");
	entry_id = store_insert_entry(m->w, &e->row);
	if (e->lot_original > 0)
	{
		LotRow		lot = {0};

		lot.member_id = m->member_id;
		lot.lot_id = entry_id;
		lot.entry_id = entry_id;
		lot.original = e->lot_original;
		lot.remaining = e->lot_remaining;
		lot.vests_at = e->lot_vests_at;
		lot.expires_at = e->lot_expires_at;
		store_insert_lot(m->w, &lot);
	}
	if (d)
		UpdateAccount(m, d);

	if (e->purchase_event && m->emits_earned)
	{
		Datum		values[7];
		char		nulls[7];
		char		payload[128];

		memset(nulls, ' ', sizeof(nulls));
		values[0] = Int64GetDatum(m->member_id);
		values[1] = Int64GetDatum(m->program_id);
		values[2] = Int64GetDatum(entry_id);
		values[3] = Int64GetDatum(e->row.points);
		values[4] = e->row.amount;
		nulls[4] = e->row.amount ? ' ' : 'n';
		values[5] = PointerGetDatum(e->row.channel);
		nulls[5] = e->row.channel ? ' ' : 'n';
		values[6] = PointerGetDatum(e->row.reference);
		nulls[6] = e->row.reference ? ' ' : 'n';
		ExecStmt(S_EVENT_INS, values, nulls, 0);

		/*
		 * delivered at commit only, like the outbox row; same text as
		 * emit_event's
		 */
		snprintf(payload, sizeof(payload),
				 "{\"kind\": \"points.earned\", \"event_id\": " INT64_FORMAT ", \"member_id\": " INT64_FORMAT "}",
				 ColInt8(0, 1), m->member_id);
		Async_Notify("loyalty_events", payload);
	}
	return entry_id;
}


/*
 * Spendable points at time `at`: vested, unexpired lot remainders, less any
 * open debt (lots that vest while a debt is open do not make it spendable).
 */
static Points
Available(Member *m, TimestampTz at)
{
	Datum		values[2];

	values[0] = Int64GetDatum(m->member_id);
	values[1] = TimestampTzGetDatum(at);
	ExecStmt(S_AVAILABLE, values, NULL, 1);
	return points_sub_checked(ColInt8(0, 1), m->debt);
}

/*
 * Describe the lot of a credit of `points` (vesting and expiring by the
 * program's policy) for InsertEntry to write with the ledger row.  Only a
 * purchase waits out the pending period (the return window); an award or an
 * adjustment has nothing to return and is spendable at once.  An open
 * debt is repaid first: the lot then starts with less remaining than its
 * original, which keeps reversals of this credit bounded by what it
 * credited.  Returns the debt repaid.
 */
static Points
PrepareLot(Member *m, Entry *e, Points points, TimestampTz expires_override, bool purchase)
{
	Points		repay = Min(points, m->debt);

	e->lot_original = points;
	e->lot_remaining = points - repay;
	e->lot_vests_at = purchase ? AddInterval(e->row.occurred_at, &m->pending) : e->row.occurred_at;
	if (expires_override)
		e->lot_expires_at = expires_override;
	else if (m->has_expiry)
		e->lot_expires_at = AddInterval(e->row.occurred_at, &m->expiry);
	return repay;
}

/* Raise LY001 for a debit larger than what can be spent. */
static void
InsufficientPoints(Member *m, Points wanted, Points available)
{
	ereport(ERROR,
			(errcode(ERRCODE_LOYALTY_INSUFFICIENT_POINTS),
			 errmsg("insufficient points: member %lld has %lld spendable, %lld requested",
					(long long) m->member_id, (long long) available, (long long) wanted),
			 errdetail("Pending, expired and held points cannot be spent."),
			 errhint("Redeem at most the available balance shown by loyalty.balance().")));
}

/*
 * Consume up to `points` first-to-expire-first for entry `entry_id`;
 * returns what the spendable lots gave (all of them when short).
 */
static Points
ConsumeLots(Member *m, int64 entry_id, Points points)
{
	return store_consume_lots(m->w, m->member_id, entry_id, points, m->now);
}

/* Consume exactly `points` that are known to be there. */
static void
ConsumeLotsExact(Member *m, int64 entry_id, Points points)
{
	Points		taken = ConsumeLots(m, entry_id, points);

	if (taken != points)
		elog(ERROR, "loyalty: lot consumption took %lld of %lld points",
			 (long long) taken, (long long) points);
}

/*
 * Before a debit writes anything: refuse one that cannot be covered when
 * that is clear without reading lots (without debt, the posted balance
 * bounds what lots can give).  Returns the debt to subtract from what
 * DebitLots finds.
 */
static Points
PrecheckDebit(Member *m, Points points)
{
	if (m->debt > 0 || points > m->balance)
	{
		Points		available = Available(m, m->now);

		if (available < points)
			InsufficientPoints(m, points, available);
	}
	return m->debt;
}

/*
 * Take a debit's points from lots.  The common case needs no separate
 * availability query: the consumption itself finds a shortfall, and the
 * error then rolls back the entry already written.
 */
static void
DebitLots(Member *m, int64 entry_id, Points points, Points debt)
{
	Points		taken = ConsumeLots(m, entry_id, points);

	if (taken != points)
		InsufficientPoints(m, points, Max(taken - debt, 0));
}

/* Give `points` back to the lots that entry `source` consumed. */
static void
ReturnToLots(Member *m, int64 source, Points points)
{
	AccountDelta d = {0};

	LowerExpiryBound(m, &d, store_return_to_lots(m->w, m->member_id, source, points, NULL));
	/* a lot given back to may expire before the bound (rare: a refund) */
	if (d.expiry_floor != 0)
		UpdateAccount(m, &d);
}

/*
 * Give `points` of entry `source` of merged-away member `a` back to its
 * survivor `s`, in new lots of the survivor's entry `entry_id` that keep the
 * expiry of the lots the points came from.
 */
static void
ReturnToSurvivor(Member *a, Member *s, int64 source, Points points, int64 entry_id)
{
	AccountDelta d = {0};
	LotRow		into = {0};

	into.member_id = s->member_id;
	into.entry_id = entry_id;
	into.vests_at = s->now;
	LowerExpiryBound(s, &d, store_return_to_lots(s->w, a->member_id, source, points, &into));
	if (d.expiry_floor != 0)
		UpdateAccount(s, &d);
}

/*
 * The member a merged-away member's books went to, or 0.  A merge repoints
 * the members merged into its absorbed member, so this is one step.
 */
static int64
MergedInto(int64 member_id)
{
	Datum		values[1];
	bool		isnull;
	Datum		into;

	values[0] = Int64GetDatum(member_id);
	ExecStmt(S_MERGED, values, NULL, 1);
	if (SPI_processed != 1)
		return 0;
	into = Col(0, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(into);
}

/* Open (not yet given back) points of a debit entry's allocations. */
static Points
OpenAllocations(Member *m, int64 entry_id)
{
	Datum		values[2];

	values[0] = Int64GetDatum(m->member_id);
	values[1] = Int64GetDatum(entry_id);
	ExecStmt(S_OPEN_ALLOC, values, NULL, 1);
	return ColInt8(0, 1);
}

/* Mark a hold resolved. */
static void
ResolveHold(Member *m, int64 hold_id, const char *status, Points captured, int64 entry_id)
{
	Datum		values[5];

	values[0] = Int64GetDatum(m->member_id);
	values[1] = Int64GetDatum(hold_id);
	values[2] = CStringGetTextDatum(status);
	values[3] = Int64GetDatum(captured);
	values[4] = Int64GetDatum(entry_id);
	ExecStmt(S_HOLD_RESOLVE, values, NULL, 0);
}

/*
 * Release `points` of hold `hold_id` (whose hold entry is `hold_entry`) back
 * to its lots with a 'release' entry; the hold's status is set by the caller.
 */
static int64
ReleaseHoldPoints(Member *m, int64 hold_id, int64 hold_entry, Points points,
				  text *idem_key, const char *reason)
{
	Entry		e = {0};
	AccountDelta d = {0};
	int64		entry_id;

	e.row.kind = "release";
	e.row.points = points;
	e.row.held_delta = -points;
	e.row.source_entry = hold_entry;
	e.row.hold_id = hold_id;
	e.row.idem_key = idem_key;
	e.row.reason = reason ? cstring_to_text(reason) : NULL;
	d.balance = points;
	d.held = -points;
	entry_id = InsertEntry(m, &e, &d);
	if (points > 0)
		ReturnToLots(m, hold_entry, points);
	return entry_id;
}

/*
 * Holds expire on database time: before any write on a member, release its
 * holds whose time is up, so their points are spendable again.
 */
static void
ReleaseExpiredHolds(Member *m)
{
	Datum		values[2];
	int64	   *ids;
	uint64		n,
				i;

	if (m->held <= 0)
		return;
	values[0] = Int64GetDatum(m->member_id);
	ExecStmt(S_EXPIRED_HOLDS, values, NULL, 0);
	n = SPI_processed;
	if (n == 0)
		return;
	ids = palloc(sizeof(int64) * n);
	for (i = 0; i < n; i++)
		ids[i] = ColInt8(i, 1);
	for (i = 0; i < n; i++)
	{
		int64		hold_entry;
		Points		points;
		int64		entry_id;

		CHECK_FOR_INTERRUPTS();
		values[1] = Int64GetDatum(ids[i]);
		ExecStmt(S_HOLD_GET, values, NULL, 1);
		hold_entry = ColInt8(0, 1);
		points = ColInt8(0, 2);
		entry_id = ReleaseHoldPoints(m, ids[i], hold_entry, points, NULL, "hold expired");
		ResolveHold(m, ids[i], "expired", 0, entry_id);
	}
}

/*
 * Refuse NaN, infinite and negative money amounts, and zero unless
 * allow_zero (a purchase paid in full by a coupon is still a purchase: it
 * earns nothing but counts as a visit; a refund of nothing is no refund).
 */
static void
CheckAmount(Numeric amount, const char *name, bool allow_zero)
{
	int			sign;

	if (amount == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	sign = numeric_is_nan(amount) ? 0 :
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(amount),
										  NumericGetDatum(int64_to_numeric(0))));
	if (numeric_is_nan(amount) || numeric_is_inf(amount) || sign < 0 || (sign == 0 && !allow_zero))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(allow_zero ? "%s must be a finite number, not negative" : "%s must be a positive, finite number", name),
				 errdetail("Got %s.", DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(amount)))),
				 errhint("Refunds are loyalty.reverse() calls, not negative amounts.")));
}

/* Points that must be > 0. */
static void
CheckPositivePoints(Points p, const char *name)
{
	if (p <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a positive number of points", name),
				 errdetail("Got %lld.", (long long) p)));
}

/* A text that must be there and not empty. */
static void
CheckText(text *t, const char *name, const char *hint)
{
	if (t == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	if (VARSIZE_ANY_EXHDR(t) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name),
				 hint ? errhint("%s", hint) : 0));
}

/* Open SPI and the call's writes; every entry point pairs it with Finish. */
static void
Connect(Member *m)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	m->w = store_begin();
}

/* Close the call's writes and SPI. */
static void
Finish(Member *m)
{
	store_end(m->w);
	m->w = NULL;
	SPI_finish();
}

/* Let the tier rules look at the member after a write (programs with tiers). */
static void
TierAfterWrite(Member *m, const char *cause)
{
	Datum		values[2];

	if (!m->has_tiers)
		return;
	/* the tier rules read the account, and may change its tier */
	FlushDeferred(m);
	values[0] = Int64GetDatum(m->member_id);
	values[1] = CStringGetTextDatum(cause);
	ExecStmt(S_TIER, values, NULL, 0);
	m->stale = true;
}

/* An idempotency key, when given, is a non-empty text. */
static void
CheckKey(text *key)
{
	if (key != NULL && VARSIZE_ANY_EXHDR(key) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency_key must not be empty"),
				 errhint("Send NULL for a call without a key, or a key that names the request.")));
}

/* A purchase is an amount, or order lines (then the amount may be NULL). */
static void
CheckPurchase(const EarnRequest *r)
{
	if (r->amount != NULL || r->lines == NULL)
		CheckAmount(r->amount, "amount", true);
}

/*
 * Points of a purchase.  A program without earning rules, for a purchase
 * without lines, takes the short way (amount x rate, rounded; no details);
 * otherwise the rules engine computes the points and explains them in *why.
 * *base gets the earn base (the sum of the lines).
 */
static Points
EarnPoints(Member *m, Numeric amount, Jsonb *lines, text *channel, text *store,
		   TimestampTz at, Numeric *base, StringInfo why, PurchaseFacts *facts)
{
	EarnContext ctx = {0};

	if (lines == NULL && rules_active_count(m->program_id, m->rules_version) == 0)
	{
		*base = amount;
		return points_from_numeric_rounded(DirectFunctionCall2(numeric_mul, NumericGetDatum(amount),
															   m->earn_rate), m->rounding);
	}
	ctx.member_id = m->member_id;
	ctx.program_id = m->program_id;
	ctx.rules_version = m->rules_version;
	ctx.earn_rate = m->earn_rate;
	ctx.rounding = m->rounding;
	ctx.rounding_name = m->rounding_name;
	ctx.time_zone = m->time_zone;
	ctx.occurred_at = at;
	ctx.channel = channel;
	ctx.store = store;
	ctx.tier_rank = m->tier_rank;
	ctx.segment = m->segment;
	ctx.risk_band = m->risk_band;
	ctx.first_purchase = m->last_purchase_at == 0;
	ctx.amount = amount;
	ctx.lines = lines;
	ctx.max_multiplier = m->max_multiplier;
	ctx.facts = facts;
	return rules_earn_points(&ctx, base, why);
}

/* The idempotency fingerprint of an earn (0 without a key). */
static int64
EarnHash(const EarnRequest *r)
{
	StringInfoData b;

	if (r->idempotency_key == NULL)
		return 0;
	HashStart(&b, "earn");
	HashNumeric(&b, r->amount);
	HashText(&b, r->channel);
	HashText(&b, r->reference);
	HashTime(&b, &r->occurred_at);
	HashJsonb(&b, r->lines);
	HashText(&b, r->store);
	return HashEnd(&b);
}

/*
 * Take back what a refunded purchase moved in the member's challenges, in
 * the same transaction.  By SQL, which may take back an award's points, so
 * the deferred account changes are written first and the member read again
 * afterwards.
 */
static void
ChallengesRefund(Member *m, Datum *values)
{
	FlushDeferred(m);
	ExecStmt(S_CHALLENGE_REFUND, values, NULL, 0);
	m->stale = true;
}

/* An earn's writes, on the locked active member (not a replay). */
static void
EarnWrite(Member *m, const EarnRequest *r, int64 hash, LedgerResult *res)
{
	Numeric		amount = r->amount;
	Entry		e = {0};
	AccountDelta d = {0};
	Points		points;
	int64		entry_id;
	StringInfoData why;
	List	   *tags;
	PurchaseFacts facts = {0};

	e.row.channel = r->channel;
	e.row.reference = r->reference;
	e.row.idem_key = r->idempotency_key;
	ReleaseExpiredHolds(m);
	e.row.occurred_at = OccurredAt(&r->occurred_at, m);

	initStringInfo(&why);
	(void) rules_take_tags();
	points = EarnPoints(m, amount, r->lines, e.row.channel, r->store, e.row.occurred_at, &amount, &why,
						m->has_challenges ? &facts : NULL);
	tags = rules_take_tags();
	e.row.kind = "earn";
	e.row.points = points;
	e.row.amount = NumericGetDatum(amount);
	e.row.details = why.len ? why.data : NULL;
	if (points > 0)
		d.debt = -PrepareLot(m, &e, points, 0, true);
	d.balance = points;
	d.earned = points;
	d.purchase_first = e.row.occurred_at;
	d.purchase_last = e.row.occurred_at;
	d.purchase_count = 1;
	d.purchase_days = PurchaseDaySeen(m, e.row.occurred_at) ? 0 : 1;
	d.purchase_amount = NumericGetDatum(amount);
	e.purchase_event = true;
	entry_id = InsertEntry(m, &e, &d);
	if (m->has_pool_share && points > 0)
		PoolShare(m, &e, entry_id, points);
	if (tags != NIL)
	{
		Datum		tv[3];
		Datum	   *elems = palloc(sizeof(Datum) * list_length(tags));
		ListCell   *lc;
		int			k = 0;

		foreach(lc, tags)
			elems[k++] = PointerGetDatum(lfirst(lc));
		tv[0] = Int64GetDatum(m->member_id);
		tv[1] = Int64GetDatum(m->program_id);
		tv[2] = PointerGetDatum(construct_array(elems, k, TEXTOID, -1, false, TYPALIGN_INT));
		ExecStmt(S_RULE_TAGS, tv, NULL, 0);
	}
	if (m->referral_pending)
	{
		Datum		rv[3];

		/* referral_purchase reads the account and may award points */
		FlushDeferred(m);
		rv[0] = Int64GetDatum(m->member_id);
		rv[1] = Int64GetDatum(entry_id);
		rv[2] = NumericGetDatum(amount);
		ExecStmt(S_REFERRAL, rv, NULL, 0);
		m->stale = true;
	}
	if (m->has_challenges)
	{
		ChallengeFact f = {0};
		ChallengeDone *done;
		int			n;

		f.w = m->w;
		f.member_id = m->member_id;
		f.program_id = m->program_id;
		f.rules_version = m->rules_version;
		f.time_zone = m->time_zone;
		f.tier_rank = m->tier_rank;
		f.segment = m->segment;
		f.kind = 'p';
		f.entry_id = entry_id;
		f.amount = amount;
		f.lines = r->lines;
		f.at = e.row.occurred_at;
		f.channel = e.row.channel;
		f.purchase = facts.valid ? &facts : NULL;
		f.new_tags = tags;
		n = challenges_move(&f, &done);
		if (n > 0)
		{
			/*
			 * a completion awards points: the account is written and read
			 * again
			 */
			FlushDeferred(m);
			challenges_complete(m->member_id, done, n, e.row.occurred_at);
			m->stale = true;
		}
	}
	TierAfterWrite(m, "earn");
	IdemStore(m, e.row.idem_key, "earn", hash, points, entry_id);
	res->points = points;
	res->entry_id = entry_id;
}

/*
 * A purchase: points by the program's rate and earning rules, purchase
 * statistics, the points.earned event, a waiting referral settled, the tier
 * looked at.  res->points: the points credited.
 */
void
ledger_earn(const EarnRequest *r, LedgerResult *res)
{
	Member		m;
	int64		hash;

	CheckPurchase(r);
	hash = EarnHash(r);
	if (BeginWrite(r->member_id, false, true, r->idempotency_key, "earn", hash, &m, res))
		return;
	EarnWrite(&m, r, hash, res);
	Finish(&m);
}

/*
 * Earns and reversals in bulk (the order trigger per statement, earn_batch):
 * one writer for the whole statement, and each member's consecutive calls
 * under one lock and one read of its account, which is updated once when
 * the bulk moves on to another member (or sooner, before anything that
 * reads it by SQL: the tier rules, a referral's settlement).  Every call
 * writes the rows, checks and keys the same call alone writes.
 */
struct LedgerBulk
{
	MemoryContext cxt;			/* the writer's and the member's */
	MemoryContext member_cxt;	/* what is read of the current member */
	StoreWriter *w;
	bool		loaded;			/* m is locked and read */
	Member		m;
	AccountDelta deferred;
	List	   *pool_moves;		/* PoolMove *, made when the bulk is flushed */
};

LedgerBulk *
ledger_bulk_begin(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "loyalty bulk earns",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	LedgerBulk *b = palloc0(sizeof(LedgerBulk));

	b->cxt = cxt;
	b->member_cxt = AllocSetContextCreate(cxt, "loyalty bulk member", ALLOCSET_SMALL_SIZES);
	b->w = store_begin();
	MemoryContextSwitchTo(old);
	return b;
}

/* Write the current member's deferred changes and let it go (SPI connected). */
static void
BulkRelease(LedgerBulk *b)
{
	if (b->loaded)
		FlushDeferred(&b->m);
	b->loaded = false;
}

/* Open SPI, and have the member locked and read (the bulk's current one, or anew). */
static Member *
BulkMember(LedgerBulk *b, int64 member_id)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	if (!b->loaded || b->m.stale || b->m.member_id != member_id)
	{
		MemoryContext old;

		BulkRelease(b);
		MemoryContextReset(b->member_cxt);
		old = MemoryContextSwitchTo(b->member_cxt);
		b->m.w = b->w;
		LockMember(member_id, &b->m, false);
		MemoryContextSwitchTo(old);
		memset(&b->deferred, 0, sizeof(b->deferred));
		b->m.deferred = &b->deferred;
		b->m.deferred_cxt = b->member_cxt;
		b->m.pool_queue = &b->pool_moves;
		b->m.pool_cxt = b->cxt;
		b->loaded = true;
	}
	return &b->m;
}

void
ledger_bulk_earn(LedgerBulk *b, const EarnRequest *r, LedgerResult *res)
{
	int64		hash;
	Member	   *m;

	CheckPurchase(r);
	CheckKey(r->idempotency_key);
	hash = EarnHash(r);
	m = BulkMember(b, r->member_id);
	if (!Replayed(m, r->idempotency_key, "earn", hash, true, res))
		EarnWrite(m, r, hash, res);
	SPI_finish();
}

/* A reversal in bulk (an order lowered, cancelled or deleted by a statement). */
void
ledger_bulk_reverse(LedgerBulk *b, const ReverseRequest *r, LedgerResult *res)
{
	int64		hash = ReverseHash(r);
	Member	   *m = BulkMember(b, r->member_id);

	if (!Replayed(m, r->idempotency_key, "reverse", hash, false, res))
		ReverseWrite(m, r, hash, res);
	SPI_finish();
}

/*
 * Write what is deferred, then the queued pool moves (pools after members,
 * in pool order); the next earn reads its member again.
 */
void
ledger_bulk_flush(LedgerBulk *b)
{
	ListCell   *lc;

	if (!b->loaded && b->pool_moves == NIL)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	BulkRelease(b);
	list_sort(b->pool_moves, ComparePoolMoves);
	foreach(lc, b->pool_moves)
		PoolMoveWrite(b->w, lfirst(lc));
	list_free_deep(b->pool_moves);
	b->pool_moves = NIL;
	SPI_finish();
}

/*
 * Write the current member's deferred changes and let it go, before SQL
 * writes its account (the order's coupon); pool moves stay queued.
 */
void
ledger_bulk_pause(LedgerBulk *b)
{
	if (!b->loaded)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	BulkRelease(b);
	SPI_finish();
}

void
ledger_bulk_end(LedgerBulk *b)
{
	ledger_bulk_flush(b);
	store_end(b->w);
	MemoryContextDelete(b->cxt);
}


/*
 * The points a purchase would earn now and why, writing nothing; the jsonb
 * lives in the caller's memory context.
 */
Jsonb *
ledger_preview_earn(const EarnRequest *r)
{
	Numeric		amount = r->amount;
	Member		m;
	TimestampTz at;
	StringInfoData why;
	Datum		result;

	CheckPurchase(r);
	Connect(&m);
	LoadMember(false, r->member_id, &m, false);
	at = OccurredAt(&r->occurred_at, &m);
	initStringInfo(&why);
	(void) EarnPoints(&m, amount, r->lines, r->channel, r->store, at, &amount, &why, NULL);
	if (why.len == 0)
	{
		/* no rules and no lines: the base rate alone */
		Points		p = points_from_numeric_rounded(DirectFunctionCall2(numeric_mul, NumericGetDatum(amount),
																		m.earn_rate), m.rounding);

		appendStringInfo(&why, "{\"earn_base\": %s, \"earn_rate\": %s, \"rounding\": \"%s\", "
						 "\"bonus\": 0, \"points\": " INT64_FORMAT ", \"rules\": []}",
						 DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(amount))),
						 DatumGetCString(DirectFunctionCall1(numeric_out, m.earn_rate)),
						 m.rounding_name, p);
	}
	/* why.data lives in SPI's context, which SPI_finish frees */
	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(why.data));
	result = SPI_datumTransfer(result, false, -1);
	Finish(&m);
	return DatumGetJsonbP(result);
}

/*
 * Shared body of award (non-purchase credit) and positive adjust: one
 * credit entry and its lot.  Returns the entry id.
 */
static int64
CreditEntry(Member *m, const char *kind, Points points, Entry *e, TimestampTz expires_at)
{
	AccountDelta d = {0};

	e->row.kind = kind;
	e->row.points = points;
	d.debt = -PrepareLot(m, e, points, expires_at, false);
	d.balance = points;
	d.earned = points;
	return InsertEntry(m, e, &d);
}

/* Shared body of redeem and negative adjust: one debit entry, FEFO. */
static int64
DebitEntry(Member *m, const char *kind, Points points, Entry *e, bool counts_as_redeemed)
{
	AccountDelta d = {0};
	Points		debt = PrecheckDebit(m, points);
	int64		entry_id;

	e->row.kind = kind;
	e->row.points = -points;
	d.balance = -points;
	d.redeemed = counts_as_redeemed ? points : 0;
	entry_id = InsertEntry(m, e, &d);
	DebitLots(m, entry_id, points, debt);
	return entry_id;
}

/*
 * A credit for a non-purchase reason (sign-up, review, goodwill...),
 * spendable at once.  res->entry_id: its entry.
 */
void
ledger_award(const AwardRequest *r, LedgerResult *res)
{
	Member		m;
	Entry		e = {0};
	int64		hash = 0;
	int64		entry_id;
	TimestampTz expires_at = r->expires_at.given ? r->expires_at.value : 0;

	CheckPositivePoints(r->points, "points");
	if (r->reason == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reason must not be null")));
	e.row.reason = r->reason;
	e.row.channel = r->channel;
	e.row.reference = r->reference;
	e.row.idem_key = r->idempotency_key;
	if (e.row.idem_key)
	{
		StringInfoData b;

		HashStart(&b, "award");
		HashInt(&b, false, r->points);
		HashText(&b, r->reason);
		HashText(&b, r->channel);
		HashText(&b, r->reference);
		HashTime(&b, &r->occurred_at);
		HashTime(&b, &r->expires_at);
		hash = HashEnd(&b);
	}

	if (BeginWrite(r->member_id, false, true, e.row.idem_key, "award", hash, &m, res))
		return;
	ReleaseExpiredHolds(&m);
	e.row.occurred_at = OccurredAt(&r->occurred_at, &m);
	if (r->expires_at.given && (TIMESTAMP_NOT_FINITE(expires_at) || expires_at <= m.now))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must lie in the future")));
	entry_id = CreditEntry(&m, "award", r->points, &e, expires_at);
	IdemStore(&m, e.row.idem_key, "award", hash, entry_id, entry_id);
	Finish(&m);
	res->points = r->points;
	res->entry_id = entry_id;
}

/*
 * Spend points at once, first to expire first.  res->entry_id: its entry.
 */
void
ledger_redeem(const RedeemRequest *r, LedgerResult *res)
{
	Member		m;
	Entry		e = {0};
	int64		hash = 0;
	int64		entry_id;

	CheckPositivePoints(r->points, "points");
	e.row.channel = r->channel;
	e.row.reference = r->reference;
	e.row.idem_key = r->idempotency_key;
	if (e.row.idem_key)
	{
		StringInfoData b;

		HashStart(&b, "redeem");
		HashInt(&b, false, r->points);
		HashText(&b, r->channel);
		HashText(&b, r->reference);
		HashTime(&b, &r->occurred_at);
		hash = HashEnd(&b);
	}

	if (BeginWrite(r->member_id, false, true, e.row.idem_key, "redeem", hash, &m, res))
		return;
	ReleaseExpiredHolds(&m);
	e.row.occurred_at = OccurredAt(&r->occurred_at, &m);
	entry_id = DebitEntry(&m, "redeem", r->points, &e, true);
	IdemStore(&m, e.row.idem_key, "redeem", hash, entry_id, entry_id);
	Finish(&m);
	res->points = r->points;
	res->entry_id = entry_id;
}

/*
 * Reserve points (taken from lots, first to expire first) until captured,
 * released or expired.  res->hold_id: the hold.
 */
void
ledger_hold(const HoldRequest *r, LedgerResult *res)
{
	Member		m;
	Entry		e = {0};
	AccountDelta d = {0};
	int64		hash = 0;
	int64		hold_id;
	int64		entry_id;
	Points		debt;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	CheckPositivePoints(r->points, "points");
	if (r->ttl == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ttl must not be null")));
	e.row.channel = r->channel;
	e.row.reference = r->reference;
	e.row.idem_key = r->idempotency_key;
	if (e.row.idem_key)
	{
		StringInfoData b;

		HashStart(&b, "hold");
		HashInt(&b, false, r->points);
		HashInterval(&b, r->ttl);
		HashText(&b, r->channel);
		HashText(&b, r->reference);
		hash = HashEnd(&b);
	}

	if (BeginWrite(r->member_id, false, true, e.row.idem_key, "hold", hash, &m, res))
		return;
	{
		TimestampTz until = AddInterval(m.now, r->ttl);

		if (until <= m.now || until > AddInterval(m.now, &m.max_hold_ttl))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("hold ttl must be positive and at most the program's max_hold_ttl"),
					 errhint("Hold for a shorter time, or raise loyalty.programs.max_hold_ttl.")));
	}
	ReleaseExpiredHolds(&m);
	debt = PrecheckDebit(&m, r->points);

	e.row.kind = "hold";
	e.row.points = -r->points;
	e.row.held_delta = r->points;
	e.row.occurred_at = m.now;
	d.balance = -r->points;
	d.held = r->points;
	entry_id = InsertEntry(&m, &e, &d);
	DebitLots(&m, entry_id, r->points, debt);

	values[0] = Int64GetDatum(m.member_id);
	values[1] = Int64GetDatum(entry_id);
	values[2] = Int64GetDatum(r->points);
	values[3] = PointerGetDatum(e.row.channel);
	nulls[3] = e.row.channel ? ' ' : 'n';
	values[4] = PointerGetDatum(e.row.reference);
	nulls[4] = e.row.reference ? ' ' : 'n';
	values[5] = IntervalPGetDatum(r->ttl);
	ExecStmt(S_HOLD_INS, values, nulls, 0);
	hold_id = ColInt8(0, 1);
	IdemStore(&m, e.row.idem_key, "hold", hash, hold_id, entry_id);
	Finish(&m);
	res->points = r->points;
	res->hold_id = hold_id;
	res->entry_id = entry_id;
}

/* Find a hold's member (holds are addressed by id alone) or raise P0002. */
static int64
HoldMember(int64 hold_id)
{
	Datum		values[1];

	values[0] = Int64GetDatum(hold_id);
	ExecStmt(S_HOLD_MEMBER, values, NULL, 1);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("hold %lld does not exist", (long long) hold_id)));
	return ColInt8(0, 1);
}

/*
 * On the locked member: whether the call is a replay of a keyed call (res
 * then holds the first result), else that the member may be written.  The
 * key first: a call acknowledged before the member was suspended, closed or
 * merged away replays as it did then.
 */
static bool
Replayed(Member *m, text *key, const char *op, int64 hash, bool need_active, LedgerResult *res)
{
	memset(res, 0, sizeof(*res));
	if (IdemLookup(m, key, op, hash, res))
		return true;
	if (need_active)
		RequireActive(m);
	return false;
}

/*
 * The prologue of every writer: open SPI, lock the member (given, or found
 * through a hold when by_hold), and look the idempotency key up.  Returns
 * true (with SPI closed and the first result in *replayed) when the call is
 * a replay, which the caller returns as is.
 */
static bool
BeginWrite(int64 id, bool by_hold, bool need_active, text *key, const char *op, int64 hash,
		   Member *m, LedgerResult *res)
{
	CheckKey(key);
	Connect(m);
	LockMember(by_hold ? HoldMember(id) : id, m, false);
	if (Replayed(m, key, op, hash, need_active, res))
	{
		Finish(m);
		return true;
	}
	return false;
}

/*
 * Load an active hold of a locked member; raise LY003 when it is resolved
 * or expired.  Returns the hold's entry id and its points.
 */
static void
ActiveHold(Member *m, int64 hold_id, int64 *hold_entry, Points *points)
{
	Datum		values[2];
	bool		isnull;
	char	   *status;

	values[0] = Int64GetDatum(m->member_id);
	values[1] = Int64GetDatum(hold_id);
	ExecStmt(S_HOLD_GET, values, NULL, 1);
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	*hold_entry = ColInt8(0, 1);
	*points = ColInt8(0, 2);
	if (strcmp(status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_HOLD_NOT_ACTIVE),
				 errmsg("hold %lld is already %s", (long long) hold_id, status),
				 errdetail("A hold resolves exactly once.")));
	if (DatumGetBool(Col(0, 4, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_HOLD_NOT_ACTIVE),
				 errmsg("hold %lld has expired", (long long) hold_id),
				 errdetail("Expired holds give their points back to the member."),
				 errhint("Place a new hold.")));
}

/*
 * Turn a hold into a redemption of its points (or of fewer; the rest goes
 * back to the lots).  res->entry_id: the capture's entry.
 */
void
ledger_capture(const CaptureRequest *r, LedgerResult *res)
{
	Member		m;
	Entry		e = {0};
	AccountDelta d = {0};
	int64		hash = 0;
	int64		hold_entry;
	Points		held;
	Points		take;
	int64		entry_id;
	text	   *key = r->idempotency_key;

	if (r->has_points)
		CheckPositivePoints(r->points, "points");
	if (key)
	{
		StringInfoData b;

		HashStart(&b, "capture");
		HashInt(&b, false, r->hold_id);
		HashInt(&b, !r->has_points, r->points);
		hash = HashEnd(&b);
	}

	if (BeginWrite(r->hold_id, true, false, key, "capture", hash, &m, res))
		return;
	ActiveHold(&m, r->hold_id, &hold_entry, &held);
	take = r->has_points ? r->points : held;
	if (take > held)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot capture %lld points from hold %lld of %lld points",
						(long long) take, (long long) r->hold_id, (long long) held),
				 errhint("Capture at most the held points.")));

	e.row.kind = "capture";
	e.row.points = 0;
	e.row.held_delta = -take;
	e.row.source_entry = hold_entry;
	e.row.hold_id = r->hold_id;
	e.row.idem_key = key;
	d.held = -take;
	d.redeemed = take;
	entry_id = InsertEntry(&m, &e, &d);
	if (take < held)
		ReleaseHoldPoints(&m, r->hold_id, hold_entry, held - take, NULL, "rest of a partial capture");
	ResolveHold(&m, r->hold_id, "captured", take, entry_id);
	IdemStore(&m, key, "capture", hash, entry_id, entry_id);
	Finish(&m);
	res->points = take;
	res->entry_id = entry_id;
}

/*
 * Cancel a hold, giving its points back to the lots they came from.
 * res->points: the points released.
 */
void
ledger_release(const ReleaseRequest *r, LedgerResult *res)
{
	Member		m;
	int64		hash = 0;
	int64		hold_entry;
	Points		held;
	int64		entry_id;
	text	   *key = r->idempotency_key;

	if (key)
	{
		StringInfoData b;

		HashStart(&b, "release");
		HashInt(&b, false, r->hold_id);
		hash = HashEnd(&b);
	}

	if (BeginWrite(r->hold_id, true, false, key, "release", hash, &m, res))
		return;
	ActiveHold(&m, r->hold_id, &hold_entry, &held);
	entry_id = ReleaseHoldPoints(&m, r->hold_id, hold_entry, held, key, NULL);
	ResolveHold(&m, r->hold_id, "released", 0, entry_id);
	IdemStore(&m, key, "release", hash, held, entry_id);
	Finish(&m);
	res->points = held;
	res->entry_id = entry_id;
}

/*
 * The refund policy, written once: a take-back of `want` points, `own` of
 * which its own lots give (`own_spendable` of those are spendable now), then
 * the member's other spendable points, and what cannot be found is forgiven
 * or becomes debt by the program's policy.  Writes the reverse entry `e`
 * (its details say where the points came from: `own_key` names the own lots;
 * `extra`, if any, is added) and returns its id; *others: what the caller
 * must then consume from the other lots.  `credit`: the take-back undoes a
 * credit, whose earnings it lowers.
 */
static int64
TakeBackEntry(Member *m, Entry *e, Points want, Points own, Points own_spendable, const char *own_key,
			  const char *extra, bool credit, Points *others)
{
	AccountDelta d = {0};
	Points		others_avail;
	Points		shortfall;
	Points		debited;
	StringInfoData details;

	/* other lots are read only when the own lots cannot cover it all */
	others_avail = want > own ? Available(m, m->now) - own_spendable : 0;
	*others = Min(want - own, Max(others_avail, 0));
	shortfall = want - own - *others;
	debited = own + *others + (m->refund_debt ? shortfall : 0);

	initStringInfo(&details);
	appendStringInfo(&details, "{\"requested\": %lld, \"%s\": %lld, \"from_other_lots\": %lld, "
					 "\"shortfall\": %lld, \"policy\": \"%s\"%s}",
					 (long long) want, own_key, (long long) own, (long long) *others, (long long) shortfall,
					 m->refund_debt ? "debt" : "forgive", extra ? extra : "");
	e->row.kind = "reverse";
	e->row.points = -debited;
	e->row.details = details.data;
	d.balance = -debited;
	d.debt = m->refund_debt ? shortfall : 0;
	d.earned = credit ? -want : 0;
	return InsertEntry(m, e, &d);
}

/*
 * Take back `want` points credited by entry `source` (its lot `lot_id`):
 * first what is left of that lot, then by the refund policy.
 */
static Points
ReverseCredit(Member *m, Entry *e, int64 lot_member, int64 lot_id, Points lot_remaining,
			  bool lot_spendable, Points want, Datum amount, int64 *entry_out)
{
	Points		own = Min(lot_remaining, want);
	Points		others;
	int64		entry_id;
	char	   *extra = NULL;

	/* the credit was the merged-away member's: its lot stays there */
	if (lot_member != m->member_id)
		extra = psprintf(", \"source_member\": %lld", (long long) lot_member);
	entry_id = TakeBackEntry(m, e, want, own, lot_spendable ? own : 0, "from_source_lot", extra, true, &others);
	store_take_from_lot(m->w, lot_member, entry_id, lot_id, own, want, amount);
	if (others > 0)
		ConsumeLotsExact(m, entry_id, others);
	*entry_out = entry_id;
	return want;
}

/* Make one pool move: the pool is locked after the member whose write it follows. */
static void
PoolMoveWrite(StoreWriter *w, const PoolMove *mv)
{
	Member		p;
	Entry		e = {0};

	memset(&p, 0, sizeof(p));
	p.w = w;
	LockMember(mv->pool, &p, false);
	if (mv->credit)
	{
		AccountDelta d = {0};
		Datum		values[7];
		int64		entry_id;

		/* the pool closed (its household dissolved) since it was looked up */
		if (strcmp(p.status, "pool") != 0)
			return;
		e.row.kind = "household_share";
		e.row.points = mv->points;
		e.row.channel = mv->channel;
		e.row.reference = mv->reference;
		e.row.source_entry = mv->earn_entry;
		e.row.occurred_at = mv->occurred_at;
		e.row.details = psprintf("{\"household\": %lld, \"member\": %lld}", (long long) mv->household,
								 (long long) mv->earner);
		/* it vests and expires as the purchase's own points do */
		d.debt = -PrepareLot(&p, &e, mv->points, mv->expires_at, true);
		d.balance = mv->points;
		d.earned = mv->points;
		entry_id = InsertEntry(&p, &e, &d);
		values[0] = Int64GetDatum(mv->earner);
		values[1] = Int64GetDatum(mv->earn_entry);
		values[2] = Int64GetDatum(p.program_id);
		values[3] = Int64GetDatum(mv->household);
		values[4] = Int64GetDatum(p.member_id);
		values[5] = Int64GetDatum(entry_id);
		values[6] = Int64GetDatum(mv->points);
		ExecStmt(S_SHARE_INS, values, NULL, 0);
	}
	else
	{
		Datum		values[3];
		bool		isnull;
		int64		lot_id;
		Points		remaining,
					want;
		bool		spendable;
		int64		entry_id;

		values[0] = Int64GetDatum(p.member_id);
		values[1] = Int64GetDatum(mv->share_entry);
		values[2] = TimestampTzGetDatum(p.now);
		ExecStmt(S_LOT_OF_ENTRY, values, NULL, 1);
		if (SPI_processed != 1)
			elog(ERROR, "loyalty: household share %lld has no lot", (long long) mv->share_entry);
		lot_id = ColInt8(0, 1);
		remaining = ColInt8(0, 3);
		want = mv->points - ColInt8(0, 4);
		spendable = DatumGetBool(Col(0, 6, &isnull));
		if (want <= 0)
			return;
		/* a closed pool has nobody left to owe what was spent */
		if (strcmp(p.status, "pool") != 0)
			p.refund_debt = false;
		e.row.reason = mv->reason;
		e.row.reference = mv->reference;
		e.row.source_entry = mv->share_entry;
		e.row.occurred_at = p.now;
		(void) ReverseCredit(&p, &e, p.member_id, lot_id, remaining, spendable, want, 0, &entry_id);
		values[0] = Int64GetDatum(mv->earner);
		values[1] = Int64GetDatum(mv->earn_entry);
		values[2] = Int64GetDatum(mv->points);
		ExecStmt(S_SHARE_REVERSED, values, NULL, 0);
	}
}

/* Make a pool move now, or queue it for the end of the bulk. */
static void
PoolQueueOrWrite(Member *m, const PoolMove *mv)
{
	MemoryContext old;
	PoolMove   *q;

	if (m->pool_queue == NULL)
	{
		PoolMoveWrite(m->w, mv);
		return;
	}
	old = MemoryContextSwitchTo(m->pool_cxt);
	q = palloc(sizeof(PoolMove));
	*q = *mv;
	q->channel = mv->channel ? DatumGetTextPCopy(PointerGetDatum(mv->channel)) : NULL;
	q->reference = mv->reference ? DatumGetTextPCopy(PointerGetDatum(mv->reference)) : NULL;
	q->reason = mv->reason ? DatumGetTextPCopy(PointerGetDatum(mv->reason)) : NULL;
	q->seq = list_length(*m->pool_queue);
	*m->pool_queue = lappend(*m->pool_queue, q);
	MemoryContextSwitchTo(old);
}

/*
 * The share of an earn for the earner's household pool, when it is in a
 * household that has one (the program's share of the points, rounded by its
 * rounding).
 */
static void
PoolShare(Member *m, Entry *earn, int64 entry_id, Points points)
{
	PoolMove	mv = {0};
	Datum		values[1];

	values[0] = Int64GetDatum(m->member_id);
	ExecStmt(S_HOUSEHOLD_POOL, values, NULL, 1);
	if (SPI_processed != 1)
		return;
	mv.household = ColInt8(0, 1);
	mv.pool = ColInt8(0, 2);
	mv.points = points_from_numeric_rounded(DirectFunctionCall2(numeric_mul,
																NumericGetDatum(int64_to_numeric(points)),
																m->pool_share), m->rounding);
	if (mv.points <= 0)
		return;
	mv.credit = true;
	mv.earner = m->member_id;
	mv.earn_entry = entry_id;
	mv.occurred_at = earn->row.occurred_at;
	mv.expires_at = earn->lot_expires_at;
	mv.channel = earn->row.channel;
	mv.reference = earn->row.reference;
	PoolQueueOrWrite(m, &mv);
}

/*
 * After `reversed` of an earn's `original` points were taken back in all:
 * its pool share is taken back in the same proportion (rounded down; all of
 * it with the whole purchase).
 */
static void
PoolTakeBack(Member *m, int64 earn_entry, Points original, Points reversed, text *reason, text *reference)
{
	PoolMove	mv = {0};
	Datum		values[2];
	Points		share;

	values[0] = Int64GetDatum(m->member_id);
	values[1] = Int64GetDatum(earn_entry);
	ExecStmt(S_SHARE_GET, values, NULL, 1);
	if (SPI_processed != 1)
		return;
	mv.pool = ColInt8(0, 1);
	mv.share_entry = ColInt8(0, 2);
	share = ColInt8(0, 3);
	if (reversed >= original)
		mv.points = share;
	else
	{
		Datum		product = DirectFunctionCall2(numeric_mul, NumericGetDatum(int64_to_numeric(share)),
												  NumericGetDatum(int64_to_numeric(reversed)));

		/* an exact integer division: no rounding of a quotient first */
		mv.points = points_from_numeric_rounded(DirectFunctionCall2(numeric_div_trunc, product,
																	NumericGetDatum(int64_to_numeric(original))),
												POINTS_ROUND_FLOOR);
	}
	mv.earner = m->member_id;
	mv.earn_entry = earn_entry;
	mv.reason = reason;
	mv.reference = reference;
	PoolQueueOrWrite(m, &mv);
}

static int
ComparePoolMoves(const ListCell *a, const ListCell *b)
{
	const PoolMove *x = lfirst(a);
	const PoolMove *y = lfirst(b);

	if (x->pool != y->pool)
		return x->pool < y->pool ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

/* A reversal's arguments; its idempotency fingerprint (0 without a key). */
static int64
ReverseHash(const ReverseRequest *r)
{
	StringInfoData b;

	if (r->has_points && r->amount)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("give either points or amount to reverse, not both")));
	if (r->has_points)
		CheckPositivePoints(r->points, "points");
	if (r->amount)
		CheckAmount(r->amount, "amount", false);
	CheckKey(r->idempotency_key);
	if (r->idempotency_key == NULL)
		return 0;
	HashStart(&b, "reverse");
	HashInt(&b, false, r->entry_id);
	HashInt(&b, !r->has_points, r->points);
	HashNumeric(&b, r->amount);
	HashText(&b, r->reference);
	HashText(&b, r->reason);
	return HashEnd(&b);
}

/* A reversal's writes, on the locked member (not a replay). */
static void
ReverseWrite(Member *m, const ReverseRequest *r, int64 hash, LedgerResult *res)
{
	int64		member_id = r->member_id;
	int64		source = r->entry_id;
	Entry		e = {0};
	int64		result;
	char	   *kind;
	Points		src_points;
	Datum		src_amount = 0;
	bool		isnull;
	Points		want = r->has_points ? r->points : 0;
	Numeric		amount = r->amount;
	int64		src_source;
	int64		rev_entry = 0;
	int64		survivor;
	Member		s;
	Member	   *on = m;			/* the member whose balance the reversal moves */
	bool		purchase_refund = false;	/* a refund of an earn by amount */
	bool		refund_full = false;	/* ... that leaves none of it */
	Datum		refunded_total = 0; /* ... the amount refunded so far */

	e.row.reference = r->reference;
	e.row.reason = r->reason;
	e.row.idem_key = r->idempotency_key;
	ReleaseExpiredHolds(m);

	{
		Datum		values[2];

		values[0] = Int64GetDatum(member_id);
		values[1] = Int64GetDatum(source);
		ExecStmt(S_ENTRY_GET, values, NULL, 1);
		if (SPI_processed != 1)
		{
			/* an entry older than the archive horizon is gone: say so */
			char	   *horizon = NULL;

			if (SPI_execute("SELECT archived_before::pg_catalog.text FROM loyalty.ledger_partitioning"
							" WHERE archived_before IS NOT NULL", true, 1) == SPI_OK_SELECT &&
				SPI_processed == 1)
				horizon = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			/* cppcheck-suppress knownConditionTrueFalse */
			if (horizon)
				ereport(ERROR,
						(errcode(ERRCODE_NO_DATA_FOUND),
						 errmsg("ledger entry %lld of member %lld does not exist or was archived",
								(long long) source, (long long) member_id),
						 errdetail("Entries recorded before %s were archived by loyalty.archive_ledger().", horizon),
						 errhint("An archived entry can no longer be reversed; correct the balance with loyalty.adjust().")));
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("ledger entry %lld of member %lld does not exist",
							(long long) source, (long long) member_id)));
		}
		kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		src_points = ColInt8(0, 2);
		src_source = ColInt8(0, 4);
		src_amount = Col(0, 3, &isnull);
		if (isnull)
			src_amount = 0;
		else
			src_amount = SPI_datumTransfer(src_amount, false, -1);
	}
	e.row.source_entry = source;
	e.row.occurred_at = m->now;

	/*
	 * A merged-away member's points live with its survivor: the reversal
	 * moves the survivor's balance, and the source's lot and allocations
	 * (which stay with the absorbed member) record it.  The survivor is
	 * locked after the absorbed member; only a merge of the closed member
	 * itself, which fails anyway, locks them the other way.
	 */
	survivor = strcmp(m->status, "closed") == 0 ? MergedInto(member_id) : 0;
	while (survivor != 0)
	{
		int64		next;

		memset(&s, 0, sizeof(s));
		s.w = m->w;
		LockMember(survivor, &s, false);
		/* merged again before the lock was ours: follow */
		next = MergedInto(survivor);
		if (next == 0)
		{
			on = &s;
			ReleaseExpiredHolds(&s);
			/* the key is the absorbed member's (keys are per member) */
			e.row.idem_key = NULL;
			break;
		}
		survivor = next;
	}

	if (src_points > 0 && (strcmp(kind, "earn") == 0 || strcmp(kind, "award") == 0 ||
						   strcmp(kind, "adjust") == 0))
	{
		/* a credit: take points back from its lot */
		Datum		values[3];
		int64		lot_id;
		Points		original,
					remaining,
					reversed;
		Datum		rev_amount;
		bool		spendable;

		values[0] = Int64GetDatum(member_id);
		values[1] = Int64GetDatum(source);
		values[2] = TimestampTzGetDatum(m->now);
		ExecStmt(S_LOT_OF_ENTRY, values, NULL, 1);
		if (SPI_processed != 1)
			elog(ERROR, "loyalty: credit entry %lld has no lot", (long long) source);
		lot_id = ColInt8(0, 1);
		original = ColInt8(0, 2);
		remaining = ColInt8(0, 3);
		reversed = ColInt8(0, 4);
		rev_amount = SPI_datumTransfer(Col(0, 5, &isnull), false, -1);
		spendable = DatumGetBool(Col(0, 6, &isnull));

		if (amount)
		{
			Datum		total_amount;
			Datum		target;
			Points		target_points;

			if (!src_amount)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("entry %lld has no purchase amount to refund against", (long long) source),
						 errhint("Reverse it by points instead.")));
			total_amount = DirectFunctionCall2(numeric_add, rev_amount, NumericGetDatum(amount));
			if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, total_amount, src_amount)) > 0)
				ereport(ERROR,
						(errcode(ERRCODE_LOYALTY_OVER_REVERSAL),
						 errmsg("refund exceeds the purchase: %s of %s already refunded, %s more requested",
								DatumGetCString(DirectFunctionCall1(numeric_out, rev_amount)),
								DatumGetCString(DirectFunctionCall1(numeric_out, src_amount)),
								DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(amount))))));
			/* cumulative, so partial refunds add up to exactly the original */
			target = DirectFunctionCall2(numeric_div,
										 DirectFunctionCall2(numeric_mul,
															 NumericGetDatum(int64_to_numeric(original)),
															 total_amount),
										 src_amount);
			target_points = points_from_numeric_rounded(target, m->rounding);
			if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, total_amount, src_amount)) == 0)
				target_points = original;
			want = Max(target_points - reversed, 0);
		}
		else if (want == 0)
			want = original - reversed;

		if (want > original - reversed)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_OVER_REVERSAL),
					 errmsg("cannot reverse %lld points of entry %lld: only %lld of its %lld are left to reverse",
							(long long) want, (long long) source, (long long) (original - reversed),
							(long long) original),
					 errdetail("Reversals of an entry never exceed it.")));
		if (want == 0 && !amount)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_OVER_REVERSAL),
					 errmsg("entry %lld is already fully reversed", (long long) source)));
		if (amount)
			e.row.amount = NumericGetDatum(amount);
		if (on != m)
		{
			/* the merge moved the lot's remainder to the survivor */
			remaining = 0;
			spendable = false;
		}
		if (want > 0 || amount)
			result = ReverseCredit(on, &e, m->member_id, lot_id, remaining, spendable, want,
								   amount ? NumericGetDatum(amount) : 0, &rev_entry);
		else
			result = 0;
		/* the household pool gives back its share of what is taken back */
		if (want > 0 && m->has_pool_share && strcmp(kind, "earn") == 0)
			PoolTakeBack(m, source, original, reversed + want, r->reason, r->reference);
		if (amount && strcmp(kind, "earn") == 0)
		{
			AccountDelta d = {0};

			/* a refund lowers the purchase statistics too */
			purchase_refund = true;
			refunded_total = DirectFunctionCall2(numeric_add, rev_amount, NumericGetDatum(amount));
			refund_full = DatumGetInt32(DirectFunctionCall2(numeric_cmp, refunded_total, src_amount)) == 0;
			d.purchase_amount = DirectFunctionCall1(numeric_uminus, NumericGetDatum(amount));
			d.purchase_count = refund_full ? -1 : 0;
			UpdateAccount(on, &d);
		}
	}
	else if (src_points <= 0 && (strcmp(kind, "redeem") == 0 || strcmp(kind, "capture") == 0 ||
								 strcmp(kind, "adjust") == 0))
	{
		/* a debit: give points back to the lots it used */
		AccountDelta d = {0};
		int64		alloc_source = source;
		Points		open;

		if (amount)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a %s entry is reversed by points, not by amount", kind)));
		/* a capture's points left the lots with its hold entry */
		if (strcmp(kind, "capture") == 0)
			alloc_source = src_source;
		open = OpenAllocations(m, alloc_source);
		if (want == 0)
			want = open;
		if (want == 0 || want > open)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_OVER_REVERSAL),
					 errmsg("cannot give back %lld points of entry %lld: %lld are left to give back",
							(long long) want, (long long) source, (long long) open),
					 errdetail("Reversals of an entry never exceed it.")));
		e.row.kind = "reverse";
		e.row.points = want;
		d.balance = want;
		d.redeemed = strcmp(kind, "adjust") == 0 ? 0 : -want;
		if (on != m)
			e.row.details = psprintf("{\"source_member\": %lld}", (long long) m->member_id);
		rev_entry = InsertEntry(on, &e, &d);
		if (on != m)
			ReturnToSurvivor(m, on, alloc_source, want, rev_entry);
		else
			ReturnToLots(m, alloc_source, want);
		result = want;
	}
	else if (src_points == 0 && strcmp(kind, "earn") == 0)
		result = 0;				/* a purchase that earned nothing: nothing to
								 * take back */
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a %s entry cannot be reversed", kind),
				 errhint("Reverse earn, award, redeem, capture and adjust entries; release holds with loyalty.release().")));

	/*
	 * A refund of a purchase takes back the progress it made, from the member
	 * whose progress it is now (a merge carried it to the survivor).
	 */
	if (purchase_refund && on->has_challenges)
	{
		Datum		cv[3];

		cv[0] = Int64GetDatum(on->member_id);
		cv[1] = Int64GetDatum(source);
		/* the share of the purchase still standing */
		cv[2] = refund_full ? NumericGetDatum(int64_to_numeric(0)) :
			DirectFunctionCall2(numeric_sub, NumericGetDatum(int64_to_numeric(1)),
								DirectFunctionCall2(numeric_div, refunded_total, src_amount));
		ChallengesRefund(on, cv);
	}
	if (src_points > 0)
		TierAfterWrite(on, "refund");
	IdemStore(m, r->idempotency_key, "reverse", hash, result, rev_entry);
	res->points = result;
	res->entry_id = rev_entry;
}

/*
 * Undo an entry fully or in part.  A credit (earn, award, positive adjust)
 * is taken back, by points or in proportion to a refunded amount; a debit
 * (redeem, capture, negative adjust) is given back to the lots it used.
 * Reversals never exceed their source.  res->points: the points reversed;
 * res->entry_id: the reversal's entry.
 */
void
ledger_reverse(const ReverseRequest *r, LedgerResult *res)
{
	Member		m;
	int64		hash = ReverseHash(r);

	if (BeginWrite(r->member_id, false, false, r->idempotency_key, "reverse", hash, &m, res))
		return;
	ReverseWrite(&m, r, hash, res);
	Finish(&m);
}

/*
 * Whether the schema has coupons (a library newer than the installed
 * extension script runs on it until ALTER EXTENSION ... UPDATE).
 */
static bool
CouponsInstalled(void)
{
	return OidIsValid(get_relname_relid("coupon_redemptions", get_namespace_oid("loyalty", false)));
}

/*
 * Whose purchase a refund names: the member's own, or, when it has none
 * under the reference, that of a member merged into it (a customer who
 * merged two accounts quotes the order, not the account).  Found before any
 * lock, so that the absorbed member is locked before its survivor, as every
 * reversal of an absorbed member's entry locks them.  Not on Citus, where
 * the members merged into one live on every shard.
 */
static int64
PurchaseOwner(int64 member_id, text *reference)
{
	Datum		values[2];
	int64		owner = member_id;

	if (loyalty_distributed())
		return member_id;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	values[0] = Int64GetDatum(member_id);
	values[1] = PointerGetDatum(reference);
	ExecStmt(S_PURCHASE_BY_REF, values, NULL, 1);
	if (SPI_processed == 0)
	{
		ExecStmt(S_ABSORBED_PURCHASE, values, NULL, 2);
		if (SPI_processed > 1)
			ereport(ERROR,
					(errcode(ERRCODE_CARDINALITY_VIOLATION),
					 errmsg("more than one member merged into member %lld has a purchase with reference \"%s\"",
							(long long) member_id, text_to_cstring(reference)),
					 errhint("Refund it with the member it was earned by, or reverse its entry with loyalty.reverse().")));
		if (SPI_processed == 1)
			owner = ColInt8(0, 1);
	}
	SPI_finish();
	return owner;
}

/*
 * Refund a purchase known only by its reference (the order): all that is
 * left of it, or `amount` of it, taking back points in proportion, as
 * ledger_reverse does by amount.  The key is the refund's own, so a replay
 * of "refund the rest" replays rather than finding nothing left.
 * res->points: the points taken back; res->entry_id: the reversal's entry.
 */
void
ledger_refund(const RefundRequest *r, LedgerResult *res)
{
	Member		m;
	int64		hash = 0;
	int64		owner;
	int64		entry_id;
	Numeric		standing;
	Datum		standing_datum;
	ReverseRequest rr = {0};
	LedgerResult rres;
	Datum		values[2];
	bool		isnull;

	if (r->reference == NULL || VARSIZE_ANY_EXHDR(r->reference) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a refund needs the purchase's reference")));
	if (r->amount)
		CheckAmount(r->amount, "amount", false);
	if (r->idempotency_key)
	{
		StringInfoData b;

		HashStart(&b, "refund");
		HashText(&b, r->reference);
		HashNumeric(&b, r->amount);
		HashText(&b, r->reason);
		hash = HashEnd(&b);
	}
	owner = PurchaseOwner(r->member_id, r->reference);
	if (BeginWrite(owner, false, false, r->idempotency_key, "refund", hash, &m, res))
		return;

	values[0] = Int64GetDatum(m.member_id);
	values[1] = PointerGetDatum(r->reference);
	ExecStmt(S_PURCHASE_BY_REF, values, NULL, 2);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %lld has no purchase with reference \"%s\"",
						(long long) m.member_id, text_to_cstring(r->reference)),
				 errhint("Refund by the reference the purchase was earned with, or reverse its entry with loyalty.reverse().")));
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("member %lld has more than one purchase with reference \"%s\"",
						(long long) m.member_id, text_to_cstring(r->reference)),
				 errhint("Reverse the one meant by its entry id with loyalty.reverse().")));
	entry_id = ColInt8(0, 1);
	standing_datum = Col(0, 2, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the purchase with reference \"%s\" has no amount to refund", text_to_cstring(r->reference))));
	/* detoasted, then copied out of SPI's memory, which Finish frees */
	standing = DatumGetNumeric(SPI_datumTransfer(NumericGetDatum(DatumGetNumeric(standing_datum)), false, -1));
	if (r->amount == NULL &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(standing),
										  NumericGetDatum(int64_to_numeric(0)))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OVER_REVERSAL),
				 errmsg("the purchase with reference \"%s\" is already fully refunded",
						text_to_cstring(r->reference))));
	Finish(&m);

	/* the reversal itself, under the lock already held */
	rr.member_id = owner;
	rr.entry_id = entry_id;
	rr.amount = r->amount ? r->amount : standing;
	rr.reference = r->reference;
	rr.reason = r->reason;
	ledger_reverse(&rr, &rres);

	Connect(&m);
	/* the whole purchase refunded: the order's coupons are given back */
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(rr.amount), NumericGetDatum(standing))) == 0 &&
		CouponsInstalled())
	{
		values[0] = Int64GetDatum(owner);
		values[1] = PointerGetDatum(r->reference);
		ExecStmt(S_COUPONS_REFUNDED, values, NULL, 0);
	}
	IdemStore(&m, r->idempotency_key, "refund", hash, rres.points, rres.entry_id);
	Finish(&m);
	res->points = rres.points;
	res->entry_id = rres.entry_id;
}

/*
 * An administrator's signed correction: a positive one is a credit with a
 * lot, a negative one a debit, first to expire first.  res->entry_id: its
 * entry.
 */
void
ledger_adjust(const AdjustRequest *r, LedgerResult *res)
{
	Member		m;
	Entry		e = {0};
	int64		hash = 0;
	int64		entry_id;

	if (r->points == 0 || r->points == PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an adjustment must change the balance by a non-zero number of points")));
	CheckText(r->reason, "reason", "Say why, for the audit trail.");
	e.row.reason = r->reason;
	e.row.idem_key = r->idempotency_key;
	e.row.reference = r->reference;
	if (e.row.idem_key)
	{
		StringInfoData b;

		HashStart(&b, "adjust");
		HashInt(&b, false, r->points);
		HashText(&b, r->reason);
		HashText(&b, r->reference);
		hash = HashEnd(&b);
	}

	if (BeginWrite(r->member_id, false, false, e.row.idem_key, "adjust", hash, &m, res))
		return;
	ReleaseExpiredHolds(&m);
	e.row.occurred_at = m.now;
	if (r->points > 0)
		entry_id = CreditEntry(&m, "adjust", r->points, &e, 0);
	else
		entry_id = DebitEntry(&m, "adjust", -r->points, &e, false);
	IdemStore(&m, e.row.idem_key, "adjust", hash, entry_id, entry_id);
	Finish(&m);
	res->points = r->points;
	res->entry_id = entry_id;
}

/*
 * Release the member's holds whose time is up (the batch procedure calls
 * this per member).  res->count: how many.
 */
void
ledger_release_expired(int64 member_id, LedgerResult *res)
{
	Member		m;
	Datum		values[1];

	memset(res, 0, sizeof(*res));
	Connect(&m);
	LockMember(member_id, &m, false);
	values[0] = Int64GetDatum(m.member_id);
	ExecStmt(S_EXPIRED_HOLDS, values, NULL, 0);
	res->count = (int64) SPI_processed;
	ReleaseExpiredHolds(&m);
	Finish(&m);
}

/*
 * A merge carries the absorbed member's idempotency keys to the survivor
 * (those the survivor does not have already), so that a call acknowledged on
 * the absorbed member replays as it did, on either member, after any number
 * of merges.  Both members are locked.
 */
static void
CarryKeys(Member *s, Member *a, text *merge_key)
{
	Datum		values[2];
	uint64		n,
				i;
	SPITupleTable *keys;

	/* one member per statement: on Citus each goes to its member's shard */
	values[0] = Int64GetDatum(a->member_id);
	ExecStmt(S_MEMBER_KEYS, values, NULL, 0);
	n = SPI_processed;
	keys = SPI_tuptable;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		text	   *key = DatumGetTextPP(SPI_getbinval(keys->vals[i], keys->tupdesc, 1, &isnull));
		char	   *op = SPI_getvalue(keys->vals[i], keys->tupdesc, 2);
		int64		hash = DatumGetInt64(SPI_getbinval(keys->vals[i], keys->tupdesc, 3, &isnull));
		Datum		result = SPI_getbinval(keys->vals[i], keys->tupdesc, 4, &isnull);
		Datum		entry;
		bool		entry_null;

		CHECK_FOR_INTERRUPTS();
		/* the merge's own key is the merge's */
		if (merge_key && VARSIZE_ANY_EXHDR(key) == VARSIZE_ANY_EXHDR(merge_key) &&
			memcmp(VARDATA_ANY(key), VARDATA_ANY(merge_key), VARSIZE_ANY_EXHDR(key)) == 0)
			continue;
		entry = SPI_getbinval(keys->vals[i], keys->tupdesc, 5, &entry_null);
		/* a key the survivor used itself stays the survivor's */
		values[0] = Int64GetDatum(s->member_id);
		values[1] = PointerGetDatum(key);
		ExecStmt(S_IDEM_GET, values, NULL, 1);
		if (SPI_processed > 0)
			continue;
		store_insert_idempotency(s->w, s->member_id, key, op, hash,
								 isnull ? 0 : DatumGetInt64(result),
								 entry_null ? 0 : DatumGetInt64(entry));
	}
}

/* Lots by id: the order a merge numbers the moved lots in. */
static int
CompareLotIds(const void *a, const void *b)
{
	const OpenLot *x = a;
	const OpenLot *y = b;

	return x->lot_id < y->lot_id ? -1 : x->lot_id > y->lot_id ? 1 : 0;
}

/* An account column (as locked) as int8, 0 for NULL. */
static int64
AccInt8(const AccountRead *a, int col)
{
	return a->acc_null[col] ? 0 : DatumGetInt64(a->acc[col]);
}

/* Release every open hold of a locked member (those whose time is up first). */
static void
ReleaseAllHolds(Member *m)
{
	Datum		values[1];
	uint64		nholds,
				i;
	int64	   *holds;

	ReleaseExpiredHolds(m);
	values[0] = Int64GetDatum(m->member_id);
	ExecStmt(S_ACTIVE_HOLDS, values, NULL, 0);
	nholds = SPI_processed;
	holds = palloc(sizeof(int64) * Max(nholds, 1));
	for (i = 0; i < nholds; i++)
		holds[i] = ColInt8(i, 1);
	for (i = 0; i < nholds; i++)
	{
		int64		hold_entry;
		Points		held;
		int64		entry_id;

		CHECK_FOR_INTERRUPTS();
		ActiveHold(m, holds[i], &hold_entry, &held);
		entry_id = ReleaseHoldPoints(m, holds[i], hold_entry, held, NULL, NULL);
		ResolveHold(m, holds[i], "released", 0, entry_id);
	}
}

/*
 * Merge two records of one person: the absorbed member's open holds are
 * released, its lots move to the survivor with their vesting and expiry
 * dates through a pair of merge entries, its debt and statistics follow,
 * its identities move, and it is closed.  Both accounts are locked in
 * member_id order, so opposite merges never deadlock.  The key is the
 * survivor's.  res->points: the points moved.
 */
void
ledger_merge(const MergeRequest *r, LedgerResult *res)
{
	Member		s,
				a;
	AccountRead acc;
	Entry		out = {0};
	Entry		in = {0};
	AccountDelta ds = {0};
	AccountDelta da = {0};
	OpenLot    *lots;
	int			nlots,
				i;
	int64		hash;
	int64		moved;
	int64		debt;
	int64		out_entry,
				in_entry;
	Datum		values[2];
	TimestampTz first_expiry = 0;

	CheckKey(r->idempotency_key);
	if (r->survivor == r->absorbed)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot merge member %lld into itself", (long long) r->survivor)));
	/* as 1.3's merge_members() computed it, so stored keys still match */
	hash = DatumGetInt64(DirectFunctionCall2Coll(hashtextextended, DEFAULT_COLLATION_OID,
												 CStringGetTextDatum(psprintf("merge|%lld|%lld",
																			  (long long) r->survivor,
																			  (long long) r->absorbed)),
												 Int64GetDatum(0)));
	memset(res, 0, sizeof(*res));
	Connect(&s);
	a.w = s.w;
	LockPair(r->survivor, &s, r->absorbed, &a);
	/* a replay first: its survivor may have been merged away since */
	if (IdemLookup(&s, r->idempotency_key, "merge", hash, res))
	{
		Finish(&s);
		return;
	}
	RefusePool(&s);
	RefusePool(&a);
	if (strcmp(s.status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("surviving member %lld is closed", (long long) r->survivor)));
	if (strcmp(a.status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %lld is closed (already merged?)", (long long) r->absorbed)));
	if (s.program_id != a.program_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("members %lld and %lld belong to different programs",
						(long long) r->survivor, (long long) r->absorbed)));

	/*
	 * The absorbed member's open holds go back to it before its lots move
	 * (those whose time is up first, as on any write).
	 */
	ReleaseAllHolds(&a);

	/* the absorbed account as it is now */
	if (!store_read_account(s.w, a.member_id, true, &acc))
		elog(ERROR, "loyalty: account of member %lld vanished", (long long) a.member_id);
	moved = AccInt8(&acc, A_BALANCE);
	debt = AccInt8(&acc, A_DEBT);

	out.row.kind = "merge";
	out.row.points = -moved;
	out.row.reason = cstring_to_text(psprintf("merged into member %lld", (long long) s.member_id));
	out.row.details = psprintf("{\"merged_into\": %lld, \"debt\": %lld}", (long long) s.member_id,
							   (long long) debt);
	out_entry = InsertEntry(&a, &out, NULL);
	in.row.kind = "merge";
	in.row.points = moved;
	in.row.reason = cstring_to_text(psprintf("merged from member %lld", (long long) a.member_id));
	in.row.source_entry = out_entry;
	in.row.idem_key = r->idempotency_key;
	in.row.details = psprintf("{\"merged_from\": %lld, \"debt\": %lld}", (long long) a.member_id,
							  (long long) debt);
	in_entry = InsertEntry(&s, &in, NULL);

	/* every open lot moves, with its vesting and expiry dates */
	nlots = store_open_lots(s.w, a.member_id, LOTS_ALL_OPEN, 0, &lots);
	if (nlots > 1)
		qsort(lots, nlots, sizeof(OpenLot), CompareLotIds);
	for (i = 0; i < nlots; i++)
	{
		LotRow		lot = {0};

		CHECK_FOR_INTERRUPTS();
		store_take_lot(s.w, a.member_id, out_entry, &lots[i], lots[i].remaining);

		/*
		 * One merge entry brings many lots: they number from the ledger's
		 * sequence, so they never collide with a credit's lot (its entry_id).
		 */
		lot.member_id = s.member_id;
		lot.lot_id = store_next_entry_id(s.w);
		lot.entry_id = in_entry;
		lot.original = lots[i].remaining;
		lot.remaining = lots[i].remaining;
		lot.vests_at = lots[i].vests_at;
		lot.expires_at = lots[i].expires_at == DT_NOEND ? 0 : lots[i].expires_at;
		store_insert_lot(s.w, &lot);
		if (lot.expires_at != 0 && (first_expiry == 0 || lot.expires_at < first_expiry))
			first_expiry = lot.expires_at;
	}

	/* the survivor takes the absorbed member's books and statistics... */
	ds.balance = moved;
	ds.debt = debt;
	ds.earned = AccInt8(&acc, A_EARNED);
	ds.redeemed = AccInt8(&acc, A_REDEEMED);
	ds.expired = AccInt8(&acc, A_EXPIRED);
	ds.purchase_first = acc.acc_null[A_FIRST] ? 0 : DatumGetTimestampTz(acc.acc[A_FIRST]);
	ds.purchase_last = acc.acc_null[A_LAST] ? 0 : DatumGetTimestampTz(acc.acc[A_LAST]);
	ds.purchase_count = AccInt8(&acc, A_COUNT);
	ds.purchase_days = AccInt8(&acc, A_DAYS);
	ds.purchase_amount = acc.acc_null[A_AMOUNT] ? (Datum) 0 : acc.acc[A_AMOUNT];
	LowerExpiryBound(&s, &ds, first_expiry);
	UpdateAccount(&s, &ds);
	/* ...and the absorbed account is emptied and closed */
	da.balance = -moved;
	da.debt = -debt;
	da.earned = -ds.earned;
	da.redeemed = -ds.redeemed;
	da.expired = -ds.expired;
	da.purchase_count = -ds.purchase_count;
	da.purchase_days = -ds.purchase_days;
	if (ds.purchase_amount)
		da.purchase_amount = DirectFunctionCall1(numeric_uminus, ds.purchase_amount);
	da.clear_purchase_dates = true;
	da.exact_next_expiry = true;
	UpdateAccount(&a, &da);
	store_set_status(s.w, a.member_id, "closed");
	AccountChanged(a.member_id);

	CarryKeys(&s, &a, r->idempotency_key);

	values[0] = Int64GetDatum(s.member_id);
	values[1] = Int64GetDatum(a.member_id);
	ExecStmt(S_MOVE_IDENTITIES, values, NULL, 0);
	ExecStmt(S_CLOSE_MEMBER, values, NULL, 0);
	ExecStmt(S_REPOINT_MERGED, values, NULL, 0);
	if (s.engagement)
		ExecStmt(S_MERGE_ENGAGEMENT, values, NULL, 0);

	IdemStore(&s, r->idempotency_key, "merge", hash, moved, in_entry);
	Finish(&s);
	res->points = moved;
	res->entry_id = in_entry;
}

/*
 * Write off the unspent remainder of the member's lots expired by `as_of`
 * (default now), and make the account's expiry bound exact, so the expiry
 * job leaves the member alone until its next lot expires (running it twice
 * changes nothing).  res->points: the points written off.
 */
void
ledger_expire(const ExpireRequest *r, LedgerResult *res)
{
	Member		m;
	OpenLot    *lots;
	int			nlots,
				i;
	int64		total = 0;
	TimestampTz as_of;
	TimestampTz next;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	memset(res, 0, sizeof(*res));
	as_of = r->as_of.given ? r->as_of.value : now;
	if (TIMESTAMP_NOT_FINITE(as_of) || as_of > now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot expire points as of a future time %s", timestamptz_to_str(as_of))));
	Connect(&m);
	LockMember(r->member_id, &m, false);
	nlots = store_open_lots(m.w, m.member_id, LOTS_EXPIRED, as_of, &lots);
	for (i = 0; i < nlots; i++)
		total = points_add_checked(total, lots[i].remaining);
	if (nlots > 0)
	{
		Entry		e = {0};
		int64		entry_id;

		e.row.kind = "expire";
		e.row.points = -total;
		e.row.reason = cstring_to_text("points expired");
		e.row.occurred_at = as_of;
		entry_id = InsertEntry(&m, &e, NULL);
		for (i = 0; i < nlots; i++)
		{
			CHECK_FOR_INTERRUPTS();
			store_take_lot(m.w, m.member_id, entry_id, &lots[i], lots[i].remaining);
		}
	}
	next = store_first_expiry(m.w, m.member_id);
	if (nlots > 0 || next != m.next_expiry)
	{
		AccountDelta d = {0};

		d.balance = -total;
		d.expired = total;
		d.expiry_floor = next;
		d.exact_next_expiry = true;
		d.keep_updated_at = nlots == 0;
		UpdateAccount(&m, &d);
	}
	Finish(&m);
	res->points = total;
}

/* Sent (or received) points of a member today and this month, and today's count. */
static void
TransferSums(Member *m, bool sent, int64 *day, int64 *day_count, int64 *month)
{
	Datum		values[4];

	values[0] = Int64GetDatum(m->member_id);
	values[1] = TimestampTzGetDatum(m->now);
	values[2] = CStringGetTextDatum(m->time_zone);
	values[3] = BoolGetDatum(sent);
	ExecStmt(S_TRANSFER_SUMS, values, NULL, 1);
	*day = ColInt8(0, 1);
	*day_count = ColInt8(0, 2);
	*month = ColInt8(0, 3);
}

/* Refuse a transfer beyond a limit per day or month (LY041). */
static void
CheckTransferLimit(Member *m, const char *verb, const char *period, int64 so_far, Points points,
				   bool limited, int64 limit)
{
	if (!limited || so_far + points <= limit)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_LOYALTY_TRANSFER_LIMIT),
			 errmsg("transfer limit reached: member %lld has %s %lld of %lld points this %s",
					(long long) m->member_id, verb, (long long) so_far, (long long) limit, period),
			 errdetail("A transfer of %lld points would exceed the program's limit per %s.",
					   (long long) points, period),
			 errhint("Send at most %lld points, or wait for the next %s (in the program's time zone %s).",
					 (long long) Max(limit - so_far, 0), period, m->time_zone)));
}

/* Whether two members are in the same household now (both locked). */
static bool
SameHousehold(int64 a, int64 b)
{
	Datum		values[1];
	int64		ha;

	values[0] = Int64GetDatum(a);
	ExecStmt(S_HOUSEHOLD_OF, values, NULL, 1);
	if (SPI_processed != 1)
		return false;
	ha = ColInt8(0, 1);
	values[0] = Int64GetDatum(b);
	ExecStmt(S_HOUSEHOLD_OF, values, NULL, 1);
	return SPI_processed == 1 && ColInt8(0, 1) == ha;
}

/*
 * Whether the program lets `s` send `points` to `r`: transfers enabled, the
 * amount within bounds, the sender's tenure and tier, and the limits per day
 * and month of both sides (LY040, LY041).  Both are locked, so the sums of
 * their transfers cannot move before the transfer is written.
 */
static void
CheckTransfer(Member *s, Member *r, Points points)
{
	Datum		values[2];
	bool		isnull;
	bool		enabled;
	bool		same_household;
	int64		day,
				count,
				month;
	Datum		v;

	values[0] = Int64GetDatum(s->program_id);
	values[1] = Int64GetDatum(s->member_id);
	ExecStmt(S_TRANSFER_RULES, values, NULL, 1);
	enabled = SPI_processed == 1 && DatumGetBool(Col(0, 1, &isnull));
	if (!enabled)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_TRANSFER_REFUSED),
				 errmsg("transfers are not enabled in program %lld", (long long) s->program_id),
				 errhint("An administrator enables them with loyalty.set_transfer_rules().")));
	same_household = DatumGetBool(Col(0, 11, &isnull));
	if (points < ColInt8(0, 2))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_TRANSFER_REFUSED),
				 errmsg("a transfer must be at least %lld points, got %lld",
						(long long) ColInt8(0, 2), (long long) points)));
	v = Col(0, 3, &isnull);
	if (!isnull && points > DatumGetInt64(v))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_TRANSFER_REFUSED),
				 errmsg("a transfer may be at most %lld points, got %lld",
						(long long) DatumGetInt64(v), (long long) points)));
	v = Col(0, 4, &isnull);
	if (!isnull && DatumGetTimestampTz(v) > s->now)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_TRANSFER_REFUSED),
				 errmsg("member %lld may send points from %s", (long long) s->member_id,
						timestamptz_to_str(DatumGetTimestampTz(v))),
				 errdetail("The program requires a minimum membership before a member sends points.")));
	v = Col(0, 5, &isnull);
	if (!isnull && s->tier_rank < DatumGetInt32(v))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_TRANSFER_REFUSED),
				 errmsg("member %lld may not send points: its tier is below the program's minimum",
						(long long) s->member_id),
				 errdetail("Senders need a tier of rank %d or higher; the member's rank is %d (-1: none).",
						   DatumGetInt32(v), s->tier_rank)));
	{
		bool		n_sd,
					n_sm,
					n_sc,
					n_rd,
					n_rm;
		int64		sd = DatumGetInt64(Col(0, 6, &n_sd));
		int64		sm = DatumGetInt64(Col(0, 7, &n_sm));
		int32		sc = DatumGetInt32(Col(0, 8, &n_sc));
		int64		rd = DatumGetInt64(Col(0, 9, &n_rd));
		int64		rm = DatumGetInt64(Col(0, 10, &n_rm));

		if (!n_sd || !n_sm || !n_sc)
		{
			TransferSums(s, true, &day, &count, &month);
			CheckTransferLimit(s, "sent", "day", day, points, !n_sd, sd);
			CheckTransferLimit(s, "sent", "month", month, points, !n_sm, sm);
			if (!n_sc && count + 1 > sc)
				ereport(ERROR,
						(errcode(ERRCODE_LOYALTY_TRANSFER_LIMIT),
						 errmsg("transfer limit reached: member %lld has sent %lld transfers today, the most the program allows",
								(long long) s->member_id, (long long) count),
						 errhint("Wait for the next day (in the program's time zone %s).", s->time_zone)));
		}
		if (!n_rd || !n_rm)
		{
			TransferSums(r, false, &day, &count, &month);
			CheckTransferLimit(r, "received", "day", day, points, !n_rd, rd);
			CheckTransferLimit(r, "received", "month", month, points, !n_rm, rm);
		}
	}
	if (same_household && !SameHousehold(s->member_id, r->member_id))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_TRANSFER_REFUSED),
				 errmsg("members %lld and %lld are not in one household", (long long) s->member_id,
						(long long) r->member_id),
				 errdetail("The program allows transfers within a household only.")));
}

/*
 * Move `points` from locked member `s` to locked member `t`: the sender's
 * lots consumed first-to-expire-first, the receiver's new lots of the same
 * points keeping their expiry; two transfer entries linked by source_entry
 * (`household`: a dissolved household's pool paid out, 0: none).  Returns
 * the sender's entry.
 */
static int64
TransferWrite(Member *s, Member *t, Points points, text *reason, text *idem_key, int64 household)
{
	Entry		out = {0};
	Entry		in = {0};
	AccountDelta d = {0};
	LotRow		into = {0};
	int64		out_entry,
				in_entry;
	Points		repay;
	char		extra[64] = "";

	if (household != 0)
		snprintf(extra, sizeof(extra), ", \"household\": %lld", (long long) household);
	out.row.reason = reason;
	out.row.idem_key = idem_key;
	out.row.details = psprintf("{\"to_member\": %lld%s}", (long long) t->member_id, extra);
	out_entry = DebitEntry(s, "transfer", points, &out, false);

	in.row.kind = "transfer";
	in.row.points = points;
	in.row.reason = reason;
	in.row.source_entry = out_entry;
	in.row.details = psprintf("{\"from_member\": %lld%s}", (long long) s->member_id, extra);
	in_entry = InsertEntry(t, &in, NULL);
	/* the receiver's debt is repaid first, as by any credit */
	repay = Min(points, t->debt);
	into.member_id = t->member_id;
	into.entry_id = in_entry;
	into.vests_at = t->now;
	LowerExpiryBound(t, &d, store_mirror_lots(t->w, s->member_id, out_entry, &into, repay));
	d.balance = points;
	d.debt = -repay;
	UpdateAccount(t, &d);
	return out_entry;
}

/*
 * Give points to another member of the program: the sender's lots are
 * consumed first-to-expire-first, and the receiver gets lots of the same
 * points with the same expiry dates.  Two ledger rows, linked by
 * source_entry.  res->entry_id: the sender's entry.
 */
void
ledger_transfer(const TransferRequest *r, LedgerResult *res)
{
	Member		s,
				t;
	int64		hash = 0;
	int64		out_entry;

	CheckPositivePoints(r->points, "points");
	CheckKey(r->idempotency_key);
	if (r->from_member == r->to_member)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot transfer points from member %lld to itself", (long long) r->from_member)));
	if (r->idempotency_key)
	{
		StringInfoData b;

		HashStart(&b, "transfer");
		HashInt(&b, false, r->to_member);
		HashInt(&b, false, r->points);
		HashText(&b, r->reason);
		hash = HashEnd(&b);
	}
	memset(res, 0, sizeof(*res));
	Connect(&s);
	t.w = s.w;
	LockPair(r->from_member, &s, r->to_member, &t);
	if (IdemLookup(&s, r->idempotency_key, "transfer", hash, res))
	{
		Finish(&s);
		return;
	}
	RequireActive(&s);
	RequireActive(&t);
	if (s.program_id != t.program_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("members %lld and %lld belong to different programs",
						(long long) s.member_id, (long long) t.member_id)));
	CheckTransfer(&s, &t, r->points);
	ReleaseExpiredHolds(&s);
	ReleaseExpiredHolds(&t);
	out_entry = TransferWrite(&s, &t, r->points, r->reason, r->idempotency_key, 0);
	IdemStore(&s, r->idempotency_key, "transfer", hash, r->points, out_entry);
	Finish(&s);
	res->points = r->points;
	res->entry_id = out_entry;
}

/*
 * The receiver's side of a transfer's reversal: `points` taken back from the
 * transfer's lots first, then from the member's other spendable lots; what
 * it spent already follows the refund policy (a debt, or forgiven).
 */
static void
TakeBackTransfer(Member *t, int64 in_entry, Points points, text *reason)
{
	Entry		take = {0};
	Datum		values[3];
	bool		isnull;
	SPITupleTable *lots;
	uint64		i,
				n;
	int64	   *ids;
	int64	   *takes;
	int64		entry_id;
	Points		own = 0,
				own_spendable = 0,
				others;

	values[0] = Int64GetDatum(t->member_id);
	values[1] = Int64GetDatum(in_entry);
	values[2] = TimestampTzGetDatum(t->now);
	ExecStmt(S_ENTRY_LOTS, values, NULL, 0);
	n = SPI_processed;
	lots = SPI_tuptable;
	ids = palloc(sizeof(int64) * Max(n, 1));
	takes = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		int64		remaining = DatumGetInt64(SPI_getbinval(lots->vals[i], lots->tupdesc, 2, &isnull));

		ids[i] = DatumGetInt64(SPI_getbinval(lots->vals[i], lots->tupdesc, 1, &isnull));
		takes[i] = Min(remaining, points - own);
		own += takes[i];
		if (DatumGetBool(SPI_getbinval(lots->vals[i], lots->tupdesc, 3, &isnull)))
			own_spendable += takes[i];
	}
	take.row.reason = reason;
	take.row.source_entry = in_entry;
	entry_id = TakeBackEntry(t, &take, points, own, own_spendable, "from_transfer_lots", NULL, false, &others);
	for (i = 0; i < n; i++)
		if (takes[i] > 0)
			store_take_from_lot(t->w, t->member_id, entry_id, ids[i], takes[i], takes[i], (Datum) 0);
	if (others > 0)
		ConsumeLotsExact(t, entry_id, others);
}

/*
 * Undo a transfer (an administrator's correction): the receiver gives the
 * points back, from the transferred lots first, then from its other
 * spendable lots, and what it no longer has follows the program's refund
 * policy (a debt, or forgiven); the sender gets them back in the lots they
 * came from.  res->points: the points given back; res->entry_id: the
 * sender's reversal entry.
 */
void
ledger_reverse_transfer(const TransferReversal *r, LedgerResult *res)
{
	Member		s,
				t;
	Entry		back = {0};
	AccountDelta ds = {0};
	int64		hash = 0;
	int64		receiver;
	int64		in_entry;
	int64		back_entry;
	Points		points;
	Datum		values[2];
	bool		isnull;
	char	   *kind;

	CheckKey(r->idempotency_key);
	if (r->idempotency_key)
	{
		StringInfoData b;

		HashStart(&b, "reverse_transfer");
		HashInt(&b, false, r->entry_id);
		HashText(&b, r->reason);
		hash = HashEnd(&b);
	}
	memset(res, 0, sizeof(*res));
	Connect(&s);

	/* the receiver, from the sender's entry (entries never change) */
	values[0] = Int64GetDatum(r->member_id);
	values[1] = Int64GetDatum(r->entry_id);
	ExecStmt(S_ENTRY_GET, values, NULL, 1);
	kind = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
	if (kind == NULL || strcmp(kind, "transfer") != 0 || ColInt8(0, 2) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("entry %lld of member %lld is not a transfer sent by that member",
						(long long) r->entry_id, (long long) r->member_id),
				 errhint("Name the sender and the entry loyalty.transfer() returned.")));
	points = -ColInt8(0, 2);
	receiver = DatumGetInt64(Col(0, 6, &isnull));
	if (isnull)
		elog(ERROR, "loyalty: transfer entry %lld names no receiver", (long long) r->entry_id);

	t.w = s.w;
	LockPair(r->member_id, &s, receiver, &t);
	if (IdemLookup(&s, r->idempotency_key, "reverse_transfer", hash, res))
	{
		Finish(&s);
		return;
	}
	if (strcmp(s.status, "closed") == 0 || strcmp(t.status, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %lld is closed: the transfer can no longer be reversed",
						(long long) (strcmp(s.status, "closed") == 0 ? s.member_id : t.member_id)),
				 errhint("Correct the balances with loyalty.adjust().")));
	if (OpenAllocations(&s, r->entry_id) != points)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OVER_REVERSAL),
				 errmsg("transfer %lld is already reversed", (long long) r->entry_id)));
	values[0] = Int64GetDatum(t.member_id);
	values[1] = Int64GetDatum(r->entry_id);
	ExecStmt(S_TRANSFER_IN, values, NULL, 1);
	if (SPI_processed != 1)
		elog(ERROR, "loyalty: transfer %lld has no receiving entry", (long long) r->entry_id);
	in_entry = ColInt8(0, 1);
	ReleaseExpiredHolds(&s);
	ReleaseExpiredHolds(&t);

	TakeBackTransfer(&t, in_entry, points, r->reason);

	/* the sender: back to the lots the points came from */
	back.row.kind = "reverse";
	back.row.points = points;
	back.row.reason = r->reason;
	back.row.source_entry = r->entry_id;
	back.row.idem_key = r->idempotency_key;
	ds.balance = points;
	back_entry = InsertEntry(&s, &back, &ds);
	ReturnToLots(&s, r->entry_id, points);

	IdemStore(&s, r->idempotency_key, "reverse_transfer", hash, points, back_entry);
	Finish(&s);
	res->points = points;
	res->entry_id = back_entry;
}

/*
 * Take every open lot of the locked member and write its debt off with one
 * forfeit entry, then close it.  res->points: the balance forfeited
 * (negative: a debt written off); res->entry_id: the entry, if any.
 */
static void
ForfeitWrite(Member *m, text *reason, LedgerResult *res)
{
	Entry		e = {0};
	AccountDelta d = {0};
	AccountRead acc;
	OpenLot    *lots;
	int			nlots;
	Points		balance,
				debt;
	Datum		values[2];

	ReleaseAllHolds(m);
	if (!store_read_account(m->w, m->member_id, true, &acc))
		elog(ERROR, "loyalty: account of member %lld vanished", (long long) m->member_id);
	balance = AccInt8(&acc, A_BALANCE);
	debt = AccInt8(&acc, A_DEBT);
	nlots = store_open_lots(m->w, m->member_id, LOTS_ALL_OPEN, 0, &lots);
	if (nlots > 0 || debt != 0)
	{
		e.row.kind = "forfeit";
		e.row.points = -balance;
		e.row.reason = reason;
		e.row.details = psprintf("{\"debt\": %lld}", (long long) debt);
		res->entry_id = InsertEntry(m, &e, NULL);
		if (nlots > 1)
			qsort(lots, nlots, sizeof(OpenLot), CompareLotIds);
		for (int i = 0; i < nlots; i++)
		{
			CHECK_FOR_INTERRUPTS();
			store_take_lot(m->w, m->member_id, res->entry_id, &lots[i], lots[i].remaining);
		}
		d.balance = -balance;
		d.debt = -debt;
		d.exact_next_expiry = true;
		UpdateAccount(m, &d);
	}
	values[0] = Int64GetDatum(m->member_id);
	values[1] = CStringGetTextDatum("closed");
	ExecStmt(S_MEMBER_STATUS, values, NULL, 0);
	store_set_status(m->w, m->member_id, "closed");
	AccountChanged(m->member_id);
	res->points = balance;
}

/*
 * Close a member's books for good (erase_member): its holds released, every
 * open lot taken and its debt written off by one forfeit entry, so that
 * nothing of it stays in the program's liability; then the member is closed.
 * res->points: the balance forfeited (negative: a debt written off).
 */
void
ledger_forfeit(const ForfeitRequest *r, LedgerResult *res)
{
	Member		m;
	int64		survivor;

	memset(res, 0, sizeof(*res));
	Connect(&m);
	LockMember(r->member_id, &m, false);
	RefusePool(&m);
	survivor = strcmp(m.status, "closed") == 0 ? MergedInto(m.member_id) : 0;
	if (survivor != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("member %lld was merged into member %lld", (long long) m.member_id,
						(long long) survivor),
				 errhint("Its books are the survivor's: name member %lld.", (long long) survivor)));
	ForfeitWrite(&m, r->reason, res);
	Finish(&m);
}

/*
 * Whether the redeemer's role lets it spend `points` from its household now:
 * a child only when the program allows it, and within the role's monthly
 * limit over what it redeemed from the household's accounts `ids`.
 */
static void
CheckHouseholdRole(Member *me, int64 household, const int64 *ids, int n, Points points)
{
	Datum		values[4];
	bool		isnull;
	char	   *role;

	values[0] = Int64GetDatum(me->member_id);
	ExecStmt(S_HOUSEHOLD_OF, values, NULL, 1);
	role = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	values[0] = Int64GetDatum(me->program_id);
	ExecStmt(S_HOUSEHOLD_RULES, values, NULL, 1);
	{
		bool		child = strcmp(role, "child") == 0;
		bool		child_can = SPI_processed == 1 && DatumGetBool(Col(0, 1, &isnull));
		Datum		limit = SPI_processed == 1 ? Col(0, child ? 3 : 2, &isnull) : (Datum) 0;
		bool		limited = SPI_processed == 1 && !isnull;

		if (child && !child_can)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_HOUSEHOLD_LIMIT),
					 errmsg("member %lld is a child of household %lld: children may not redeem from it",
							(long long) me->member_id, (long long) household),
					 errhint("An administrator allows it with loyalty.set_household_rules(child_can_redeem => true).")));
		if (limited)
		{
			int64		lim = DatumGetInt64(limit);
			int64		spent;

			Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

			for (int i = 0; i < n; i++)
				elems[i] = Int64GetDatum(ids[i]);
			values[0] = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
														TYPALIGN_DOUBLE));
			values[1] = TimestampTzGetDatum(me->now);
			values[2] = CStringGetTextDatum(me->time_zone);
			values[3] = CStringGetTextDatum(psprintf(INT64_FORMAT, me->member_id));
			ExecStmt(S_HOUSEHOLD_SPENT, values, NULL, 1);
			spent = ColInt8(0, 1);
			if (spent + points > lim)
				ereport(ERROR,
						(errcode(ERRCODE_LOYALTY_HOUSEHOLD_LIMIT),
						 errmsg("household limit reached: member %lld (%s) has redeemed %lld of %lld points this month",
								(long long) me->member_id, role, (long long) spent, (long long) lim),
						 errhint("Redeem at most %lld points, or wait for the next month.",
								 (long long) Max(lim - spent, 0))));
		}
	}

}

/*
 * Lock a household's current members in member_id order (the household
 * itself is locked first, by the caller); returns how many, with their ids
 * and what was read of each.
 */
static int
LockHouseholdMembers(StoreWriter *w, int64 household, int64 **ids_out, Member **ms_out)
{
	Datum		values[1];
	int			n;
	int64	   *ids;
	Member	   *ms;

	values[0] = Int64GetDatum(household);
	ExecStmt(S_HOUSEHOLD_MEMBERS, values, NULL, 0);
	n = (int) SPI_processed;
	ids = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
		ids[i] = ColInt8(i, 1);
	ms = palloc0(sizeof(Member) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		ms[i].w = w;
		LockMember(ids[i], &ms[i], false);
	}
	*ids_out = ids;
	*ms_out = ms;
	return n;
}

/* A spendable lot of a household member, for spending across the household. */
typedef struct PoolLot
{
	OpenLot		lot;
	int			who;			/* index of the member */
} PoolLot;

static int
ComparePoolLots(const void *a, const void *b)
{
	return store_compare_fefo(&((const PoolLot *) a)->lot, &((const PoolLot *) b)->lot);
}

/*
 * Redeem from a household's pool: the household is locked (by the caller),
 * then the redeemer, then the pool.  The pool's redeem entry names who
 * redeemed; the key is the redeemer's.
 */
static void
PoolRedeem(const HouseholdRedeemRequest *r, StoreWriter *w, int64 household, int64 pool, int64 hash,
		   LedgerResult *res)
{
	Member		me = {0};
	Member		p = {0};
	Entry		e = {0};
	Datum		values[1];
	Points		available;

	me.w = w;
	LockMember(r->redeemer, &me, false);
	values[0] = Int64GetDatum(me.member_id);
	ExecStmt(S_HOUSEHOLD_OF, values, NULL, 1);
	if (SPI_processed != 1 || ColInt8(0, 1) != household)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_HOUSEHOLD),
				 errmsg("member %lld left household %lld", (long long) r->redeemer, (long long) household)));
	if (IdemLookup(&me, r->idempotency_key, "household_redeem", hash, res))
		return;
	RequireActive(&me);
	CheckHouseholdRole(&me, household, &pool, 1, r->points);

	p.w = w;
	LockMember(pool, &p, false);

	/*
	 * (as PrecheckDebit: the lots are summed only when the balance may not
	 * do)
	 */
	available = p.debt > 0 || r->points > p.balance ? Available(&p, p.now) : r->points;
	if (available < r->points)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INSUFFICIENT_POINTS),
				 errmsg("insufficient points: the pool of household %lld has %lld spendable, %lld requested",
						(long long) household, (long long) Max(available, 0), (long long) r->points),
				 errdetail("Points in the pool that are pending or expired cannot be spent.")));
	e.row.channel = r->channel;
	e.row.reference = r->reference;
	e.row.details = psprintf("{\"household\": %lld, \"redeemed_by\": %lld}", (long long) household,
							 (long long) me.member_id);
	res->entry_id = DebitEntry(&p, "redeem", r->points, &e, true);
	IdemStore(&me, r->idempotency_key, "household_redeem", hash, r->points, res->entry_id);
	res->points = r->points;
}

/*
 * Redeem from a household (pooled redemption): the members' spendable points
 * taken first-to-expire-first across the household, each member's share a
 * redeem entry of its own (points stay with who earned them until spent).
 * The household is locked first, then every member in member_id order.
 * res->points: the points; res->entry_id: the redeemer's entry, or the first.
 */
void
ledger_household_redeem(const HouseholdRedeemRequest *r, LedgerResult *res)
{
	Member	   *ms;
	Member	   *me = NULL;
	StoreWriter *w;
	Datum		values[4];
	bool		isnull;
	int64		household;
	int64		hash = 0;
	int			n,
				i,
				npool = 0;
	int64	   *ids;
	int64	   *take;
	int64	   *cap;
	PoolLot    *pool = NULL;
	Points		need,
				spendable = 0;
	char	   *details;

	CheckPositivePoints(r->points, "points");
	CheckKey(r->idempotency_key);
	if (r->idempotency_key)
	{
		StringInfoData b;

		HashStart(&b, "household_redeem");
		HashInt(&b, false, r->points);
		HashText(&b, r->channel);
		HashText(&b, r->reference);
		hash = HashEnd(&b);
	}
	memset(res, 0, sizeof(*res));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	w = store_begin();

	/*
	 * A replay of a committed call is answered before the household is looked
	 * at (the redeemer may have left it since); a call racing its first run
	 * is caught again under the locks.
	 */
	{
		Member		pre = {0};

		pre.w = w;
		pre.member_id = r->redeemer;
		if (IdemLookup(&pre, r->idempotency_key, "household_redeem", hash, res))
		{
			store_end(w);
			SPI_finish();
			return;
		}
	}
	values[0] = Int64GetDatum(r->redeemer);
	ExecStmt(S_HOUSEHOLD_OF, values, NULL, 1);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_HOUSEHOLD),
				 errmsg("member %lld is in no household", (long long) r->redeemer),
				 errhint("Redeem with loyalty.redeem(), or join a household first.")));
	household = ColInt8(0, 1);
	values[0] = Int64GetDatum(household);
	ExecStmt(S_HOUSEHOLD_LOCK, values, NULL, 1);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_HOUSEHOLD),
				 errmsg("household %lld was dissolved", (long long) household)));
	(void) Col(0, 2, &isnull);
	if (!isnull)
	{
		PoolRedeem(r, w, household, ColInt8(0, 2), hash, res);
		store_end(w);
		SPI_finish();
		return;
	}
	n = LockHouseholdMembers(w, household, &ids, &ms);
	take = palloc0(sizeof(int64) * Max(n, 1));
	cap = palloc0(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
		if (ids[i] == r->redeemer)
			me = &ms[i];
	if (me == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_HOUSEHOLD),
				 errmsg("member %lld left household %lld", (long long) r->redeemer, (long long) household)));
	if (IdemLookup(me, r->idempotency_key, "household_redeem", hash, res))
	{
		store_end(w);
		SPI_finish();
		return;
	}
	RequireActive(me);

	CheckHouseholdRole(me, household, ids, n, r->points);

	/*
	 * every active member's spendable lots, first to expire first across the
	 * household
	 */
	for (i = 0; i < n; i++)
	{
		OpenLot    *lots;
		int			nl,
					j;
		int64		sum = 0;

		ReleaseExpiredHolds(&ms[i]);
		if (strcmp(ms[i].status, "active") != 0)
			continue;
		nl = store_open_lots(w, ms[i].member_id, LOTS_SPENDABLE, ms[i].now, &lots);
		pool = pool ? repalloc(pool, sizeof(PoolLot) * (npool + Max(nl, 1))) : palloc(sizeof(PoolLot) * Max(nl, 1));
		for (j = 0; j < nl; j++)
		{
			pool[npool].lot = lots[j];
			pool[npool].who = i;
			npool++;
			sum += lots[j].remaining;
		}
		/* an open debt is repaid before a member's points are spent */
		cap[i] = Max(sum - ms[i].debt, 0);
		spendable += cap[i];
	}
	if (spendable < r->points)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INSUFFICIENT_POINTS),
				 errmsg("insufficient points: household %lld has %lld spendable, %lld requested",
						(long long) household, (long long) spendable, (long long) r->points),
				 errdetail("Pending, expired and held points, and those of members who are not active, cannot be spent.")));
	if (npool > 1)
		qsort(pool, npool, sizeof(PoolLot), ComparePoolLots);
	need = r->points;
	for (i = 0; i < npool && need > 0; i++)
	{
		int			who = pool[i].who;
		int64		t = Min(Min(pool[i].lot.remaining, cap[who] - take[who]), need);

		take[who] += t;
		need -= t;
	}

	/*
	 * Each member's share is a prefix of its own lots in the same order, so
	 * its debit takes exactly the lots chosen here.
	 */
	details = psprintf("{\"household\": %lld, \"redeemed_by\": %lld}", (long long) household,
					   (long long) me->member_id);
	for (i = 0; i < n; i++)
	{
		Entry		e = {0};
		int64		entry_id;

		if (take[i] == 0)
			continue;
		e.row.channel = r->channel;
		e.row.reference = r->reference;
		e.row.details = details;
		if (&ms[i] == me)
			e.row.idem_key = r->idempotency_key;
		entry_id = DebitEntry(&ms[i], "redeem", take[i], &e, true);
		if (&ms[i] == me || res->entry_id == 0)
			res->entry_id = entry_id;
	}
	IdemStore(me, r->idempotency_key, "household_redeem", hash, r->points, res->entry_id);
	store_end(w);
	SPI_finish();
	res->points = r->points;
}

/* A member's part of a pool being split, for the largest remainders. */
typedef struct PoolPart
{
	Member	   *m;
	int64		weight;			/* what it gave the pool (or 1 each) */
	Points		points;
	int64		rest;			/* remainder of the division, as the tie-break */
} PoolPart;

static int
ComparePoolParts(const void *a, const void *b)
{
	const PoolPart *x = a;
	const PoolPart *y = b;

	if (x->rest != y->rest)
		return x->rest > y->rest ? -1 : 1;
	return x->m->member_id < y->m->member_id ? -1 : 1;
}

/*
 * Close a household's pool as the household is dissolved (its members not
 * yet gone).  By the program's policy, the pool's spendable points are split
 * among the active members in proportion to what each one's earnings gave
 * the pool (equally when none gave anything), largest remainders first,
 * each part a transfer that keeps the lots' expiry; or they return to the
 * program.  What is left (pending points, a debt) is forfeited and the pool
 * closed.  The household is locked by the caller, then its members in
 * member_id order, then the pool.  res->points: the points split.
 */
void
ledger_household_close(int64 household, text *reason, LedgerResult *res)
{
	StoreWriter *w;
	Member		p = {0};
	Member	   *ms;
	PoolPart   *parts;
	Datum		values[2];
	bool		isnull;
	bool		split = true;
	int64		pool;
	int			n,
				nparts = 0;
	int64	   *ids;
	Points		available,
				given = 0;
	LedgerResult fr = {0};

	memset(res, 0, sizeof(*res));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "loyalty: SPI_connect failed");
	w = store_begin();
	values[0] = Int64GetDatum(household);
	ExecStmt(S_HOUSEHOLD_LOCK, values, NULL, 1);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_HOUSEHOLD),
				 errmsg("household %lld was dissolved", (long long) household)));
	pool = DatumGetInt64(Col(0, 2, &isnull));
	if (isnull)
	{
		store_end(w);
		SPI_finish();
		return;
	}
	values[0] = Int64GetDatum(ColInt8(0, 1));
	ExecStmt(S_HOUSEHOLD_RULES, values, NULL, 1);
	if (SPI_processed == 1)
	{
		char	   *policy = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);

		split = strcmp(policy, "split") == 0;
	}

	n = LockHouseholdMembers(w, household, &ids, &ms);
	parts = palloc0(sizeof(PoolPart) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (strcmp(ms[i].status, "active") == 0)
			parts[nparts++].m = &ms[i];
	p.w = w;
	LockMember(pool, &p, false);
	if (strcmp(p.status, "pool") != 0)
		elog(ERROR, "loyalty: household %lld's pool %lld is %s", (long long) household, (long long) pool,
			 p.status);
	available = Max(Available(&p, p.now), 0);

	if (split && available > 0 && nparts > 0)
	{
		Datum	   *elems = palloc(sizeof(Datum) * nparts);
		int64		total = 0;
		Points		left = available;

		for (int i = 0; i < nparts; i++)
			elems[i] = Int64GetDatum(parts[i].m->member_id);
		values[0] = Int64GetDatum(household);
		values[1] = PointerGetDatum(construct_array(elems, nparts, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
													TYPALIGN_DOUBLE));
		ExecStmt(S_SHARE_SUMS, values, NULL, 0);
		for (uint64 k = 0; k < SPI_processed; k++)
		{
			int64		who = ColInt8((int) k, 1);

			for (int i = 0; i < nparts; i++)
				if (parts[i].m->member_id == who)
					parts[i].weight = ColInt8((int) k, 2);
		}
		for (int i = 0; i < nparts; i++)
			total += parts[i].weight;
		if (total == 0)
		{
			for (int i = 0; i < nparts; i++)
				parts[i].weight = 1;
			total = nparts;
		}

		/*
		 * each part rounded down (exactly, in numeric), the rest by
		 * remainders
		 */
		for (int i = 0; i < nparts; i++)
		{
			Datum		num = DirectFunctionCall2(numeric_mul, NumericGetDatum(int64_to_numeric(available)),
												  NumericGetDatum(int64_to_numeric(parts[i].weight)));
			Datum		den = NumericGetDatum(int64_to_numeric(total));

			parts[i].points = points_from_numeric_rounded(DirectFunctionCall2(numeric_div_trunc, num, den),
														  POINTS_ROUND_FLOOR);
			parts[i].rest = points_from_numeric_rounded(DirectFunctionCall2(numeric_mod, num, den),
														POINTS_ROUND_FLOOR);
			left -= parts[i].points;
		}
		qsort(parts, nparts, sizeof(PoolPart), ComparePoolParts);
		for (int i = 0; left > 0; i = (i + 1) % nparts)
		{
			parts[i].points++;
			left--;
		}
		for (int i = 0; i < nparts; i++)
		{
			if (parts[i].points == 0)
				continue;
			ReleaseExpiredHolds(parts[i].m);
			(void) TransferWrite(&p, parts[i].m, parts[i].points, reason, NULL, household);
			given += parts[i].points;
		}
	}
	ForfeitWrite(&p, reason, &fr);
	store_end(w);
	SPI_finish();
	res->points = given;
	res->entry_id = fr.entry_id;
}

/*
 * Suspend, close or reactivate a member: the member's row and the account's
 * copy of its status, under the member's lock, so that a status change
 * serialises with every write.  A merged-away member keeps the status its
 * merge gave it.
 */
void
ledger_set_status(const StatusRequest *r)
{
	Member		m;
	Datum		values[2];

	Connect(&m);
	LockMember(r->member_id, &m, false);
	RefusePool(&m);
	if (r->status == NULL ||
		(strcmp(r->status, "active") != 0 && strcmp(r->status, "suspended") != 0 &&
		 strcmp(r->status, "closed") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown member status \"%s\"", r->status ? r->status : "NULL"),
				 errhint("Use active, suspended or closed.")));
	values[0] = Int64GetDatum(m.member_id);
	values[1] = CStringGetTextDatum(r->status);
	ExecStmt(S_MEMBER_STATUS, values, NULL, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %lld does not exist or was merged away", (long long) m.member_id)));
	store_set_status(m.w, m.member_id, r->status);
	AccountChanged(m.member_id);
	Finish(&m);
}

/* A tier as text (its output form), or NULL. */
static Datum
TierText(Datum tier, bool isnull, char *null)
{
	*null = isnull ? 'n' : ' ';
	if (isnull)
		return (Datum) 0;
	return CStringGetTextDatum(DatumGetCString(DirectFunctionCall1(tier_out, tier)));
}

/*
 * Move a member to tier `r->tier` (NULL: none): the account's tier columns,
 * a tier_history row and a tier.changed event.  The same tier only renews a
 * lock (`r->locked_until` given).  Returns whether the tier changed.  The
 * tier rules (tier_after_write, review_tiers_batch, assign_tier) decide; this
 * writes what they decided, under the member's lock.
 */
bool
ledger_tier_change(const TierRequest *r)
{
	Member		m;
	TierChange	c = {0};
	bool		same;
	Datum		values[4];
	char		nulls[4];

	Connect(&m);
	LockMember(r->member_id, &m, false);
	if (m.tier == NULL || r->tier == NULL)
		same = m.tier == NULL && r->tier == NULL;
	else
		same = DatumGetBool(DirectFunctionCall2(tier_eq, PointerGetDatum(m.tier), PointerGetDatum(r->tier)));
	if (same)
	{
		if (r->locked)
		{
			c.set_locked = true;
			c.locked_until = r->locked_until;
			c.set_grace = true;
			c.grace_null = true;
			store_set_tier(m.w, r->member_id, &c);
		}
		Finish(&m);
		return false;
	}
	c.set_tier = true;
	c.tier = PointerGetDatum(r->tier);
	c.tier_null = r->tier == NULL;
	c.set_locked = true;
	c.locked_until = r->locked_until;
	c.locked_null = !r->locked;
	c.set_grace = true;
	c.grace_null = true;
	store_set_tier(m.w, r->member_id, &c);
	AccountChanged(r->member_id);

	values[0] = Int64GetDatum(r->member_id);
	values[1] = TierText(PointerGetDatum(m.tier), m.tier == NULL, &nulls[1]);
	values[2] = TierText(PointerGetDatum(r->tier), r->tier == NULL, &nulls[2]);
	values[3] = PointerGetDatum(r->reason);
	nulls[0] = ' ';
	nulls[3] = r->reason ? ' ' : 'n';
	ExecStmt(S_TIER_HISTORY, values, nulls, 0);
	ExecStmt(S_TIER_EVENT, values, nulls, 0);
	Finish(&m);
	return true;
}

/* Start (`grace`: until `until`) or end a member's tier grace period. */
void
ledger_tier_grace(int64 member_id, bool grace, TimestampTz until)
{
	Member		m;
	TierChange	c = {0};

	Connect(&m);
	LockMember(member_id, &m, false);
	c.set_grace = true;
	c.grace_until = until;
	c.grace_null = !grace;
	store_set_tier(m.w, member_id, &c);
	Finish(&m);
}

/*
 * A tier review's decisions for a batch of members, in one writer: for each
 * member `change` moves the tier (tier_since now, no lock, no grace; the
 * caller writes the history and events of the batch), else the grace period
 * is set to `grace_until` (NULL ends it).  The caller holds the accounts'
 * locks (review_tiers_batch locks its batch before it decides).
 */
void
ledger_apply_tiers(const TierDecision *d, int n)
{
	Member		m;
	int			i;

	Connect(&m);
	for (i = 0; i < n; i++)
	{
		TierChange	c = {0};

		CHECK_FOR_INTERRUPTS();
		if (d[i].change)
		{
			c.set_tier = true;
			c.tier = d[i].tier;
			c.tier_null = d[i].tier_null;
			c.set_locked = true;
			c.locked_null = true;
			c.set_grace = true;
			c.grace_null = true;
		}
		else
		{
			c.set_grace = true;
			c.grace_until = d[i].grace_until;
			c.grace_null = d[i].grace_null;
		}
		store_set_tier(m.w, d[i].member_id, &c);
		if (d[i].change)
			AccountChanged(d[i].member_id);
	}
	Finish(&m);
}

/*
 * A segment refresh's results for a batch of members, in one writer.  The
 * caller holds the accounts' locks (refresh_segments_batch locks its batch
 * before it reads the members' statistics).
 */
void
ledger_apply_segments(const SegmentDecision *d, int n)
{
	Member		m;
	int			i;

	Connect(&m);
	for (i = 0; i < n; i++)
	{
		SegmentChange c;

		CHECK_FOR_INTERRUPTS();
		c.segment = d[i].segment;
		c.risk_band = d[i].risk_band;
		c.since = d[i].since;
		c.since_null = d[i].since_null;
		store_set_segment(m.w, d[i].member_id, &c);
	}
	Finish(&m);
}

/* Whether the member's referral still waits for a qualifying purchase. */
void
ledger_set_referral_pending(int64 member_id, bool pending)
{
	Member		m;

	Connect(&m);
	LockMember(member_id, &m, false);
	store_set_referral(m.w, member_id, pending);
	Finish(&m);
}

/* A new member's account in its program (enrol). */
void
ledger_open_account(int64 member_id, int64 program_id)
{
	Member		m;

	Connect(&m);
	store_insert_account(m.w, member_id, program_id);
	Finish(&m);
}

/*
 * Archive ledger partitions: per member one carry_forward entry, created at
 * the horizon, with what the archived entries summed to (so that each
 * balance stays the sum of the ledger once the partitions leave), then the
 * lots and allocations that leave with them (store_archive_rows).  Balances
 * do not move, so no account is locked or written.  The caller locked the
 * partitions against writes and checked that nothing still open needs them.
 */
void
ledger_archive(const ArchiveRequest *r, ArchiveResult *res)
{
	Member		m;
	StringInfoData q;
	Portal		portal;
	int			i;
	char		details[160];
	char		at[MAXDATELEN + 1];

	Connect(&m);
	initStringInfo(&q);
	appendStringInfoString(&q,
						   "SELECT x.member_id, x.program_id, pg_catalog.sum(x.points" I8 ")" I8 ","
						   " pg_catalog.sum(x.held_delta" I8 ")" I8 ", pg_catalog.count(*)"
						   " FROM (");
	for (i = 0; i < r->nparts; i++)
		appendStringInfo(&q, "%sSELECT member_id, program_id, points, held_delta FROM %s",
						 i > 0 ? " UNION ALL " : "",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(r->parts[i])),
													get_rel_name(r->parts[i])));
	appendStringInfoString(&q, ") x GROUP BY x.member_id, x.program_id ORDER BY x.member_id");
	/* as jsonb writes a timestamptz */
	JsonEncodeDateTime(at, TimestampTzGetDatum(r->horizon), TIMESTAMPTZOID, NULL);

	res->carried = 0;
	portal = SPI_cursor_open_with_args(NULL, q.data, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		uint64		row;

		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (row = 0; row < SPI_processed; row++)
		{
			LedgerRow	e = {0};

			CHECK_FOR_INTERRUPTS();
			e.member_id = ColInt8(row, 1);
			e.program_id = ColInt8(row, 2);
			e.kind = "carry_forward";
			e.points = ColInt8(row, 3);
			e.held_delta = ColInt8(row, 4);
			e.reason = cstring_to_text("entries before the archive horizon");
			e.created_at = r->horizon;
			e.occurred_at = r->horizon;
			snprintf(details, sizeof(details),
					 "{\"archived_entries\": " INT64_FORMAT ", \"archived_before\": \"%s\"}",
					 ColInt8(row, 5), at);
			e.details = details;
			store_insert_entry(m.w, &e);
			res->carried++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	pfree(q.data);
	store_archive_rows(m.w, r->parts, r->nparts, r->horizon, r->archive_schema, &res->lots,
					   &res->allocations);
	Finish(&m);
}
