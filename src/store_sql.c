/*
 * store_sql.c
 *		The SQL store: the books' rows written and read by prepared SQL
 *		statements.
 *
 * A statement does everything PostgreSQL does for it, whatever a DBA did to
 * the table: every kind of trigger and rule, defaults, domains, typmods and
 * assignment coercion, row-level security, privileges, replica identity,
 * partition routing, foreign keys.  store.c sends an operation here when
 * the fast store cannot prove it would do the same, when loyalty.fast_store
 * is off, and always on Citus: there loyalty.ledger, loyalty.accounts ... are
 * shell tables whose rows live in shards, usually on another node, and a
 * statement is what Citus routes (executed locally when the call was
 * delegated to the member's node, over a connection otherwise).
 *
 * The statements name every table, function and operator with its schema,
 * read every column as the type the books expect (a column whose type a DBA
 * changed is converted, or the statement says why it cannot be), and name
 * the same columns whatever the call, so that UPDATE OF triggers see one
 * column list.  A column an older schema lacks (before ALTER EXTENSION
 * UPDATE) is left out.  An UPDATE or INSERT that a trigger or rule turned
 * into nothing is an error: the books would no longer balance.
 *
 * The caller is connected to SPI (ledger.c); SPI_tuptable and SPI_processed
 * are restored on return, so a store call never disturbs the caller's last
 * result.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/syscache.h"

#include "loyalty.h"
#include "store.h"
#include "tier.h"

/*
 * Whether loyalty.accounts is a Citus table, cached per backend.  The cache
 * is dropped when any relation's cache entry is reset (create_distributed_
 * table and undistribute_table invalidate the table they convert) and when
 * pg_class or pg_namespace change (the extension dropped and re-created), so
 * on a database without Citus a call costs one test of a static variable.
 */
static bool dist_valid = false;
static bool dist_value = false;
static bool dist_callbacks = false;

static void
InvalidateDistributedRel(Datum arg, Oid relid)
{
	(void) arg;
	(void) relid;
	dist_valid = false;
}

static void
InvalidateDistributedSys(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	dist_valid = false;
}

/* Look loyalty.accounts up in Citus's pg_dist_partition, if there is one. */
static bool
AccountsIsCitusTable(void)
{
	Oid			nspid,
				accounts,
				distrel;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	nspid = get_namespace_oid("loyalty", true);
	if (!OidIsValid(nspid))
		return false;
	accounts = get_relname_relid("accounts", nspid);
	distrel = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	if (!OidIsValid(accounts) || !OidIsValid(distrel))
		return false;

	/* logicalrelid (regclass) is the table's first column */
	rel = table_open(distrel, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(accounts));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Whether the books are Citus tables (distributed or reference), on the
 * coordinator or on a worker: then every row goes through statements.
 */
bool
loyalty_distributed(void)
{
	if (!dist_valid)
	{
		if (!dist_callbacks)
		{
			CacheRegisterRelcacheCallback(InvalidateDistributedRel, (Datum) 0);
			CacheRegisterSyscacheCallback(RELNAMENSP, InvalidateDistributedSys, (Datum) 0);
			CacheRegisterSyscacheCallback(NAMESPACEOID, InvalidateDistributedSys, (Datum) 0);
			dist_callbacks = true;
		}
		dist_value = AccountsIsCitusTable();
		dist_valid = true;
	}
	return dist_value;
}

/* loyalty.books_distributed(): the same, for the batch jobs' SQL */
PG_FUNCTION_INFO_V1(loyalty_books_distributed);
Datum
loyalty_books_distributed(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_BOOL(loyalty_distributed());
}

/* The statements, each built once per variant (optional columns present). */
typedef enum SqlStmt
{
	Q_ACCOUNT,
	Q_ACCOUNT_LOCK,
	Q_PROGRAM,
	Q_LEDGER_INS,
	Q_LOT_INS,
	Q_ACCOUNT_UPD,
	Q_IDEM_INS,
	Q_LOTS_SPENDABLE,
	Q_LOTS_EXPIRED,
	Q_LOTS_OPEN,
	Q_LOT_CHANGE,
	Q_ALLOC_INS,
	Q_ALLOCS,
	Q_ALLOC_RETURN,
	Q_SET_STATUS,
	Q_SET_TIER,
	Q_SET_REFERRAL,
	Q_SET_SEGMENT,
	Q_ACCOUNT_INS,
	Q_IDEM_GET,
	Q_NEXT_ENTRY,
	Q_PROGRESS_GET,
	Q_PROGRESS_INS,
	Q_PROGRESS_UPD,
	Q_STATE_GET,
	Q_STATE_INS,
	Q_STATE_UPD,
	Q_FACTS_INS,
	Q_JOINED,
	NUM_SQL_STMTS
} SqlStmt;

static KeptPlan kept[NUM_SQL_STMTS][3];
static char *texts[NUM_SQL_STMTS][3];

/* Whether the table has the optional column `col` (the caller locked it). */
static bool
HasColumn(StoreTable t, int col)
{
	return store_shape(t)->attno[col] >= 0;
}

/* Append "col::type, ..." for columns 0..ncols-1 of table t. */
static void
AppendColumns(StringInfo buf, StoreTable t, const char *alias)
{
	const StoreTableDef *def = &store_tables[t];
	const TableShape *s = store_shape(t);
	int			i;

	for (i = 0; i < def->ncols; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		if (s->attno[i] < 0)
			appendStringInfo(buf, "NULL::%s", def->cols[i].type);
		else
			appendStringInfo(buf, "%s%s::%s", alias, quote_identifier(def->cols[i].name),
							 def->cols[i].type);
	}
}

/* "remaining > 0", by the generated flag when the table has it (its index). */
static const char *
OpenLotTest(void)
{
	return HasColumn(ST_LOTS, T_IS_OPEN) ? "is_open" : "remaining OPERATOR(loyalty.>) '0'::loyalty.points";
}

/* The text of statement q for the table's present shape. */
static char *
BuildText(SqlStmt q)
{
	StringInfoData b;

	initStringInfo(&b);
	switch (q)
	{
		case Q_ACCOUNT:
		case Q_ACCOUNT_LOCK:
			appendStringInfoString(&b, "SELECT ");
			AppendColumns(&b, ST_ACCOUNTS, "");
			appendStringInfoString(&b, " FROM loyalty.accounts WHERE member_id" EQ "$1");
			if (q == Q_ACCOUNT_LOCK)
				appendStringInfoString(&b, " FOR NO KEY UPDATE");
			break;
		case Q_PROGRAM:
			/* on Citus a reference table: a local read on every node */
			appendStringInfoString(&b, "SELECT ");
			AppendColumns(&b, ST_PROGRAMS, "");
			appendStringInfoString(&b, " FROM loyalty.programs WHERE program_id" EQ "$1");
			break;
		case Q_LEDGER_INS:
			appendStringInfoString(&b,
								   "INSERT INTO loyalty.ledger (member_id, program_id, kind, points, held_delta, amount,"
								   " channel, reference, reason, actor, source_entry, hold_id, idempotency_key,"
								   " created_at, occurred_at, details)"
								   " VALUES ($1, $2, $3, $4" PTS ", $5" PTS ", $6, $7, $8, $9, $10, $11, $12, $13,"
								   " $14, $15, $16) RETURNING entry_id" I8);
			break;
		case Q_LOT_INS:
			appendStringInfoString(&b,
								   "INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining,"
								   " reversed, reversed_amount, vests_at, expires_at, created_at)"
								   " VALUES ($1, $2, $3, $4" PTS ", $5" PTS ", '0'" PTS ", 0, $6, $7, $8)");
			break;
		case Q_ACCOUNT_UPD:

			/*
			 * the points operators raise 22003 on overflow; LEAST and
			 * GREATEST skip NULLs
			 */
			appendStringInfoString(&b,
								   "UPDATE loyalty.accounts SET"
								   " balance = balance OPERATOR(loyalty.+) $2" PTS ","
								   " held = held OPERATOR(loyalty.+) $3" PTS ","
								   " debt = debt OPERATOR(loyalty.+) $4" PTS ","
								   " lifetime_earned = lifetime_earned OPERATOR(loyalty.+) $5" PTS ","
								   " lifetime_redeemed = lifetime_redeemed OPERATOR(loyalty.+) $6" PTS ","
								   " lifetime_expired = lifetime_expired OPERATOR(loyalty.+) $7" PTS ","
								   " first_purchase_at = CASE WHEN $15 THEN NULL ELSE LEAST(first_purchase_at, $9) END,"
								   " last_purchase_at = CASE WHEN $15 THEN NULL ELSE GREATEST(last_purchase_at, $10) END,"
								   " purchase_count = purchase_count" PLUS "$11,"
								   " purchase_days = purchase_days" PLUS "$12,"
								   " purchase_amount = purchase_amount" PLUS "COALESCE($13, 0),"
								   " updated_at = CASE WHEN $16 THEN updated_at ELSE $8 END");
			if (HasColumn(ST_ACCOUNTS, A_NEXT_EXPIRY))
				appendStringInfoString(&b, ", next_expiry_at = CASE WHEN $17 THEN $14 ELSE LEAST(next_expiry_at, $14) END");
			appendStringInfoString(&b, " WHERE member_id" EQ "$1");
			break;
		case Q_IDEM_INS:
			appendStringInfoString(&b,
								   "INSERT INTO loyalty.idempotency_keys (member_id, idempotency_key, operation,"
								   " request_hash, result, entry_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)");
			break;
		case Q_LOTS_SPENDABLE:
		case Q_LOTS_EXPIRED:
		case Q_LOTS_OPEN:
			appendStringInfo(&b,
							 "SELECT lot_id" I8 ", remaining" I8 ", expires_at, created_at, vests_at FROM loyalty.lots"
							 " WHERE member_id" EQ "$1 AND %s", OpenLotTest());
			if (q == Q_LOTS_SPENDABLE)
				appendStringInfoString(&b, " AND vests_at" LE "$2 AND (expires_at IS NULL OR expires_at" GT "$2)");
			else if (q == Q_LOTS_EXPIRED)
				appendStringInfoString(&b, " AND expires_at" LE "$2");
			appendStringInfoString(&b, " ORDER BY expires_at NULLS LAST, created_at, lot_id");
			break;
		case Q_LOT_CHANGE:
			appendStringInfoString(&b,
								   "UPDATE loyalty.lots SET remaining = remaining OPERATOR(loyalty.+) $3" PTS ","
								   " reversed = reversed OPERATOR(loyalty.+) $4" PTS ","
								   " reversed_amount = reversed_amount" PLUS "$5"
								   " WHERE member_id" EQ "$1 AND lot_id" EQ "$2");
			break;
		case Q_ALLOC_INS:
			appendStringInfoString(&b,
								   "INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points, returned)"
								   " VALUES ($1, $2, $3, $4" PTS ", '0'" PTS ")");
			break;
		case Q_ALLOCS:
			appendStringInfoString(&b,
								   "SELECT a.lot_id" I8 ", (a.points" I8 MINUS "a.returned" I8 ")" I8 ","
								   " l.expires_at, l.created_at"
								   " FROM loyalty.allocations a JOIN loyalty.lots l"
								   "  ON l.member_id" EQ "a.member_id AND l.lot_id" EQ "a.lot_id"
								   " WHERE a.member_id" EQ "$1 AND a.entry_id" EQ "$2"
								   " AND a.returned" I8 LT "a.points" I8);
			break;
		case Q_ALLOC_RETURN:
			appendStringInfoString(&b,
								   "UPDATE loyalty.allocations SET returned = returned OPERATOR(loyalty.+) $4" PTS
								   " WHERE member_id" EQ "$1 AND entry_id" EQ "$2 AND lot_id" EQ "$3");
			break;
		case Q_SET_STATUS:
			appendStringInfoString(&b, "UPDATE loyalty.accounts SET status = $2, updated_at = pg_catalog.now()"
								   " WHERE member_id" EQ "$1");
			break;
		case Q_SET_TIER:
			/* now() as $8: Citus allows no volatile function in a CASE */
			appendStringInfoString(&b, "UPDATE loyalty.accounts SET"
								   " tier = CASE WHEN $2 THEN $3::loyalty.tier ELSE tier END,"
								   " tier_since = CASE WHEN $2 THEN $8 ELSE tier_since END,"
								   " tier_locked_until = CASE WHEN $4 THEN $5 ELSE tier_locked_until END,"
								   " tier_grace_until = CASE WHEN $6 THEN $7 ELSE tier_grace_until END,"
								   " updated_at = CASE WHEN $2 THEN $8 ELSE updated_at END"
								   " WHERE member_id" EQ "$1");
			break;
		case Q_SET_REFERRAL:
			appendStringInfoString(&b, "UPDATE loyalty.accounts SET referral_pending = $2"
								   " WHERE member_id" EQ "$1");
			break;
		case Q_SET_SEGMENT:
			appendStringInfoString(&b, "UPDATE loyalty.accounts SET segment = $2, risk_band = $3,"
								   " segment_since = $4 WHERE member_id" EQ "$1");
			break;
		case Q_ACCOUNT_INS:
			appendStringInfoString(&b, "INSERT INTO loyalty.accounts (member_id, program_id) VALUES ($1, $2)");
			break;
		case Q_IDEM_GET:
			appendStringInfoString(&b, "SELECT operation, request_hash" I8 ", result" I8 ", entry_id" I8
								   " FROM loyalty.idempotency_keys"
								   " WHERE member_id" EQ "$1 AND idempotency_key" EQ "$2");
			break;
		case Q_NEXT_ENTRY:
			appendStringInfoString(&b,
								   "SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id'))");
			break;
		case Q_PROGRESS_GET:

			/*
			 * every period of the challenges $3, and the periods $4 of all
			 * ($2)
			 */
			appendStringInfoString(&b,
								   "SELECT challenge_id" I8 ", period_start::pg_catalog.timestamptz,"
								   " period_end::pg_catalog.timestamptz, value::pg_catalog.numeric,"
								   " items::pg_catalog.jsonb, last_item::pg_catalog.text,"
								   " completed_at::pg_catalog.timestamptz, completions::pg_catalog.int4,"
								   " award_entry" I8 ", award_member" I8 ", clawed_back_at::pg_catalog.timestamptz,"
								   " updated_at::pg_catalog.timestamptz"
								   " FROM loyalty.challenge_periods"
								   " WHERE member_id" EQ "$1 AND challenge_id" EQ "ANY ($2)"
								   " AND (challenge_id" EQ "ANY ($3) OR period_start" EQ "ANY ($4))"
								   " ORDER BY challenge_id, period_start DESC");
			break;
		case Q_PROGRESS_INS:
			appendStringInfoString(&b,
								   "INSERT INTO loyalty.challenge_periods (member_id, challenge_id, period_start,"
								   " program_id, period_end, value, items, last_item, completed_at, completions,"
								   " award_entry, award_member, clawed_back_at, updated_at)"
								   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
			break;
		case Q_PROGRESS_UPD:
			appendStringInfoString(&b,
								   "UPDATE loyalty.challenge_periods SET period_end = $4, value = $5, items = $6,"
								   " last_item = $7, completed_at = $8, completions = $9, award_entry = $10,"
								   " award_member = $11, clawed_back_at = $12, updated_at = $13"
								   " WHERE member_id" EQ "$1 AND challenge_id" EQ "$2 AND period_start" EQ "$3");
			break;
		case Q_STATE_GET:
			appendStringInfoString(&b,
								   "SELECT program_id" I8 ", challenge_ids::pg_catalog._int8,"
								   " period_starts::pg_catalog._timestamptz, period_ends::pg_catalog._timestamptz,"
								   " period_values::pg_catalog._numeric, period_items::pg_catalog._jsonb,"
								   " last_items::pg_catalog._text, completed_ats::pg_catalog._timestamptz,"
								   " completion_counts::pg_catalog._int4, award_entries::pg_catalog._int8,"
								   " award_members::pg_catalog._int8, clawed_back_ats::pg_catalog._timestamptz,"
								   " updated_ats::pg_catalog._timestamptz, joined_at::pg_catalog.timestamptz,"
								   " earlier_done::pg_catalog._int8"
								   " FROM loyalty.challenge_state WHERE member_id" EQ "$1");
			break;
		case Q_STATE_INS:
			appendStringInfoString(&b,
								   "INSERT INTO loyalty.challenge_state (member_id, program_id, challenge_ids,"
								   " period_starts, period_ends, period_values, period_items, last_items,"
								   " completed_ats, completion_counts, award_entries, award_members,"
								   " clawed_back_ats, updated_ats, joined_at, earlier_done)"
								   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)");
			break;
		case Q_STATE_UPD:
			appendStringInfoString(&b,
								   "UPDATE loyalty.challenge_state SET challenge_ids = $2, period_starts = $3,"
								   " period_ends = $4, period_values = $5, period_items = $6, last_items = $7,"
								   " completed_ats = $8, completion_counts = $9, award_entries = $10,"
								   " award_members = $11, clawed_back_ats = $12, updated_ats = $13, joined_at = $14,"
								   " earlier_done = $15 WHERE member_id" EQ "$1");
			break;
		case Q_FACTS_INS:
			appendStringInfoString(&b,
								   "INSERT INTO loyalty.challenge_facts (member_id, entry_id, program_id, challenge_ids,"
								   " period_starts, deltas, items, standing) VALUES ($1, $2, $3, $4, $5, $6, $7, 1)");
			break;
		case Q_JOINED:
			appendStringInfoString(&b, "SELECT joined_at::pg_catalog.timestamptz FROM loyalty.members"
								   " WHERE member_id" EQ "$1");
			break;
		default:
			elog(ERROR, "loyalty: unknown statement %d", (int) q);
	}
	return MemoryContextStrdup(TopMemoryContext, b.data);
}

static const Oid q_types[NUM_SQL_STMTS][17] = {
	[Q_ACCOUNT] = {INT8OID},
	[Q_ACCOUNT_LOCK] = {INT8OID},
	[Q_PROGRAM] = {INT8OID},
	[Q_LEDGER_INS] = {INT8OID, INT8OID, TEXTOID, INT8OID, INT8OID, NUMERICOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID},
	[Q_LOT_INS] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID},
	[Q_ACCOUNT_UPD] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT8OID, NUMERICOID, TIMESTAMPTZOID, BOOLOID, BOOLOID, BOOLOID},
	[Q_IDEM_INS] = {INT8OID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID},
	[Q_LOTS_SPENDABLE] = {INT8OID, TIMESTAMPTZOID},
	[Q_LOTS_EXPIRED] = {INT8OID, TIMESTAMPTZOID},
	[Q_LOTS_OPEN] = {INT8OID, TIMESTAMPTZOID},
	[Q_LOT_CHANGE] = {INT8OID, INT8OID, INT8OID, INT8OID, NUMERICOID},
	[Q_ALLOC_INS] = {INT8OID, INT8OID, INT8OID, INT8OID},
	[Q_ALLOCS] = {INT8OID, INT8OID},
	[Q_ALLOC_RETURN] = {INT8OID, INT8OID, INT8OID, INT8OID},
	[Q_SET_STATUS] = {INT8OID, TEXTOID},
	[Q_SET_TIER] = {INT8OID, BOOLOID, TEXTOID, BOOLOID, TIMESTAMPTZOID, BOOLOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID},
	[Q_SET_REFERRAL] = {INT8OID, BOOLOID},
	[Q_SET_SEGMENT] = {INT8OID, TEXTOID, TEXTOID, DATEOID},
	[Q_ACCOUNT_INS] = {INT8OID, INT8OID},
	[Q_IDEM_GET] = {INT8OID, TEXTOID},
	[Q_PROGRESS_GET] = {INT8OID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID},
	[Q_PROGRESS_INS] = {INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID, TIMESTAMPTZOID, NUMERICOID, JSONBOID,
	TEXTOID, TIMESTAMPTZOID, INT4OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID},
	[Q_PROGRESS_UPD] = {INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, NUMERICOID, JSONBOID, TEXTOID,
	TIMESTAMPTZOID, INT4OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID},
	[Q_STATE_GET] = {INT8OID},
	[Q_STATE_INS] = {INT8OID, INT8OID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, NUMERICARRAYOID,
		JSONBARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID, INT8ARRAYOID},
	[Q_STATE_UPD] = {INT8OID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, NUMERICARRAYOID,
		JSONBARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID, INT8ARRAYOID},
	[Q_FACTS_INS] = {INT8OID, INT8OID, INT8OID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, NUMERICARRAYOID,
	JSONBARRAYOID},
	[Q_JOINED] = {INT8OID},
};
static const int q_nargs[NUM_SQL_STMTS] = {
	[Q_ACCOUNT] = 1,
	[Q_ACCOUNT_LOCK] = 1,
	[Q_PROGRAM] = 1,
	[Q_LEDGER_INS] = 16,
	[Q_LOT_INS] = 8,
	[Q_ACCOUNT_UPD] = 17,
	[Q_IDEM_INS] = 7,
	[Q_LOTS_SPENDABLE] = 2,
	[Q_LOTS_EXPIRED] = 2,
	[Q_LOTS_OPEN] = 2,
	[Q_LOT_CHANGE] = 5,
	[Q_ALLOC_INS] = 4,
	[Q_ALLOCS] = 2,
	[Q_ALLOC_RETURN] = 4,
	[Q_SET_STATUS] = 2,
	[Q_SET_TIER] = 8,
	[Q_SET_REFERRAL] = 2,
	[Q_SET_SEGMENT] = 4,
	[Q_ACCOUNT_INS] = 2,
	[Q_IDEM_GET] = 2,
	[Q_NEXT_ENTRY] = 0,
	[Q_PROGRESS_GET] = 4,
	[Q_PROGRESS_INS] = 14,
	[Q_PROGRESS_UPD] = 13,
	[Q_STATE_GET] = 1,
	[Q_STATE_INS] = 16,
	[Q_STATE_UPD] = 15,
	[Q_FACTS_INS] = 7,
	[Q_JOINED] = 1,
};

/* The table whose optional columns choose a statement's variant. */
static int
Variant(SqlStmt q)
{
	switch (q)
	{
		case Q_ACCOUNT:
		case Q_ACCOUNT_LOCK:
		case Q_ACCOUNT_UPD:
			store_lock_table(ST_ACCOUNTS, q == Q_ACCOUNT ? AccessShareLock :
							 q == Q_ACCOUNT_LOCK ? RowShareLock : RowExclusiveLock);
			/* each later schema adds to the one before */
			return !HasColumn(ST_ACCOUNTS, A_NEXT_EXPIRY) ? 0 :
				!HasColumn(ST_ACCOUNTS, A_RISK_BAND) ? 1 : 2;
		case Q_LOTS_SPENDABLE:
		case Q_LOTS_EXPIRED:
		case Q_LOTS_OPEN:
		case Q_ALLOCS:
			store_lock_table(ST_LOTS, AccessShareLock);
			return HasColumn(ST_LOTS, T_IS_OPEN) ? 1 : 0;
		case Q_PROGRAM:
			/* programs' optional columns are read as NULL when missing */
			store_lock_table(ST_PROGRAMS, AccessShareLock);
			return 0;
		default:
			return 0;
	}
}

/* The caller's last SPI result, kept across our statements. */
typedef struct SpiSaved
{
	SPITupleTable *tuptable;
	uint64		processed;
} SpiSaved;

static inline void
Save(SpiSaved *s)
{
	s->tuptable = SPI_tuptable;
	s->processed = SPI_processed;
}

static inline void
Restore(const SpiSaved *s)
{
	SPI_tuptable = s->tuptable;
	SPI_processed = s->processed;
}

/* Execute a statement; returns the SPI code after checking it. */
static int
Exec(SqlStmt q, Datum *values, const char *nulls, int expect)
{
	int			v = Variant(q);
	int			rc;

	if (texts[q][v] == NULL)
		texts[q][v] = BuildText(q);
	/* never read-only: each statement must see the previous one's rows */
	rc = loyalty_run(&kept[q][v], texts[q][v], q_nargs[q], q_types[q], values, nulls, false, 0);
	if (rc != expect)
		elog(ERROR, "loyalty: statement failed (%s): %s", SPI_result_code_string(rc), texts[q][v]);
	return rc;
}

/* A write that a trigger or rule turned into nothing unbalances the books. */
static void
RequireOneRow(const char *what, int64 member_id)
{
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("the %s of member %lld wrote %llu rows, not one", what, (long long) member_id,
						(unsigned long long) SPI_processed),
				 errdetail("A trigger or rule on the table changed the row the books need."),
				 errhint("Triggers and rules on the extension's tables must let its rows through unchanged.")));
}

/* Copy column `col` (1-based) of result row `row` into context `cxt`. */
static Datum
CopyCol(int row, int col, bool *isnull, MemoryContext cxt)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;
	Form_pg_attribute att = TupleDescAttr(desc, col - 1);
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], desc, col, isnull);
	MemoryContext old;

	if (*isnull)
		return (Datum) 0;
	old = MemoryContextSwitchTo(cxt);
	d = datumCopy(d, att->attbyval, att->attlen);
	MemoryContextSwitchTo(old);
	return d;
}

static int64
ColInt8(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static TimestampTz
ColTime(int row, int col, TimestampTz if_null)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? if_null : DatumGetTimestampTz(d);
}

static bool
SqlReadAccount(StoreWriter *w, int64 member_id, bool lock, AccountRead *out)
{
	MemoryContext cxt = CurrentMemoryContext;
	SpiSaved	saved;
	Datum		values[1];
	int			i;

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	Exec(lock ? Q_ACCOUNT_LOCK : Q_ACCOUNT, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		Restore(&saved);
		return false;
	}
	ItemPointerSetInvalid(&out->tid);
	for (i = 0; i < A_NCOLS; i++)
		out->acc[i] = CopyCol(0, i + 1, &out->acc_null[i], cxt);
	if (out->acc_null[A_PROGRAM])
		elog(ERROR, "loyalty: the account of member %lld has no program", (long long) member_id);

	values[0] = out->acc[A_PROGRAM];
	Exec(Q_PROGRAM, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "loyalty: program %lld of member %lld not found",
			 (long long) DatumGetInt64(out->acc[A_PROGRAM]), (long long) member_id);
	for (i = 0; i < P_NCOLS; i++)
		out->prog[i] = CopyCol(0, i + 1, &out->prog_null[i], cxt);
	Restore(&saved);
	return true;
}

static int64
SqlInsertEntry(StoreWriter *w, const LedgerRow *r)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	SpiSaved	saved;
	Datum		values[16];
	char		nulls[16];
	int64		entry_id;

	(void) w;
	Save(&saved);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(r->member_id);
	values[1] = Int64GetDatum(r->program_id);
	values[2] = CStringGetTextDatum(r->kind);
	values[3] = Int64GetDatum(r->points);
	values[4] = Int64GetDatum(r->held_delta);
	values[5] = r->amount;
	nulls[5] = r->amount == (Datum) 0 ? 'n' : ' ';
	values[6] = PointerGetDatum(r->channel);
	nulls[6] = r->channel == NULL ? 'n' : ' ';
	values[7] = PointerGetDatum(r->reference);
	nulls[7] = r->reference == NULL ? 'n' : ' ';
	values[8] = PointerGetDatum(r->reason);
	nulls[8] = r->reason == NULL ? 'n' : ' ';
	values[9] = CStringGetTextDatum(store_user_name());
	values[10] = Int64GetDatum(r->source_entry);
	nulls[10] = r->source_entry == 0 ? 'n' : ' ';
	values[11] = Int64GetDatum(r->hold_id);
	nulls[11] = r->hold_id == 0 ? 'n' : ' ';
	values[12] = PointerGetDatum(r->idem_key);
	nulls[12] = r->idem_key == NULL ? 'n' : ' ';
	values[13] = TimestampTzGetDatum(r->created_at ? r->created_at : now);
	values[14] = TimestampTzGetDatum(r->occurred_at ? r->occurred_at : now);
	values[15] = r->details ? DirectFunctionCall1(jsonb_in, CStringGetDatum(r->details)) : (Datum) 0;
	nulls[15] = r->details ? ' ' : 'n';
	Exec(Q_LEDGER_INS, values, nulls, SPI_OK_INSERT_RETURNING);
	RequireOneRow("ledger entry", r->member_id);
	entry_id = ColInt8(0, 1);
	Restore(&saved);
	return entry_id;
}

static int64
SqlInsertLot(StoreWriter *w, const LotRow *l)
{
	SpiSaved	saved;
	Datum		values[8];
	char		nulls[8];

	(void) w;
	Save(&saved);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(l->member_id);
	values[1] = Int64GetDatum(l->lot_id);
	values[2] = Int64GetDatum(l->entry_id);
	values[3] = Int64GetDatum(l->original);
	values[4] = Int64GetDatum(l->remaining);
	values[5] = TimestampTzGetDatum(l->vests_at);
	values[6] = TimestampTzGetDatum(l->expires_at);
	nulls[6] = l->expires_at == 0 ? 'n' : ' ';
	values[7] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Exec(Q_LOT_INS, values, nulls, SPI_OK_INSERT);
	RequireOneRow("lot", l->member_id);
	Restore(&saved);
	return l->lot_id;
}

static void
SqlUpdateAccount(StoreWriter *w, int64 member_id, ItemPointer tid, const AccountDelta *d)
{
	SpiSaved	saved;
	Datum		values[17];
	char		nulls[17];

	(void) w;
	(void) tid;
	Save(&saved);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(d->balance);
	values[2] = Int64GetDatum(d->held);
	values[3] = Int64GetDatum(d->debt);
	values[4] = Int64GetDatum(d->earned);
	values[5] = Int64GetDatum(d->redeemed);
	values[6] = Int64GetDatum(d->expired);
	values[7] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	values[8] = TimestampTzGetDatum(d->purchase_first);
	nulls[8] = d->purchase_first == 0 ? 'n' : ' ';
	values[9] = TimestampTzGetDatum(d->purchase_last);
	nulls[9] = d->purchase_last == 0 ? 'n' : ' ';
	values[10] = Int64GetDatum(d->purchase_count);
	values[11] = Int64GetDatum(d->purchase_days);
	values[12] = d->purchase_amount;
	nulls[12] = d->purchase_amount == (Datum) 0 ? 'n' : ' ';
	values[13] = TimestampTzGetDatum(d->expiry_floor);
	nulls[13] = d->expiry_floor == 0 ? 'n' : ' ';
	values[14] = BoolGetDatum(d->clear_purchase_dates);
	values[15] = BoolGetDatum(d->keep_updated_at);
	values[16] = BoolGetDatum(d->exact_next_expiry);
	Exec(Q_ACCOUNT_UPD, values, nulls, SPI_OK_UPDATE);
	RequireOneRow("account update", member_id);
	Restore(&saved);
}

static void
SqlInsertIdempotency(StoreWriter *w, int64 member_id, text *key, const char *op, int64 hash,
					 int64 result, int64 entry_id)
{
	SpiSaved	saved;
	Datum		values[7];
	char		nulls[7];

	(void) w;
	Save(&saved);
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(member_id);
	values[1] = PointerGetDatum(key);
	values[2] = CStringGetTextDatum(op);
	values[3] = Int64GetDatum(hash);
	values[4] = Int64GetDatum(result);
	values[5] = Int64GetDatum(entry_id);
	nulls[5] = entry_id == 0 ? 'n' : ' ';
	values[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Exec(Q_IDEM_INS, values, nulls, SPI_OK_INSERT);
	RequireOneRow("idempotency key", member_id);
	Restore(&saved);
}

static int
SqlOpenLots(StoreWriter *w, int64 member_id, LotFilter f, TimestampTz at, int64 need, OpenLot **out)
{
	MemoryContext cxt = CurrentMemoryContext;
	SpiSaved	saved;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	OpenLot    *lots;
	uint64		n,
				i;

	(void) w;
	(void) need;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = TimestampTzGetDatum(at);
	if (f == LOTS_ALL_OPEN)
		nulls[1] = 'n';
	Exec(f == LOTS_SPENDABLE ? Q_LOTS_SPENDABLE : f == LOTS_EXPIRED ? Q_LOTS_EXPIRED : Q_LOTS_OPEN,
		 values, nulls, SPI_OK_SELECT);
	n = SPI_processed;
	lots = MemoryContextAlloc(cxt, sizeof(OpenLot) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		lots[i].lot_id = ColInt8(i, 1);
		lots[i].remaining = ColInt8(i, 2);
		lots[i].expires_at = ColTime(i, 3, DT_NOEND);
		lots[i].created_at = ColTime(i, 4, 0);
		lots[i].vests_at = ColTime(i, 5, 0);
		ItemPointerSetInvalid(&lots[i].tid);
	}
	Restore(&saved);
	if (n == 0)
	{
		pfree(lots);
		lots = NULL;
	}
	*out = lots;
	return (int) n;
}

static void
SqlChangeLot(StoreWriter *w, int64 member_id, const OpenLot *lot, int64 remaining_delta,
			 int64 reversed_delta, Datum reversed_amount)
{
	SpiSaved	saved;
	Datum		values[5];

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(lot->lot_id);
	values[2] = Int64GetDatum(remaining_delta);
	values[3] = Int64GetDatum(reversed_delta);
	values[4] = reversed_amount ? reversed_amount : NumericGetDatum(int64_to_numeric(0));
	Exec(Q_LOT_CHANGE, values, NULL, SPI_OK_UPDATE);
	RequireOneRow("lot update", member_id);
	Restore(&saved);
}

static void
SqlInsertAllocation(StoreWriter *w, int64 member_id, int64 entry_id, int64 lot_id, int64 points)
{
	SpiSaved	saved;
	Datum		values[4];

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(entry_id);
	values[2] = Int64GetDatum(lot_id);
	values[3] = Int64GetDatum(points);
	Exec(Q_ALLOC_INS, values, NULL, SPI_OK_INSERT);
	RequireOneRow("allocation", member_id);
	Restore(&saved);
}

static int
SqlAllocations(StoreWriter *w, int64 member_id, int64 entry_id, Allocation **out)
{
	MemoryContext cxt = CurrentMemoryContext;
	SpiSaved	saved;
	Datum		values[2];
	Allocation *allocs;
	uint64		n,
				i;

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(entry_id);
	Exec(Q_ALLOCS, values, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	allocs = MemoryContextAlloc(cxt, sizeof(Allocation) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		allocs[i].lot_id = ColInt8(i, 1);
		allocs[i].open = ColInt8(i, 2);
		allocs[i].lot_expires_at = ColTime(i, 3, DT_NOEND);
		allocs[i].lot_created_at = ColTime(i, 4, 0);
		ItemPointerSetInvalid(&allocs[i].lot_tid);
	}
	Restore(&saved);
	if (n == 0)
	{
		pfree(allocs);
		allocs = NULL;
	}
	*out = allocs;
	return (int) n;
}

static void
SqlReturnAllocation(StoreWriter *w, int64 member_id, int64 entry_id, int64 lot_id, int64 points)
{
	SpiSaved	saved;
	Datum		values[4];

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(entry_id);
	values[2] = Int64GetDatum(lot_id);
	values[3] = Int64GetDatum(points);
	Exec(Q_ALLOC_RETURN, values, NULL, SPI_OK_UPDATE);
	RequireOneRow("allocation update", member_id);
	Restore(&saved);
}

static void
SqlSetStatus(StoreWriter *w, int64 member_id, const char *status)
{
	SpiSaved	saved;
	Datum		values[2];

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = CStringGetTextDatum(status);
	Exec(Q_SET_STATUS, values, NULL, SPI_OK_UPDATE);
	RequireOneRow("account status update", member_id);
	Restore(&saved);
}

static void
SqlSetTier(StoreWriter *w, int64 member_id, const TierChange *c)
{
	SpiSaved	saved;
	Datum		values[8];
	char		nulls[8];

	(void) w;
	memset(nulls, ' ', sizeof(nulls));
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = BoolGetDatum(c->set_tier);
	/* the tier as text: its type has no fixed OID */
	if (c->set_tier && !c->tier_null)
		values[2] = CStringGetTextDatum(DatumGetCString(DirectFunctionCall1(tier_out, c->tier)));
	else
		nulls[2] = 'n';
	values[3] = BoolGetDatum(c->set_locked);
	values[4] = TimestampTzGetDatum(c->locked_until);
	nulls[4] = c->locked_null ? 'n' : ' ';
	values[5] = BoolGetDatum(c->set_grace);
	values[6] = TimestampTzGetDatum(c->grace_until);
	nulls[6] = c->grace_null ? 'n' : ' ';
	values[7] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Exec(Q_SET_TIER, values, nulls, SPI_OK_UPDATE);
	RequireOneRow("account tier update", member_id);
	Restore(&saved);
}

static void
SqlSetReferral(StoreWriter *w, int64 member_id, bool pending)
{
	SpiSaved	saved;
	Datum		values[2];

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = BoolGetDatum(pending);
	Exec(Q_SET_REFERRAL, values, NULL, SPI_OK_UPDATE);
	RequireOneRow("account referral update", member_id);
	Restore(&saved);
}

static void
SqlSetSegment(StoreWriter *w, int64 member_id, const SegmentChange *c)
{
	SpiSaved	saved;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = PointerGetDatum(c->segment);
	nulls[1] = c->segment ? ' ' : 'n';
	values[2] = PointerGetDatum(c->risk_band);
	nulls[2] = c->risk_band ? ' ' : 'n';
	values[3] = DateADTGetDatum(c->since);
	nulls[3] = c->since_null ? 'n' : ' ';
	Exec(Q_SET_SEGMENT, values, nulls, SPI_OK_UPDATE);
	RequireOneRow("account segment update", member_id);
	Restore(&saved);
}

static bool
SqlReadIdempotency(StoreWriter *w, int64 member_id, text *key, IdemRow *out)
{
	SpiSaved	saved;
	Datum		values[2];
	bool		found;

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = PointerGetDatum(key);
	Exec(Q_IDEM_GET, values, NULL, SPI_OK_SELECT);
	found = SPI_processed > 0;
	if (found)
	{
		char	   *op = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		strlcpy(out->operation, op ? op : "", sizeof(out->operation));
		out->request_hash = ColInt8(0, 2);
		out->result = ColInt8(0, 3);
		out->entry_id = ColInt8(0, 4);
	}
	Restore(&saved);
	return found;
}

/* A new member's account: the books' columns start at their defaults. */
void
sql_insert_account(int64 member_id, int64 program_id)
{
	SpiSaved	saved;
	Datum		values[2];

	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(program_id);
	Exec(Q_ACCOUNT_INS, values, NULL, SPI_OK_INSERT);
	RequireOneRow("account insert", member_id);
	Restore(&saved);
}

/* The archived partitions, as one UNION ALL of their (member, entry). */
static void
AppendArchived(StringInfo b, const Oid *parts, int nparts)
{
	int			i;

	for (i = 0; i < nparts; i++)
		appendStringInfo(b, "%sSELECT member_id, entry_id FROM %s", i > 0 ? " UNION ALL " : "",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(parts[i])),
													get_rel_name(parts[i])));
}

/* ", kept AS (INSERT INTO schema.table SELECT * FROM gone)" or nothing. */
static void
AppendKept(StringInfo b, const char *archive_schema, const char *table)
{
	if (archive_schema)
		appendStringInfo(b, ", kept AS (INSERT INTO %s SELECT * FROM gone)",
						 quote_qualified_identifier(archive_schema, table));
}

static int64
RunCount(const char *sql, TimestampTz param)
{
	SpiSaved	saved;
	int64		n;
	Oid			type = TIMESTAMPTZOID;
	Datum		value = TimestampTzGetDatum(param);

	Save(&saved);
	if (SPI_execute_with_args(sql, param ? 1 : 0, &type, &value, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "loyalty: archive statement failed: %s", sql);
	n = ColInt8(0, 1);
	Restore(&saved);
	return n;
}

/* The allocations of the archived debits leave (into the archive). */
int64
sql_archive_allocations(const Oid *parts, int nparts, const char *archive_schema)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoString(&b, "WITH gone AS (DELETE FROM loyalty.allocations a USING (");
	AppendArchived(&b, parts, nparts);
	appendStringInfoString(&b, ") x WHERE a.member_id" EQ "x.member_id AND a.entry_id" EQ "x.entry_id"
						   " RETURNING a.*)");
	AppendKept(&b, archive_schema, "allocations");
	appendStringInfoString(&b, " SELECT pg_catalog.count(*) FROM gone");
	return RunCount(b.data, 0);
}

/*
 * The closed lots credited before the horizon that no remaining allocation
 * names leave (a later debit may still be refunded into an old lot: that lot
 * stays).
 */
int64
sql_archive_lots(TimestampTz horizon, const char *archive_schema)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoString(&b, "WITH gone AS (DELETE FROM loyalty.lots l"
						   " WHERE l.created_at" LT "$1 AND l.remaining" I8 EQ "0"
						   " AND NOT EXISTS (SELECT 1 FROM loyalty.allocations a"
						   "  WHERE a.member_id" EQ "l.member_id AND a.lot_id" EQ "l.lot_id)"
						   " RETURNING l.*)");
	AppendKept(&b, archive_schema, "lots");
	appendStringInfoString(&b, " SELECT pg_catalog.count(*) FROM gone");
	return RunCount(b.data, horizon);
}

static int64
SqlNextEntryId(StoreWriter *w)
{
	SpiSaved	saved;
	int64		id;

	(void) w;
	Save(&saved);
	Exec(Q_NEXT_ENTRY, NULL, NULL, SPI_OK_SELECT);
	id = ColInt8(0, 1);
	Restore(&saved);
	return id;
}

/* read_progress: one statement for all the periods asked for. */
static int
SqlReadProgress(StoreWriter *w, int64 member_id, const int64 *ids, const TimestampTz *starts,
				const bool *every, int n, ProgressRow **out)
{
	MemoryContext cxt = CurrentMemoryContext;
	SpiSaved	saved;
	Datum		values[4];
	Datum	   *all = palloc(sizeof(Datum) * n);
	Datum	   *whole = palloc(sizeof(Datum) * n);
	Datum	   *times = palloc(sizeof(Datum) * n);
	int			nwhole = 0,
				ntimes = 0;
	ProgressRow *rows;
	int			nrows = 0;
	uint64		r;
	int			i;

	(void) w;
	for (i = 0; i < n; i++)
	{
		all[i] = Int64GetDatum(ids[i]);
		if (every[i])
			whole[nwhole++] = Int64GetDatum(ids[i]);
		else
			times[ntimes++] = TimestampTzGetDatum(starts[i]);
	}
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	values[1] = PointerGetDatum(construct_array(all, n, INT8OID, 8, true, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(whole, nwhole, INT8OID, 8, true, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(times, ntimes, TIMESTAMPTZOID, 8, true, TYPALIGN_DOUBLE));
	Exec(Q_PROGRESS_GET, values, NULL, SPI_OK_SELECT);
	rows = MemoryContextAlloc(cxt, sizeof(ProgressRow) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		ProgressRow *p = &rows[nrows];
		bool		isnull;
		Datum		d;
		bool		wanted = false;

		p->challenge_id = ColInt8(r, 1);
		p->period_start = ColTime(r, 2, 0);
		/* the statement's filter is looser than the request */
		for (i = 0; i < n && !wanted; i++)
			wanted = ids[i] == p->challenge_id && (every[i] || starts[i] == p->period_start);
		if (!wanted)
			continue;
		(void) SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &p->end_null);
		p->period_end = ColTime(r, 3, 0);
		p->value = CopyCol(r, 4, &isnull, cxt);
		if (isnull)
			p->value = NumericGetDatum(int64_to_numeric(0));
		p->items = CopyCol(r, 5, &isnull, cxt);
		d = CopyCol(r, 6, &isnull, cxt);
		p->last_item = isnull ? NULL : DatumGetTextPP(d);
		(void) SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 7, &isnull);
		p->completed = !isnull;
		p->completed_at = ColTime(r, 7, 0);
		p->completions = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 8, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 9, &p->award_null);
		p->award_entry = p->award_null ? 0 : DatumGetInt64(d);
		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 10, &p->award_member_null);
		p->award_member = p->award_member_null ? 0 : DatumGetInt64(d);
		(void) SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 11, &p->clawed_null);
		p->clawed_back_at = ColTime(r, 11, 0);
		p->updated_at = ColTime(r, 12, 0);
		p->slot = -1;
		ItemPointerSetInvalid(&p->tid);
		p->tuple = NULL;
		nrows++;
	}
	Restore(&saved);
	*out = rows;
	return nrows;
}

/* A period's columns from period_end to updated_at, as its statements' last ten parameters. */
static void
ProgressParams(const ProgressRow *p, Datum *values, char *nulls)
{
	values[0] = TimestampTzGetDatum(p->period_end);
	nulls[0] = p->end_null ? 'n' : ' ';
	values[1] = p->value;
	values[2] = p->items;
	nulls[2] = p->items ? ' ' : 'n';
	values[3] = PointerGetDatum(p->last_item);
	nulls[3] = p->last_item ? ' ' : 'n';
	values[4] = TimestampTzGetDatum(p->completed_at);
	nulls[4] = p->completed ? ' ' : 'n';
	values[5] = Int32GetDatum(p->completions);
	values[6] = Int64GetDatum(p->award_entry);
	nulls[6] = p->award_null ? 'n' : ' ';
	values[7] = Int64GetDatum(p->award_member);
	nulls[7] = p->award_member_null ? 'n' : ' ';
	values[8] = TimestampTzGetDatum(p->clawed_back_at);
	nulls[8] = p->clawed_null ? 'n' : ' ';
	values[9] = TimestampTzGetDatum(p->updated_at);
}

static void
SqlInsertProgress(StoreWriter *w, int64 member_id, int64 program_id, const ProgressRow *p)
{
	SpiSaved	saved;
	Datum		values[14];
	char		nulls[14];

	(void) w;
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(p->challenge_id);
	values[2] = TimestampTzGetDatum(p->period_start);
	values[3] = Int64GetDatum(program_id);
	ProgressParams(p, &values[4], &nulls[4]);
	Save(&saved);
	Exec(Q_PROGRESS_INS, values, nulls, SPI_OK_INSERT);
	RequireOneRow("challenge progress insert", member_id);
	Restore(&saved);
}

static void
SqlUpdateProgress(StoreWriter *w, int64 member_id, const ProgressRow *p)
{
	SpiSaved	saved;
	Datum		values[13];
	char		nulls[13];

	(void) w;
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(member_id);
	values[1] = Int64GetDatum(p->challenge_id);
	values[2] = TimestampTzGetDatum(p->period_start);
	ProgressParams(p, &values[3], &nulls[3]);
	Save(&saved);
	Exec(Q_PROGRESS_UPD, values, nulls, SPI_OK_UPDATE);
	RequireOneRow("challenge progress update", member_id);
	Restore(&saved);
}

/* read_state: the member's challenge_state row, its arrays in the caller's context. */
static bool
SqlReadState(StoreWriter *w, int64 member_id, StateRow *out)
{
	MemoryContext cxt = CurrentMemoryContext;
	SpiSaved	saved;
	Datum		values[1];

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	Exec(Q_STATE_GET, values, NULL, SPI_OK_SELECT);
	out->found = SPI_processed > 0;
	out->tuple = NULL;
	ItemPointerSetInvalid(&out->tid);
	if (out->found)
	{
		out->cols[SS_MEMBER] = Int64GetDatum(member_id);
		out->nulls[SS_MEMBER] = false;
		out->cols[SS_PROGRAM] = Int64GetDatum(ColInt8(0, 1));
		out->nulls[SS_PROGRAM] = false;
		for (int c = SS_IDS; c < SS_NCOLS; c++)
			out->cols[c] = CopyCol(0, c, &out->nulls[c], cxt);
	}
	Restore(&saved);
	return out->found;
}

/* write_state: an UPDATE of the row read_state found, or an INSERT. */
static void
SqlWriteState(StoreWriter *w, int64 member_id, const StateRow *r)
{
	SpiSaved	saved;
	Datum		values[SS_NCOLS];
	char		nulls[SS_NCOLS];
	int			c;

	(void) w;
	for (c = 0; c < SS_NCOLS; c++)
	{
		values[c] = r->cols[c];
		nulls[c] = r->nulls[c] ? 'n' : ' ';
	}
	values[SS_MEMBER] = Int64GetDatum(member_id);
	nulls[SS_MEMBER] = ' ';
	Save(&saved);
	if (r->found)
	{
		/* the UPDATE's parameters: member, then the arrays */
		values[SS_PROGRAM] = values[SS_MEMBER];
		nulls[SS_PROGRAM] = ' ';
		Exec(Q_STATE_UPD, &values[SS_PROGRAM], &nulls[SS_PROGRAM], SPI_OK_UPDATE);
		RequireOneRow("challenge state update", member_id);
	}
	else
	{
		Exec(Q_STATE_INS, values, nulls, SPI_OK_INSERT);
		RequireOneRow("challenge state insert", member_id);
	}
	Restore(&saved);
}

static void
SqlInsertChallengeFacts(StoreWriter *w, const ChallengeFactsRow *f)
{
	SpiSaved	saved;
	Datum		values[7];

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(f->member_id);
	values[1] = Int64GetDatum(f->entry_id);
	values[2] = Int64GetDatum(f->program_id);
	values[3] = f->challenge_ids;
	values[4] = f->period_starts;
	values[5] = f->deltas;
	values[6] = f->items;
	Exec(Q_FACTS_INS, values, NULL, SPI_OK_INSERT);
	RequireOneRow("challenge facts insert", f->member_id);
	Restore(&saved);
}

static bool
SqlReadJoined(StoreWriter *w, int64 member_id, TimestampTz *joined)
{
	SpiSaved	saved;
	Datum		values[1];
	bool		found;

	(void) w;
	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	Exec(Q_JOINED, values, NULL, SPI_OK_SELECT);
	found = SPI_processed == 1;
	if (found)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull)
			elog(ERROR, "loyalty: member %lld has no joined_at", (long long) member_id);
		*joined = DatumGetTimestampTz(d);
	}
	Restore(&saved);
	return found;
}

const StoreRoutine sql_store = {
	.name = "sql",
	.read_account = SqlReadAccount,
	.insert_entry = SqlInsertEntry,
	.insert_lot = SqlInsertLot,
	.update_account = SqlUpdateAccount,
	.insert_idempotency = SqlInsertIdempotency,
	.read_idempotency = SqlReadIdempotency,
	.open_lots = SqlOpenLots,
	.change_lot = SqlChangeLot,
	.insert_allocation = SqlInsertAllocation,
	.allocations = SqlAllocations,
	.return_allocation = SqlReturnAllocation,
	.set_status = SqlSetStatus,
	.set_tier = SqlSetTier,
	.set_referral = SqlSetReferral,
	.set_segment = SqlSetSegment,
	.next_entry_id = SqlNextEntryId,
	.read_progress = SqlReadProgress,
	.insert_progress = SqlInsertProgress,
	.update_progress = SqlUpdateProgress,
	.read_state = SqlReadState,
	.write_state = SqlWriteState,
	.insert_challenge_facts = SqlInsertChallengeFacts,
	.read_joined = SqlReadJoined,
};
