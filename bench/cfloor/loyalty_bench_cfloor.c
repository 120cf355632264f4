/*
 * loyalty_bench_cfloor.c
 *		The minimal PL/pgSQL ledger of bench/plpgsql_ledger.sql, written in C:
 *		the same tables, the same rows, the same locks and checks (the ledger's
 *		foreign key still fires), through the executor's row-level routines
 *		as loyalty's src/direct.c writes.
 *
 * Why: loyalty does much more than that ledger (lots, allocations, purchase
 * statistics, idempotency, programs), so loyalty/plpgsql mixes two things:
 * what C saves over PL/pgSQL, and what the extra work costs.  This function
 * measures the first alone; bench/ledger.sh prints cfloor/plpgsql and
 * loyalty/cfloor from the same pgbench run.  Benchmark code only: it trusts
 * the benchmark's tables (checked once per backend) and is never installed
 * with the extension.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(cfloor_earn);
PG_FUNCTION_INFO_V1(cfloor_redeem);

/* bench_plpgsql's relations, looked up once per backend (pgbench connects afresh per run) */
static Oid	accounts_oid = InvalidOid;
static Oid	accounts_pkey_oid;
static Oid	ledger_oid;
static Oid	ledger_seq_oid;

static Oid
relation_in(Oid nsp, const char *name, char relkind)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid) || get_rel_relkind(relid) != relkind)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("bench_plpgsql.%s is missing or of the wrong kind", name),
				 errhint("Load bench/plpgsql_ledger.sql first.")));
	return relid;
}

/* The column `attno` (from 1) of `relid` must be `name` of type `type`. */
static void
check_column(Oid relid, AttrNumber attno, const char *name, Oid type)
{
	char	   *actual = get_attname(relid, attno, true);

	if (actual == NULL || strcmp(actual, name) != 0 || get_atttype(relid, attno) != type)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("column %d of %s is not %s %s", attno, get_rel_name(relid), name,
						format_type_be(type)),
				 errhint("Load bench/plpgsql_ledger.sql unchanged.")));
}

static void
lookup_relations(void)
{
	Oid			nsp;

	if (OidIsValid(accounts_oid))
		return;
	nsp = get_namespace_oid("bench_plpgsql", false);
	ledger_oid = relation_in(nsp, "ledger", RELKIND_RELATION);
	ledger_seq_oid = relation_in(nsp, "ledger_id_seq", RELKIND_SEQUENCE);
	accounts_pkey_oid = relation_in(nsp, "accounts_pkey", RELKIND_INDEX);
	check_column(ledger_oid, 1, "id", INT8OID);
	check_column(ledger_oid, 2, "member_id", INT8OID);
	check_column(ledger_oid, 3, "delta", INT8OID);
	check_column(ledger_oid, 4, "created_at", TIMESTAMPTZOID);
	accounts_oid = relation_in(nsp, "accounts", RELKIND_RELATION);
	check_column(accounts_oid, 1, "member_id", INT8OID);
	check_column(accounts_oid, 2, "balance", INT8OID);
}

static RangeTblEntry *
make_rte(Oid relid)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	return rte;
}

/*
 * What bench_plpgsql.earn and .redeem do: lock the member's account row,
 * refuse an overspend, insert the ledger row, update the balance.  Returns
 * the new ledger row's id.
 */
static int64
change_balance(int64 member, int64 delta)
{
	EState	   *estate;
	ResultRelInfo *accounts_rri = makeNode(ResultRelInfo);
	ResultRelInfo *ledger_rri = makeNode(ResultRelInfo);
	Relation	accounts,
				pkey;
	TupleTableSlot *old,
			   *row,
			   *new;
	Snapshot	snap;
	ScanKeyData key;
	IndexScanDesc scan;
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;
	int64		balance,
				new_balance,
				id;

	lookup_relations();
	estate = CreateExecutorState();
	ExecInitRangeTable(estate, list_make2(make_rte(accounts_oid), make_rte(ledger_oid)));
	estate->es_output_cid = GetCurrentCommandId(true);
	estate->es_snapshot = GetActiveSnapshot();
	AfterTriggerBeginQuery();
	ExecInitResultRelation(estate, accounts_rri, 1);
	ExecInitResultRelation(estate, ledger_rri, 2);
	ExecOpenIndices(accounts_rri, false);
	ExecOpenIndices(ledger_rri, false);
	accounts = accounts_rri->ri_RelationDesc;

	/* SELECT ... FOR UPDATE (as PL/pgSQL's statement, under READ COMMITTED) */
	snap = RegisterSnapshot(GetTransactionSnapshot());
	old = table_slot_create(accounts, &estate->es_tupleTable);
	pkey = index_open(accounts_pkey_oid, RowExclusiveLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(member));
	scan = index_beginscan(accounts, pkey, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, old);
	index_endscan(scan);
	index_close(pkey, NoLock);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("member %lld does not exist", (long long) member)));
	res = table_tuple_lock(accounts, &old->tts_tid, snap, old, estate->es_output_cid,
						   LockTupleExclusive, LockWaitBlock,
						   IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
						   &tmfd);
	if (res != TM_Ok)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not lock the account of member %lld", (long long) member)));
	slot_getallattrs(old);
	balance = DatumGetInt64(old->tts_values[1]);
	if (delta < 0 && balance < -delta)
		ereport(ERROR,
				(errcode(MAKE_SQLSTATE('L', 'Y', '0', '0', '1')),
				 errmsg("insufficient points: member %lld has %lld, %lld requested",
						(long long) member, (long long) balance, (long long) -delta)));
	/* checked before anything is written (the transaction would roll back anyway) */
	if (pg_add_s64_overflow(balance, delta, &new_balance))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("balance of member %lld out of range", (long long) member)));

	/* INSERT INTO ledger (id from the serial, created_at = now()) */
	row = ExecInitExtraTupleSlot(estate, RelationGetDescr(ledger_rri->ri_RelationDesc), &TTSOpsVirtual);
	ExecClearTuple(row);
	id = nextval_internal(ledger_seq_oid, true);
	row->tts_values[0] = Int64GetDatum(id);
	row->tts_values[1] = Int64GetDatum(member);
	row->tts_values[2] = Int64GetDatum(delta);
	row->tts_values[3] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	memset(row->tts_isnull, 0, sizeof(bool) * 4);
	ExecStoreVirtualTuple(row);
	ExecSimpleRelationInsert(ledger_rri, estate, row);

	/* UPDATE accounts SET balance = balance + delta (CHECK balance >= 0 applies) */
	new = ExecInitExtraTupleSlot(estate, RelationGetDescr(accounts), &TTSOpsVirtual);
	ExecClearTuple(new);
	new->tts_values[0] = old->tts_values[0];
	new->tts_isnull[0] = false;
	new->tts_values[1] = Int64GetDatum(new_balance);
	new->tts_isnull[1] = false;
	ExecStoreVirtualTuple(new);
	ExecSimpleRelationUpdate(accounts_rri, estate, NULL, old, new);

	/* the foreign key's check, queued by the insert */
	AfterTriggerEndQuery(estate);
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	UnregisterSnapshot(snap);
	CommandCounterIncrement();
	return id;
}

/* cfloor_earn(member bigint, amount numeric) returns bigint: floor(amount) points */
Datum
cfloor_earn(PG_FUNCTION_ARGS)
{
	Datum		amount;
	int64		points;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, PG_GETARG_DATUM(1),
										  DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("member must not be null and amount must be positive")));
	amount = DirectFunctionCall1(numeric_floor, PG_GETARG_DATUM(1));
	points = DatumGetInt64(DirectFunctionCall1(numeric_int8, amount));
	change_balance(PG_GETARG_INT64(0), points);
	PG_RETURN_INT64(points);
}

/* cfloor_redeem(member bigint, points bigint) returns bigint: the ledger row id */
Datum
cfloor_redeem(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_GETARG_INT64(1) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("member must not be null and points must be positive")));
	PG_RETURN_INT64(change_balance(PG_GETARG_INT64(0), -PG_GETARG_INT64(1)));
}
