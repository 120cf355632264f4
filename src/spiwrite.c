/*
 * spiwrite.c
 *		The write path's rows (direct.h) written by SQL statements, for a
 *		database whose loyalty tables are Citus tables.
 *
 * Why: on a Citus node loyalty.ledger, loyalty.lots, loyalty.accounts ... are
 * shell tables; the rows live in shards, usually on another node.  direct.c
 * writes through the table AM into the relation it opens, which would be the
 * empty shell.  A statement is what Citus routes: to the member's shard on
 * the node that holds it, executed locally when the call was delegated to
 * that node (loyalty.distribute() registers the write API as distributed
 * functions), or over one connection from the coordinator otherwise.
 *
 * Each direct_* function starts with `if (loyalty_distributed()) return
 * spi_...;`.  The statements are prepared once per backend and kept, every
 * table, function and operator schema-qualified.  The caller is connected to
 * SPI (ledger.c's Connect()); SPI_tuptable and SPI_processed are restored on
 * return, so a direct_* call never disturbs the caller's last result.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_namespace.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "direct.h"
#include "loyalty.h"

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
 * Whether the write path must go through SQL statements: the citus
 * extension exists in this database and loyalty.accounts is one of its
 * tables (distributed or reference), on the coordinator or on a worker.
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

/* The statements of the SQL write path, prepared once per backend. */
typedef enum SpiStmt
{
	W_ACCOUNT,
	W_ACCOUNT_LOCK,
	W_PROGRAM,
	W_LEDGER_INS,
	W_LOT_INS,
	W_ACCOUNT_UPD,
	W_IDEM_INS,
	NUM_SPI_STMTS
} SpiStmt;

typedef struct SpiStmtDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[20];
} SpiStmtDef;

/* in AccountField order */
#define ACCOUNT_COLS \
	"balance, held, debt, status, program_id, first_purchase_at, last_purchase_at," \
	" referral_pending, tier, segment, next_expiry_at"
/* in ProgramField order */
#define PROGRAM_COLS \
	"earn_rate, rounding, expiry_period, pending_period, refund_policy, max_hold_ttl," \
	" closed_through, event_kinds, time_zone, rules_version, tier_metric"

static const SpiStmtDef spi_defs[NUM_SPI_STMTS] = {
	[W_ACCOUNT] = {
		"SELECT " ACCOUNT_COLS " FROM loyalty.accounts WHERE member_id" EQ "$1",
	1, {INT8OID}},
	[W_ACCOUNT_LOCK] = {
		"SELECT " ACCOUNT_COLS " FROM loyalty.accounts WHERE member_id" EQ "$1"
		" FOR NO KEY UPDATE",
	1, {INT8OID}},
	/* a reference table: a local read on every node */
	[W_PROGRAM] = {
		"SELECT " PROGRAM_COLS " FROM loyalty.programs WHERE program_id" EQ "$1",
	1, {INT8OID}},
	[W_LEDGER_INS] = {
		"INSERT INTO loyalty.ledger (member_id, program_id, kind, points, held_delta, amount,"
		" channel, reference, reason, actor, source_entry, hold_id, idempotency_key, created_at,"
		" occurred_at, details)"
		" VALUES ($1, $2, $3, $4" PTS ", $5" PTS ", $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
		" RETURNING entry_id",
		16, {INT8OID, INT8OID, TEXTOID, INT8OID, INT8OID, NUMERICOID, TEXTOID, TEXTOID, TEXTOID,
			TEXTOID, INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID}},
	[W_LOT_INS] = {
		"INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, reversed,"
		" reversed_amount, vests_at, expires_at, created_at)"
		" VALUES ($1, $2, $2, $3" PTS ", $4" PTS ", '0'" PTS ", 0, $5, $6, $7)",
	7, {INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID}},
	/* $9: a purchase at $10; the points operators raise 22003 on overflow */
	[W_ACCOUNT_UPD] = {
		"UPDATE loyalty.accounts SET"
		" balance = balance OPERATOR(loyalty.+) $2" PTS ","
		" held = held OPERATOR(loyalty.+) $3" PTS ","
		" debt = debt OPERATOR(loyalty.+) $4" PTS ","
		" lifetime_earned = lifetime_earned OPERATOR(loyalty.+) $5" PTS ","
		" lifetime_redeemed = lifetime_redeemed OPERATOR(loyalty.+) $6" PTS ","
		" lifetime_expired = lifetime_expired OPERATOR(loyalty.+) $7" PTS ","
		" first_purchase_at = CASE WHEN $9 AND (first_purchase_at IS NULL OR $10" LT "first_purchase_at)"
		"  THEN $10 ELSE first_purchase_at END,"
		" last_purchase_at = CASE WHEN $9 AND (last_purchase_at IS NULL OR $10" GT "last_purchase_at)"
		"  THEN $10 ELSE last_purchase_at END,"
		" purchase_count = purchase_count" PLUS "$11,"
		" purchase_days = purchase_days" PLUS "$12,"
		" purchase_amount = CASE WHEN $13 IS NULL THEN purchase_amount ELSE purchase_amount" PLUS "$13 END,"
		" updated_at = $8,"
		/* LEAST ignores NULLs: a NULL $14 keeps the bound, a NULL bound takes $14 */
		" next_expiry_at = LEAST(next_expiry_at, $14)"
		" WHERE member_id" EQ "$1",
		14, {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID,
			BOOLOID, TIMESTAMPTZOID, INT8OID, INT8OID, NUMERICOID, TIMESTAMPTZOID}},
	[W_IDEM_INS] = {
		"INSERT INTO loyalty.idempotency_keys (member_id, idempotency_key, operation, request_hash,"
		" result, entry_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
	7, {INT8OID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID}},
};

static SPIPlanPtr spi_plans[NUM_SPI_STMTS];

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

/* Execute a kept statement (prepared on first use); returns the SPI code. */
static int
Exec(SpiStmt s, Datum *values, const char *nulls, int expect)
{
	int			rc;

	if (spi_plans[s] == NULL)
		spi_plans[s] = loyalty_prepare(spi_defs[s].sql, spi_defs[s].nargs,
									   (Oid *) spi_defs[s].argtypes);
	/* never read-only: each statement must see the previous one's rows */
	rc = loyalty_execute(spi_plans[s], values, nulls, false, 0);
	if (rc != expect)
		elog(ERROR, "loyalty: write statement %d failed: %s", (int) s, SPI_result_code_string(rc));
	return rc;
}

/* Copy column `col` (1-based) of the first result row into the caller's context. */
static Datum
CopyCol(int col, bool *isnull, MemoryContext cxt)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;
	Form_pg_attribute att = TupleDescAttr(desc, col - 1);
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], desc, col, isnull);
	MemoryContext old;

	if (*isnull)
		return (Datum) 0;
	old = MemoryContextSwitchTo(cxt);
	d = datumCopy(d, att->attbyval, att->attlen);
	MemoryContextSwitchTo(old);
	return d;
}

/* direct_read_account by statements; the tid is unused. */
bool
spi_read_account(int64 member_id, bool lock, AccountRead *out)
{
	MemoryContext cxt = CurrentMemoryContext;
	SpiSaved	saved;
	Datum		values[1];
	int			i;

	Save(&saved);
	values[0] = Int64GetDatum(member_id);
	Exec(lock ? W_ACCOUNT_LOCK : W_ACCOUNT, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		Restore(&saved);
		return false;
	}
	ItemPointerSetInvalid(&out->tid);
	for (i = 0; i < AF_COUNT; i++)
		out->acc[i] = CopyCol(i + 1, &out->acc_null[i], cxt);
	if (out->acc_null[AF_PROGRAM])
		elog(ERROR, "loyalty: the account of member %lld has no program", (long long) member_id);

	values[0] = out->acc[AF_PROGRAM];
	Exec(W_PROGRAM, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "loyalty: program %lld of member %lld not found",
			 (long long) DatumGetInt64(out->acc[AF_PROGRAM]), (long long) member_id);
	for (i = 0; i < PF_COUNT; i++)
		out->prog[i] = CopyCol(i + 1, &out->prog_null[i], cxt);
	Restore(&saved);
	return true;
}

/*
 * A writer is only a marker here: statements need no state between calls.
 */
static char spi_writer_marker;

DirectWriter *
spi_begin(void)
{
	return (DirectWriter *) &spi_writer_marker;
}

void
spi_end(DirectWriter *w)
{
	Assert(w == (DirectWriter *) &spi_writer_marker);
	(void) w;
}

/* direct_insert_entry by statements: the ledger row, then a credit's lot. */
int64
spi_insert_entry(DirectWriter *w, const LedgerRow *r)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	SpiSaved	saved;
	Datum		values[16];
	char		nulls[16];
	bool		isnull;
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
	/* the role that called, not the extension owner the call runs as */
	values[9] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	values[10] = Int64GetDatum(r->source_entry);
	nulls[10] = r->source_entry == 0 ? 'n' : ' ';
	values[11] = Int64GetDatum(r->hold_id);
	nulls[11] = r->hold_id == 0 ? 'n' : ' ';
	values[12] = PointerGetDatum(r->idem_key);
	nulls[12] = r->idem_key == NULL ? 'n' : ' ';
	values[13] = TimestampTzGetDatum(now);
	values[14] = TimestampTzGetDatum(r->occurred_at ? r->occurred_at : now);
	values[15] = r->details ? DirectFunctionCall1(jsonb_in, CStringGetDatum(r->details)) : (Datum) 0;
	nulls[15] = r->details ? ' ' : 'n';
	Exec(W_LEDGER_INS, values, nulls, SPI_OK_INSERT_RETURNING);
	if (SPI_processed != 1)
		elog(ERROR, "loyalty: ledger insert returned %llu rows", (unsigned long long) SPI_processed);
	entry_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	if (r->lot_original > 0)
	{
		memset(nulls, ' ', sizeof(nulls));
		values[0] = Int64GetDatum(r->member_id);
		values[1] = Int64GetDatum(entry_id);
		values[2] = Int64GetDatum(r->lot_original);
		values[3] = Int64GetDatum(r->lot_remaining);
		values[4] = TimestampTzGetDatum(r->lot_vests_at);
		values[5] = TimestampTzGetDatum(r->lot_expires_at);
		nulls[5] = r->lot_expires_at == 0 ? 'n' : ' ';
		values[6] = TimestampTzGetDatum(now);
		Exec(W_LOT_INS, values, nulls, SPI_OK_INSERT);
	}
	Restore(&saved);
	return entry_id;
}

/* direct_update_account by a statement (the row is found by its key). */
void
spi_update_account(DirectWriter *w, int64 member_id, const AccountDelta *d)
{
	SpiSaved	saved;
	Datum		values[14];
	char		nulls[14];

	(void) w;
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
	values[8] = BoolGetDatum(d->purchase);
	values[9] = TimestampTzGetDatum(d->purchase_at);
	values[10] = Int64GetDatum(d->purchase_count);
	values[11] = Int64GetDatum(d->purchase_days);
	values[12] = d->purchase_amount;
	nulls[12] = d->purchase_amount == (Datum) 0 ? 'n' : ' ';
	values[13] = TimestampTzGetDatum(d->expiry_floor);
	nulls[13] = d->expiry_floor == 0 ? 'n' : ' ';
	Exec(W_ACCOUNT_UPD, values, nulls, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		elog(ERROR, "loyalty: account row of member %lld not found", (long long) member_id);
	Restore(&saved);
}

/* direct_insert_idempotency by a statement. */
void
spi_insert_idempotency(DirectWriter *w, int64 member_id, text *key, const char *op,
					   int64 hash, int64 result, int64 entry_id)
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
	Exec(W_IDEM_INS, values, nulls, SPI_OK_INSERT);
	Restore(&saved);
}

/*
 * direct_consume_lots: ledger.c's own statement (S_CONSUME) does it in one
 * round trip, which Citus routes to the member's shard as it is.
 */
int64
spi_consume_lots(DirectWriter *w, int64 member_id, int64 entry_id, int64 points, TimestampTz at)
{
	(void) w;
	(void) member_id;
	(void) entry_id;
	(void) points;
	(void) at;
	return -1;
}
