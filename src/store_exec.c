/*
 * store_exec.c
 *		The fast store: the books' rows written through the executor's row
 *		routines (ExecSimpleRelationInsert/Update), as COPY and logical
 *		replication's apply worker write them.
 *
 * Why: an SQL statement pays for parsing or plan-cache revalidation,
 * executor start-up and shutdown, and, for every execution, compiling the
 * table's CHECK constraints, generated columns and partial-index predicates
 * anew; a call writes three to six rows whose shape never changes.  store.c
 * sends a table here only when its shape proves that the row routines do
 * everything the statement would (see there), so what is written, and what
 * fires, is the same.
 *
 * Each row operation is bracketed like a statement of its own: its AFTER
 * ROW triggers fire at its end, then the command counter moves on, so a
 * trigger sees the books exactly as it would between the SQL store's
 * statements.  The executor state of a call lives from its first row to
 * store_end(), which closes everything the executor itself would close.
 *
 * Expressions the executor would compile for every statement (CHECK
 * constraints, stored generated columns, partial-index predicates) are
 * compiled once per backend and table and kept until the table's relcache
 * entry, or any function, changes.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_trigger.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/execPartition.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "points.h"
#include "store.h"

/* One call's executor state. */
typedef struct FastState
{
	EState	   *estate;
	ResultRelInfo *rri[ST_COUNT];
	TupleTableSlot *slot[ST_COUNT];
	TupleTableSlot *newslot[ST_COUNT];
	/* a partitioned ledger: tuple routing, as COPY does it */
	ModifyTableState *mtstate;
	PartitionTupleRouting *proute;
#if PG_VERSION_NUM >= 160000
	RTEPermissionInfo *perm[ST_COUNT];
#endif
} FastState;

/*
 * The expressions of a table compiled once: its indexes' IndexInfos (with
 * their predicates), its CHECK constraints and its stored generated columns.
 * An invalidation only marks them stale, because a call may be using them;
 * their memory is freed at the end of the transaction.
 */
typedef struct ExprCache
{
	bool		valid;
	Oid			relid;
	int			nindexes;
	Oid		   *index_oids;
	IndexInfo **index_infos;	/* NULL entry: built per call */
	int			ncheck;
	ExprState **checks;			/* NULL: the table has no CHECK */
	int			ngenerated;
	ExprState **generated;		/* per attribute; NULL: none */
	Bitmapset **generated_uses; /* per attribute: the columns its expression
								 * reads */
} ExprCache;

static ExprCache ecache[ST_COUNT];
static MemoryContext ecache_cxt = NULL;
static bool ecache_dirty = false;
static bool ecache_callbacks = false;

static void
InvalidateExprCacheRel(Datum arg, Oid relid)
{
	int			t,
				i;
	bool		hit = false;

	(void) arg;
	for (t = 0; !hit && t < ST_COUNT; t++)
	{
		if (!ecache[t].valid)
			continue;
		hit = !OidIsValid(relid) || relid == ecache[t].relid;
		for (i = 0; !hit && i < ecache[t].nindexes; i++)
			hit = ecache[t].index_oids[i] == relid;
	}
	if (!hit)
		return;
	for (t = 0; t < ST_COUNT; t++)
		ecache[t].valid = false;
	ecache_dirty = true;
}

/* A changed function may have been inlined into a compiled expression. */
static void
InvalidateExprCacheProc(Datum arg, int cacheid, uint32 hashvalue)
{
	int			t;

	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	for (t = 0; t < ST_COUNT; t++)
		ecache[t].valid = false;
	ecache_dirty = true;
}

static void
ExprCacheXactEnd(XactEvent event, void *arg)
{
	(void) arg;
	if (!ecache_dirty || ecache_cxt == NULL)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		MemoryContextReset(ecache_cxt);
		memset(ecache, 0, sizeof(ecache));
		ecache_dirty = false;
	}
}

/* Compile a node the way ExecPrepareExpr would, into the cache. */
static ExprState *
CompileExpr(Node *node)
{
	return ExecInitExpr(expression_planner((Expr *) node), NULL);
}

static void
BuildExprCache(Relation rel, StoreTable t)
{
	ExprCache  *c = &ecache[t];
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	List	   *oids;
	ListCell   *lc;
	MemoryContext old;
	int			i = 0;

	if (ecache_cxt == NULL)
	{
		ecache_cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty compiled expressions",
										   ALLOCSET_SMALL_SIZES);
		RegisterXactCallback(ExprCacheXactEnd, NULL);
	}
	if (!ecache_callbacks)
	{
		CacheRegisterRelcacheCallback(InvalidateExprCacheRel, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, InvalidateExprCacheProc, (Datum) 0);
		ecache_callbacks = true;
	}
	oids = RelationGetIndexList(rel);
	old = MemoryContextSwitchTo(ecache_cxt);
	memset(c, 0, sizeof(*c));
	c->nindexes = list_length(oids);
	c->index_oids = palloc0(sizeof(Oid) * Max(c->nindexes, 1));
	c->index_infos = palloc0(sizeof(IndexInfo *) * Max(c->nindexes, 1));
	foreach(lc, oids)
	{
		Oid			idxid = lfirst_oid(lc);
		Relation	idx = index_open(idxid, RowExclusiveLock);

		c->index_oids[i] = idxid;
		/* as ExecOpenIndices and ExecInsertIndexTuples would build them */
		if (idx->rd_rel->relam == BTREE_AM_OID && RelationGetIndexExpressions(idx) == NIL)
		{
			IndexInfo  *ii = BuildIndexInfo(idx);

			if (ii->ii_Predicate != NIL)
				ii->ii_PredicateState = ExecInitQual((List *) expression_planner((Expr *) ii->ii_Predicate),
													 NULL);
			c->index_infos[i] = ii;
		}
		index_close(idx, NoLock);
		i++;
	}
	if (constr && constr->num_check > 0)
	{
		c->ncheck = constr->num_check;
		c->checks = palloc0(sizeof(ExprState *) * c->ncheck);
		for (i = 0; i < c->ncheck; i++)
			c->checks[i] = CompileExpr(stringToNode(constr->check[i].ccbin));
	}
	if (constr && constr->has_generated_stored)
	{
		TupleDesc	desc = RelationGetDescr(rel);

		c->generated = palloc0(sizeof(ExprState *) * desc->natts);
		c->generated_uses = palloc0(sizeof(Bitmapset *) * desc->natts);
		for (i = 0; i < desc->natts; i++)
		{
			Node	   *expr;

			if (TupleDescAttr(desc, i)->attgenerated != ATTRIBUTE_GENERATED_STORED)
				continue;
			expr = build_column_default(rel, i + 1);
			c->generated[i] = CompileExpr(expr);
			pull_varattnos(expr, 1, &c->generated_uses[i]);
			c->ngenerated++;
		}
	}
	MemoryContextSwitchTo(old);
	list_free(oids);
	c->relid = RelationGetRelid(rel);
	c->valid = true;
}

/*
 * ExecOpenIndices, with the cached IndexInfos, and the cached CHECK and
 * generation expressions put where the executor would compile its own.
 */
static void
PrepareResultRel(ResultRelInfo *rri, StoreTable t)
{
	Relation	rel = rri->ri_RelationDesc;
	ExprCache  *c = &ecache[t];
	int			i;

	if (!c->valid || c->relid != RelationGetRelid(rel))
		BuildExprCache(rel, t);
	if (c->checks)
		rri->ri_ConstraintExprs = c->checks;
	if (c->generated)
	{
#if PG_VERSION_NUM >= 160000
		rri->ri_GeneratedExprsI = rri->ri_GeneratedExprsU = c->generated;
		rri->ri_NumGeneratedNeededI = rri->ri_NumGeneratedNeededU = c->ngenerated;
#else
		rri->ri_GeneratedExprs = c->generated;
		rri->ri_NumGeneratedNeeded = c->ngenerated;
#endif
	}
	if (!rel->rd_rel->relhasindex || c->nindexes == 0)
		return;
	rri->ri_NumIndices = c->nindexes;
	rri->ri_IndexRelationDescs = palloc(sizeof(Relation) * c->nindexes);
	rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * c->nindexes);
	for (i = 0; i < c->nindexes; i++)
	{
		/* ExecCloseIndices releases this lock, as for a statement */
		Relation	idx = index_open(c->index_oids[i], RowExclusiveLock);

		rri->ri_IndexRelationDescs[i] = idx;
		rri->ri_IndexRelationInfo[i] = c->index_infos[i] ? c->index_infos[i] : BuildIndexInfo(idx);
	}
}

/*
 * The columns each of the SQL store's UPDATEs sets; the fast store's row
 * update declares the same, so that UPDATE OF triggers fire alike.
 */
static const int account_cols[] = {A_BALANCE, A_HELD, A_DEBT, A_EARNED, A_REDEEMED, A_EXPIRED,
A_FIRST, A_LAST, A_COUNT, A_DAYS, A_AMOUNT, A_UPDATED, A_NEXT_EXPIRY, -1};
static const int status_cols[] = {A_STATUS, A_UPDATED, -1};
static const int tier_cols[] = {A_TIER, A_TIER_SINCE, A_TIER_LOCKED, A_TIER_GRACE, A_UPDATED, -1};
static const int referral_cols[] = {A_REFERRAL, -1};
static const int segment_cols[] = {A_SEGMENT, A_RISK_BAND, A_SEGMENT_SINCE, -1};
static const int lot_cols[] = {T_REMAINING, T_REVERSED, T_REVERSED_AMOUNT, -1};
static const int alloc_cols[] = {X_RETURNED, -1};
static const int progress_cols[] = {PR_END, PR_VALUE, PR_ITEMS, PR_LAST, PR_COMPLETED, PR_COMPLETIONS, PR_AWARD,
PR_AWARD_MEMBER, PR_CLAWED, PR_UPDATED, -1};
static const int state_cols[] = {SS_IDS, SS_STARTS, SS_ENDS, SS_VALUES, SS_ITEMS, SS_LAST, SS_COMPLETED,
SS_COMPLETIONS, SS_AWARD, SS_AWARD_MEMBER, SS_CLAWED, SS_UPDATED, SS_JOINED, SS_EARLIER_DONE, -1};

static Bitmapset *
ColumnSet(const TableShape *s, const int *cols)
{
	Bitmapset  *set = NULL;
	int			i;

	for (i = 0; cols[i] >= 0; i++)
		if (s->attno[cols[i]] >= 0)
			set = bms_add_member(set, s->attno[cols[i]] + 1 - FirstLowInvalidHeapAttributeNumber);
	return set;
}

/* The call's executor state, created on its first row. */
static FastState *
State(StoreWriter *w)
{
	FastState  *f;
	List	   *rtable = NIL;
	MemoryContext old;
	int			t;
#if PG_VERSION_NUM >= 160000
	List	   *perminfos = NIL;
#endif

	if (w->fast)
		return w->fast;
	old = MemoryContextSwitchTo(w->cxt);
	f = palloc0(sizeof(FastState));
	f->estate = CreateExecutorState();
	/* one range-table entry per table, pointed at the table when opened */
	for (t = 0; t < ST_COUNT; t++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);

		rte->rtekind = RTE_RELATION;
		rte->relkind = RELKIND_RELATION;
		rte->rellockmode = RowExclusiveLock;
#if PG_VERSION_NUM >= 160000
		f->perm[t] = makeNode(RTEPermissionInfo);
		f->perm[t]->inh = true;
		perminfos = lappend(perminfos, f->perm[t]);
		rte->perminfoindex = list_length(perminfos);
#endif
		rtable = lappend(rtable, rte);
	}
#if PG_VERSION_NUM >= 160000
	ExecInitRangeTable(f->estate, rtable, perminfos);
#else
	ExecInitRangeTable(f->estate, rtable);
#endif
	f->estate->es_output_cid = GetCurrentCommandId(true);
	f->estate->es_snapshot = GetActiveSnapshot();
	MemoryContextSwitchTo(old);
	w->fast = f;
	return f;
}

/*
 * The table's result relation, opened with its indexes on first use.  The
 * caller (store.c) holds the table's lock.
 */
static ResultRelInfo *
Open(StoreWriter *w, StoreTable t)
{
	FastState  *f = State(w);

	if (f->rri[t] == NULL)
	{
		const TableShape *s = store_shape(t);
		RangeTblEntry *rte = exec_rt_fetch(t + 1, f->estate);
		ResultRelInfo *rri;
		Relation	rel;
		MemoryContext old = MemoryContextSwitchTo(f->estate->es_query_cxt);

		rte->relid = s->relid;
		rte->relkind = s->relkind;
#if PG_VERSION_NUM >= 160000
		f->perm[t]->relid = s->relid;
		f->perm[t]->requiredPerms = store_tables[t].writes;
#else
		rte->requiredPerms = store_tables[t].writes;
#endif
		rri = makeNode(ResultRelInfo);
		ExecInitResultRelation(f->estate, rri, t + 1);
		rel = rri->ri_RelationDesc;
		if (rel->rd_rel->relkind == RELKIND_RELATION)
			PrepareResultRel(rri, t);
		f->rri[t] = rri;
		f->slot[t] = table_slot_create(rel, &f->estate->es_tupleTable);
		f->newslot[t] = ExecInitExtraTupleSlot(f->estate, RelationGetDescr(rel), &TTSOpsVirtual);
		MemoryContextSwitchTo(old);
	}
	return f->rri[t];
}

/* Start one row operation, as a statement would start. */
static void
OpBegin(FastState *f)
{
	AfterTriggerBeginQuery();
	f->estate->es_output_cid = GetCurrentCommandId(true);
}

/* End it: its AFTER triggers fire, and the next operation sees its row. */
static void
OpEnd(FastState *f)
{
	AfterTriggerEndQuery(f->estate);
	ResetPerTupleExprContext(f->estate);
	CommandCounterIncrement();
}

/* A fresh virtual row of the table, all NULL. */
static TupleTableSlot *
NewRow(FastState *f, StoreTable t)
{
	TupleTableSlot *slot = f->slot[t];

	ExecClearTuple(slot);
	memset(slot->tts_values, 0, sizeof(Datum) * slot->tts_tupleDescriptor->natts);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	return slot;
}

static inline void
Set(TupleTableSlot *slot, const TableShape *s, int col, Datum value, bool isnull)
{
	AttrNumber	a = s->attno[col];

	slot->tts_values[a] = value;
	slot->tts_isnull[a] = isnull;
}

/* Insert the row in `slot`, routed to its partition when needed. */
static void
InsertRow(FastState *f, StoreTable t, TupleTableSlot *slot)
{
	ResultRelInfo *rri = f->rri[t];

	ExecStoreVirtualTuple(slot);
	OpBegin(f);
	if (rri->ri_RelationDesc->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		ResultRelInfo *part;
		TupleTableSlot *pslot;
		TupleConversionMap *map;
		MemoryContext oldcxt;

		if (f->proute == NULL)
		{
			oldcxt = MemoryContextSwitchTo(f->estate->es_query_cxt);
			f->mtstate = makeNode(ModifyTableState);
			f->mtstate->ps.plan = NULL;
			f->mtstate->ps.state = f->estate;
			f->mtstate->operation = CMD_INSERT;
			f->mtstate->resultRelInfo = rri;
			f->mtstate->rootResultRelInfo = rri;
			f->proute = ExecSetupPartitionTupleRouting(f->estate, rri->ri_RelationDesc);
			MemoryContextSwitchTo(oldcxt);
		}
		oldcxt = MemoryContextSwitchTo(GetPerTupleMemoryContext(f->estate));
		part = ExecFindPartition(f->mtstate, rri, f->proute, slot, f->estate);
		MemoryContextSwitchTo(oldcxt);
#if PG_VERSION_NUM >= 160000
		map = ExecGetRootToChildMap(part, f->estate);
#else
		map = part->ri_RootToPartitionMap;
#endif
		pslot = part->ri_PartitionTupleSlot;
		if (map != NULL)
			slot = execute_attr_map_slot(map->attrMap, slot, pslot);
		ExecSimpleRelationInsert(part, f->estate, slot);
	}
	else
		ExecSimpleRelationInsert(rri, f->estate, slot);
	OpEnd(f);
}

/*
 * The row whose leading key columns of index `indexid` equal `keys`, as
 * `snap` sees it, into `slot`: int8 columns, and a text one last when
 * `text_key` is given (compared in the index's collation).
 */
static bool
FetchByKey(Relation rel, Oid indexid, Snapshot snap, const Datum *keys, int nkeys,
		   text *text_key, TupleTableSlot *slot)
{
	Relation	idx = index_open(indexid, AccessShareLock);
	ScanKeyData skey[3];
	IndexScanDesc scan;
	bool		found;
	int			i;

	for (i = 0; i < nkeys; i++)
		ScanKeyInit(&skey[i], i + 1, BTEqualStrategyNumber, F_INT8EQ, keys[i]);
	if (text_key)
	{
		ScanKeyEntryInitialize(&skey[nkeys], 0, nkeys + 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[nkeys], F_TEXTEQ, PointerGetDatum(text_key));
		nkeys++;
	}
	scan = index_beginscan(rel, idx, snap, nkeys, 0);
	index_rescan(scan, skey, nkeys, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(idx, NoLock);
	return found;
}

/*
 * The latest version of a row the caller holds locked (its member's lock),
 * from where it was last seen, or found by its key when `tid` is invalid.
 */
static void
FetchLatest(Relation rel, StoreTable t, ItemPointer tid, const Datum *keys, int nkeys,
			TupleTableSlot *slot)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

	if (!ItemPointerIsValid(tid) ||
		!table_tuple_fetch_row_version(rel, tid, snap, slot))
	{
		bool		found = false;

		if (ItemPointerIsValid(tid))
		{
			/* updated by one of the caller's own statements: follow it */
			TableScanDesc scan = table_beginscan_tid(rel, snap);

			table_tuple_get_latest_tid(scan, tid);
			table_endscan(scan);
			found = table_tuple_fetch_row_version(rel, tid, snap, slot);
		}
		if (!found && !FetchByKey(rel, store_shape(t)->key_index, snap, keys, nkeys, NULL, slot))
			elog(ERROR, "loyalty: row of loyalty.%s not found (key %lld)", store_tables[t].name,
				 (long long) DatumGetInt64(keys[0]));
	}
	UnregisterSnapshot(snap);
	slot_getallattrs(slot);
}

/* A copy of `old` to change and write back. */
static TupleTableSlot *
CopyRow(FastState *f, StoreTable t, TupleTableSlot *old)
{
	TupleTableSlot *new = f->newslot[t];
	int			natts = old->tts_tupleDescriptor->natts;

	ExecClearTuple(new);
	memcpy(new->tts_values, old->tts_values, sizeof(Datum) * natts);
	memcpy(new->tts_isnull, old->tts_isnull, sizeof(bool) * natts);
	return new;
}

/*
 * The generated columns an UPDATE of `set` changes, worked out as
 * ExecInitStoredGenerated would (those computed from a column of `set`; all
 * under a BEFORE UPDATE row trigger), where the executor looks for them: an
 * UPDATE OF trigger on such a column fires as for the statement.  The
 * executor would not find its own, as the expressions come from the cache.
 */
static void
SetExtraUpdated(FastState *f, StoreTable t, Bitmapset *set)
{
	ResultRelInfo *rri = f->rri[t];
	Relation	rel = rri->ri_RelationDesc;
	ExprCache  *c = &ecache[t];
	Bitmapset  *extra = NULL;
	bool		all = rel->trigdesc && rel->trigdesc->trig_update_before_row;
	int			i;
#if PG_VERSION_NUM < 160000 && PG_VERSION_NUM >= 150002
	ResultRelInfoExtra *rextra = NULL;
	ListCell   *lc;
#endif

	if (c->generated == NULL)
		return;
	for (i = 0; i < RelationGetDescr(rel)->natts; i++)
		if (c->generated[i] && (all || bms_overlap(c->generated_uses[i], set)))
			extra = bms_add_member(extra, i + 1 - FirstLowInvalidHeapAttributeNumber);
#if PG_VERSION_NUM >= 160000
	rri->ri_extraUpdatedCols = extra;
#elif PG_VERSION_NUM < 150002
	/* before 15.2 the executor took them from the range table */
	exec_rt_fetch(t + 1, f->estate)->extraUpdatedCols = extra;
#else
	foreach(lc, f->estate->es_resultrelinfo_extra)
		if (((ResultRelInfoExtra *) lfirst(lc))->rinfo == rri)
		rextra = lfirst(lc);
	if (rextra == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(f->estate->es_query_cxt);

		rextra = palloc_object(ResultRelInfoExtra);
		rextra->rinfo = rri;
		f->estate->es_resultrelinfo_extra = lappend(f->estate->es_resultrelinfo_extra, rextra);
		MemoryContextSwitchTo(old);
	}
	rextra->ri_extraUpdatedCols = extra;
#endif
}

/*
 * Write the changed row `new` over `old`, as an UPDATE setting the columns
 * `cols` would.
 */
static void
UpdateRow(FastState *f, StoreTable t, TupleTableSlot *old, TupleTableSlot *new, const int *cols)
{
	Bitmapset  *set = ColumnSet(store_shape(t), cols);

#if PG_VERSION_NUM >= 160000
	f->perm[t]->updatedCols = set;
#else
	exec_rt_fetch(t + 1, f->estate)->updatedCols = set;
#endif
	SetExtraUpdated(f, t, set);
	ExecStoreVirtualTuple(new);
	OpBegin(f);
	ExecSimpleRelationUpdate(f->rri[t], f->estate, NULL, old, new);
	OpEnd(f);
}

static int64
AddPoints(int64 a, int64 b)
{
	return points_add_checked(a, b);
}

static int64
AddInt8(int64 a, int64 b, const char *what)
{
	int64		r;

	if (pg_add_s64_overflow(a, b, &r))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("account %s out of range", what)));
	return r;
}

/* insert_entry: the ledger row; returns its entry_id. */
static int64
FastInsertEntry(StoreWriter *w, const LedgerRow *r)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_LEDGER);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TupleTableSlot *slot;
	int64		entry_id;

	Open(w, ST_LEDGER);
	/* what the identity column's default would take */
	entry_id = nextval_internal(s->entry_seq, false);
	slot = NewRow(f, ST_LEDGER);
	Set(slot, s, L_MEMBER, Int64GetDatum(r->member_id), false);
	Set(slot, s, L_ENTRY, Int64GetDatum(entry_id), false);
	Set(slot, s, L_PROGRAM, Int64GetDatum(r->program_id), false);
	Set(slot, s, L_KIND, CStringGetTextDatum(r->kind), false);
	Set(slot, s, L_POINTS, Int64GetDatum(r->points), false);
	Set(slot, s, L_HELD, Int64GetDatum(r->held_delta), false);
	Set(slot, s, L_AMOUNT, r->amount, r->amount == (Datum) 0);
	Set(slot, s, L_CHANNEL, PointerGetDatum(r->channel), r->channel == NULL);
	Set(slot, s, L_REFERENCE, PointerGetDatum(r->reference), r->reference == NULL);
	Set(slot, s, L_REASON, PointerGetDatum(r->reason), r->reason == NULL);
	Set(slot, s, L_ACTOR, CStringGetTextDatum(store_user_name()), false);
	Set(slot, s, L_SOURCE, Int64GetDatum(r->source_entry), r->source_entry == 0);
	Set(slot, s, L_HOLD, Int64GetDatum(r->hold_id), r->hold_id == 0);
	Set(slot, s, L_IDEM, PointerGetDatum(r->idem_key), r->idem_key == NULL);
	Set(slot, s, L_CREATED, TimestampTzGetDatum(r->created_at ? r->created_at : now), false);
	Set(slot, s, L_OCCURRED, TimestampTzGetDatum(r->occurred_at ? r->occurred_at : now), false);
	if (r->details)
		Set(slot, s, L_DETAILS, DirectFunctionCall1(jsonb_in, CStringGetDatum(r->details)), false);
	InsertRow(f, ST_LEDGER, slot);
	return entry_id;
}

/* insert_lot: a lot (its id given by the caller). */
static int64
FastInsertLot(StoreWriter *w, const LotRow *l)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_LOTS);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TupleTableSlot *slot;

	Open(w, ST_LOTS);
	slot = NewRow(f, ST_LOTS);
	Set(slot, s, T_MEMBER, Int64GetDatum(l->member_id), false);
	Set(slot, s, T_LOT, Int64GetDatum(l->lot_id), false);
	Set(slot, s, T_ENTRY, Int64GetDatum(l->entry_id), false);
	Set(slot, s, T_ORIGINAL, Int64GetDatum(l->original), false);
	Set(slot, s, T_REMAINING, Int64GetDatum(l->remaining), false);
	Set(slot, s, T_REVERSED, Int64GetDatum(0), false);
	Set(slot, s, T_REVERSED_AMOUNT, NumericGetDatum(int64_to_numeric(0)), false);
	Set(slot, s, T_VESTS, TimestampTzGetDatum(l->vests_at), false);
	Set(slot, s, T_EXPIRES, TimestampTzGetDatum(l->expires_at), l->expires_at == 0);
	Set(slot, s, T_CREATED, TimestampTzGetDatum(now), false);
	InsertRow(f, ST_LOTS, slot);
	return l->lot_id;
}

/* insert_idempotency: the first result of a keyed call. */
static void
FastInsertIdempotency(StoreWriter *w, int64 member_id, text *key, const char *op, int64 hash,
					  int64 result, int64 entry_id)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_IDEM);
	TupleTableSlot *slot;

	Open(w, ST_IDEM);
	slot = NewRow(f, ST_IDEM);
	Set(slot, s, K_MEMBER, Int64GetDatum(member_id), false);
	Set(slot, s, K_KEY, PointerGetDatum(key), false);
	Set(slot, s, K_OP, CStringGetTextDatum(op), false);
	Set(slot, s, K_HASH, Int64GetDatum(hash), false);
	Set(slot, s, K_RESULT, Int64GetDatum(result), false);
	Set(slot, s, K_ENTRY, Int64GetDatum(entry_id), entry_id == 0);
	Set(slot, s, K_CREATED, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	InsertRow(f, ST_IDEM, slot);
}

/*
 * read_idempotency: the key's row by the unique index on (member_id,
 * idempotency_key), as a fresh snapshot sees it (the member is locked: a
 * key it wrote before is committed or the caller's own); by statement when
 * the table has no such index.
 */
static bool
FastReadIdempotency(StoreWriter *w, int64 member_id, text *key, IdemRow *out)
{
	const TableShape *s = store_shape(ST_IDEM);
	const AttrNumber *a = s->attno;
	FastState  *f;
	TupleTableSlot *slot;
	Snapshot	snap;
	Datum		member = Int64GetDatum(member_id);
	bool		found;

	if (!OidIsValid(s->key_index))
		return sql_store.read_idempotency(w, member_id, key, out);
	f = State(w);
	Open(w, ST_IDEM);
	slot = f->slot[ST_IDEM];
	snap = RegisterSnapshot(GetLatestSnapshot());
	found = FetchByKey(f->rri[ST_IDEM]->ri_RelationDesc, s->key_index, snap, &member, 1, key, slot);
	if (found)
	{
		char	   *op;

		slot_getallattrs(slot);
		op = TextDatumGetCString(slot->tts_values[a[K_OP]]);
		strlcpy(out->operation, op, sizeof(out->operation));
		pfree(op);
		out->request_hash = DatumGetInt64(slot->tts_values[a[K_HASH]]);
		out->result = slot->tts_isnull[a[K_RESULT]] ? 0 : DatumGetInt64(slot->tts_values[a[K_RESULT]]);
		out->entry_id = slot->tts_isnull[a[K_ENTRY]] ? 0 : DatumGetInt64(slot->tts_values[a[K_ENTRY]]);
	}
	UnregisterSnapshot(snap);
	ExecClearTuple(slot);
	return found;
}

/* insert_allocation: which lot a debit took from, and how much. */
static void
FastInsertAllocation(StoreWriter *w, int64 member_id, int64 entry_id, int64 lot_id, int64 points)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_ALLOC);
	TupleTableSlot *slot;

	Open(w, ST_ALLOC);
	slot = NewRow(f, ST_ALLOC);
	Set(slot, s, X_MEMBER, Int64GetDatum(member_id), false);
	Set(slot, s, X_ENTRY, Int64GetDatum(entry_id), false);
	Set(slot, s, X_LOT, Int64GetDatum(lot_id), false);
	Set(slot, s, X_POINTS, Int64GetDatum(points), false);
	Set(slot, s, X_RETURNED, Int64GetDatum(0), false);
	InsertRow(f, ST_ALLOC, slot);
}

/* update_account: add the deltas to the member's locked account row. */
static void
FastUpdateAccount(StoreWriter *w, int64 member_id, ItemPointer tid, const AccountDelta *d)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_ACCOUNTS);
	const AttrNumber *a = s->attno;
	TupleTableSlot *old;
	TupleTableSlot *new;
	Datum	   *v;
	bool	   *n;
	Datum		key = Int64GetDatum(member_id);

	Open(w, ST_ACCOUNTS);
	old = f->slot[ST_ACCOUNTS];
	FetchLatest(f->rri[ST_ACCOUNTS]->ri_RelationDesc, ST_ACCOUNTS, tid, &key, 1, old);
	new = CopyRow(f, ST_ACCOUNTS, old);
	v = new->tts_values;
	n = new->tts_isnull;
	/* as the SQL store's UPDATE computes them */
	v[a[A_BALANCE]] = Int64GetDatum(AddPoints(DatumGetInt64(v[a[A_BALANCE]]), d->balance));
	v[a[A_HELD]] = Int64GetDatum(AddPoints(DatumGetInt64(v[a[A_HELD]]), d->held));
	v[a[A_DEBT]] = Int64GetDatum(AddPoints(DatumGetInt64(v[a[A_DEBT]]), d->debt));
	v[a[A_EARNED]] = Int64GetDatum(AddPoints(DatumGetInt64(v[a[A_EARNED]]), d->earned));
	v[a[A_REDEEMED]] = Int64GetDatum(AddPoints(DatumGetInt64(v[a[A_REDEEMED]]), d->redeemed));
	v[a[A_EXPIRED]] = Int64GetDatum(AddPoints(DatumGetInt64(v[a[A_EXPIRED]]), d->expired));
	if (d->clear_purchase_dates)
	{
		n[a[A_FIRST]] = n[a[A_LAST]] = true;
		v[a[A_FIRST]] = v[a[A_LAST]] = (Datum) 0;
	}
	else
	{
		if (d->purchase_first &&
			(n[a[A_FIRST]] || d->purchase_first < DatumGetTimestampTz(v[a[A_FIRST]])))
		{
			v[a[A_FIRST]] = TimestampTzGetDatum(d->purchase_first);
			n[a[A_FIRST]] = false;
		}
		if (d->purchase_last &&
			(n[a[A_LAST]] || d->purchase_last > DatumGetTimestampTz(v[a[A_LAST]])))
		{
			v[a[A_LAST]] = TimestampTzGetDatum(d->purchase_last);
			n[a[A_LAST]] = false;
		}
	}
	v[a[A_COUNT]] = Int64GetDatum(AddInt8(DatumGetInt64(v[a[A_COUNT]]), d->purchase_count, "purchase count"));
	v[a[A_DAYS]] = Int64GetDatum(AddInt8(DatumGetInt64(v[a[A_DAYS]]), d->purchase_days, "purchase days"));
	if (d->purchase_amount)
		v[a[A_AMOUNT]] = DirectFunctionCall2(numeric_add, v[a[A_AMOUNT]], d->purchase_amount);
	if (!d->keep_updated_at)
		v[a[A_UPDATED]] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (a[A_NEXT_EXPIRY] < 0)
		 /* an older schema without the bound */ ;
	else if (d->exact_next_expiry)
	{
		n[a[A_NEXT_EXPIRY]] = d->expiry_floor == 0;
		v[a[A_NEXT_EXPIRY]] = TimestampTzGetDatum(d->expiry_floor);
	}
	else if (d->expiry_floor != 0 &&
			 (n[a[A_NEXT_EXPIRY]] || d->expiry_floor < DatumGetTimestampTz(v[a[A_NEXT_EXPIRY]])))
	{
		v[a[A_NEXT_EXPIRY]] = TimestampTzGetDatum(d->expiry_floor);
		n[a[A_NEXT_EXPIRY]] = false;
	}
	UpdateRow(f, ST_ACCOUNTS, old, new, account_cols);
	if (tid)
		*tid = new->tts_tid;
}

/* The member's locked account row (into *old), and a copy of it to change. */
static TupleTableSlot *
AccountToChange(StoreWriter *w, int64 member_id, TupleTableSlot **old)
{
	FastState  *f = State(w);
	ItemPointerData tid;
	Datum		key = Int64GetDatum(member_id);

	Open(w, ST_ACCOUNTS);
	ItemPointerSetInvalid(&tid);
	*old = f->slot[ST_ACCOUNTS];
	FetchLatest(f->rri[ST_ACCOUNTS]->ri_RelationDesc, ST_ACCOUNTS, &tid, &key, 1, *old);
	return CopyRow(f, ST_ACCOUNTS, *old);
}

/* set_status: the account's copy of the member's status (and updated_at). */
static void
FastSetStatus(StoreWriter *w, int64 member_id, const char *status)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_ACCOUNTS);
	TupleTableSlot *old;
	TupleTableSlot *new = AccountToChange(w, member_id, &old);

	new->tts_values[s->attno[A_STATUS]] = CStringGetTextDatum(status);
	new->tts_isnull[s->attno[A_STATUS]] = false;
	new->tts_values[s->attno[A_UPDATED]] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	new->tts_isnull[s->attno[A_UPDATED]] = false;
	UpdateRow(f, ST_ACCOUNTS, old, new, status_cols);
}

/* set_tier: the member's tier columns (the statement's column list). */
static void
FastSetTier(StoreWriter *w, int64 member_id, const TierChange *c)
{
	FastState  *f = State(w);
	const AttrNumber *a = store_shape(ST_ACCOUNTS)->attno;
	TupleTableSlot *old;
	TupleTableSlot *new = AccountToChange(w, member_id, &old);
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

	if (c->set_tier)
	{
		new->tts_values[a[A_TIER]] = c->tier_null ? (Datum) 0 : c->tier;
		new->tts_isnull[a[A_TIER]] = c->tier_null;
		new->tts_values[a[A_TIER_SINCE]] = now;
		new->tts_isnull[a[A_TIER_SINCE]] = false;
		new->tts_values[a[A_UPDATED]] = now;
		new->tts_isnull[a[A_UPDATED]] = false;
	}
	if (c->set_locked)
	{
		new->tts_values[a[A_TIER_LOCKED]] = TimestampTzGetDatum(c->locked_until);
		new->tts_isnull[a[A_TIER_LOCKED]] = c->locked_null;
	}
	if (c->set_grace)
	{
		new->tts_values[a[A_TIER_GRACE]] = TimestampTzGetDatum(c->grace_until);
		new->tts_isnull[a[A_TIER_GRACE]] = c->grace_null;
	}
	UpdateRow(f, ST_ACCOUNTS, old, new, tier_cols);
}

/* set_referral: whether the member's referral waits for a purchase. */
static void
FastSetReferral(StoreWriter *w, int64 member_id, bool pending)
{
	FastState  *f = State(w);
	const AttrNumber *a = store_shape(ST_ACCOUNTS)->attno;
	TupleTableSlot *old;
	TupleTableSlot *new = AccountToChange(w, member_id, &old);

	new->tts_values[a[A_REFERRAL]] = BoolGetDatum(pending);
	new->tts_isnull[a[A_REFERRAL]] = false;
	UpdateRow(f, ST_ACCOUNTS, old, new, referral_cols);
}

/* set_segment: the member's segment, risk band and segment date. */
static void
FastSetSegment(StoreWriter *w, int64 member_id, const SegmentChange *c)
{
	FastState  *f = State(w);
	const AttrNumber *a = store_shape(ST_ACCOUNTS)->attno;
	TupleTableSlot *old;
	TupleTableSlot *new;

	if (a[A_RISK_BAND] < 0 || a[A_SEGMENT_SINCE] < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("loyalty.accounts has no risk_band or segment_since column"),
				 errhint("Update the extension with ALTER EXTENSION loyalty UPDATE.")));
	new = AccountToChange(w, member_id, &old);
	new->tts_values[a[A_SEGMENT]] = PointerGetDatum(c->segment);
	new->tts_isnull[a[A_SEGMENT]] = c->segment == NULL;
	new->tts_values[a[A_RISK_BAND]] = PointerGetDatum(c->risk_band);
	new->tts_isnull[a[A_RISK_BAND]] = c->risk_band == NULL;
	new->tts_values[a[A_SEGMENT_SINCE]] = DateADTGetDatum(c->since);
	new->tts_isnull[a[A_SEGMENT_SINCE]] = c->since_null;
	UpdateRow(f, ST_ACCOUNTS, old, new, segment_cols);
}

/* next_entry_id: what the ledger's identity column would take next. */
static int64
FastNextEntryId(StoreWriter *w)
{
	(void) w;
	return nextval_internal(store_shape(ST_LEDGER)->entry_seq, false);
}

/*
 * change_lot: move a lot's remaining, reversed and reversed_amount by the
 * given amounts (the lot found where it was read, or by its key).
 */
static void
FastChangeLot(StoreWriter *w, int64 member_id, const OpenLot *lot, int64 remaining_delta,
			  int64 reversed_delta, Datum reversed_amount)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_LOTS);
	const AttrNumber *a = s->attno;
	TupleTableSlot *old;
	TupleTableSlot *new;
	ItemPointerData tid = lot->tid;
	Datum		keys[2];

	Open(w, ST_LOTS);
	keys[0] = Int64GetDatum(lot->lot_id);
	keys[1] = Int64GetDatum(member_id);
	old = f->slot[ST_LOTS];
	FetchLatest(f->rri[ST_LOTS]->ri_RelationDesc, ST_LOTS, &tid, keys, 2, old);
	new = CopyRow(f, ST_LOTS, old);
	new->tts_values[a[T_REMAINING]] =
		Int64GetDatum(AddPoints(DatumGetInt64(new->tts_values[a[T_REMAINING]]), remaining_delta));
	new->tts_values[a[T_REVERSED]] =
		Int64GetDatum(AddPoints(DatumGetInt64(new->tts_values[a[T_REVERSED]]), reversed_delta));
	if (reversed_amount)
		new->tts_values[a[T_REVERSED_AMOUNT]] =
			DirectFunctionCall2(numeric_add, new->tts_values[a[T_REVERSED_AMOUNT]], reversed_amount);
	UpdateRow(f, ST_LOTS, old, new, lot_cols);
}

/* return_allocation: `points` more of a debit's allocation given back. */
static void
FastReturnAllocation(StoreWriter *w, int64 member_id, int64 entry_id, int64 lot_id, int64 points)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_ALLOC);
	TupleTableSlot *old;
	TupleTableSlot *new;
	ItemPointerData tid;
	Datum		keys[3];

	Open(w, ST_ALLOC);
	keys[0] = Int64GetDatum(entry_id);
	keys[1] = Int64GetDatum(member_id);
	keys[2] = Int64GetDatum(lot_id);
	ItemPointerSetInvalid(&tid);
	old = f->slot[ST_ALLOC];
	FetchLatest(f->rri[ST_ALLOC]->ri_RelationDesc, ST_ALLOC, &tid, keys, 3, old);
	new = CopyRow(f, ST_ALLOC, old);
	new->tts_values[s->attno[X_RETURNED]] =
		Int64GetDatum(AddPoints(DatumGetInt64(new->tts_values[s->attno[X_RETURNED]]), points));
	UpdateRow(f, ST_ALLOC, old, new, alloc_cols);
}

/*
 * open_lots: the member's open lots that match `filter` at `at`.  For
 * spendable lots with `need` > 0, the walk of the open-lot index, which
 * returns them by (expiry, creation), NULL expiry last, stops once the lots
 * collected cover `need` and the next one has a later key: nothing after it
 * can come first.  That is decided on the index entry, which carries the
 * key, without reading the next lot's row.
 */
static int
FastOpenLots(StoreWriter *w, int64 member_id, LotFilter filter, TimestampTz at, int64 need,
			 OpenLot **out)
{
	const TableShape *s = store_shape(ST_LOTS);
	const AttrNumber *a = s->attno;
	Relation	rel = table_open(s->relid, NoLock);
	Relation	idx = index_open(s->open_lot_index, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ScanKeyData skey;
	IndexScanDesc scan;
	Snapshot	snap;
	OpenLot    *lots;
	int			nlots = 0,
				maxlots = 16;
	int64		available = 0;
	bool		early = filter == LOTS_SPENDABLE && need > 0;

	(void) w;
	lots = palloc(sizeof(OpenLot) * maxlots);
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(member_id));
	scan = index_beginscan(rel, idx, snap, 1, 0);
	scan->xs_want_itup = early;
	index_rescan(scan, &skey, 1, NULL, 0);
	for (;;)
	{
		int64		remaining;
		TimestampTz vests,
					expires,
					created;
		bool		expires_null;
		bool		match;

		CHECK_FOR_INTERRUPTS();
		if (index_getnext_tid(scan, ForwardScanDirection) == NULL)
			break;
		if (early && available >= need && nlots > 0)
		{
			/* cppcheck-suppress unassignedVariable */
			bool		cnull;
			Datum		e = index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &expires_null);
			Datum		c = index_getattr(scan->xs_itup, 3, scan->xs_itupdesc, &cnull);

			expires = expires_null ? DT_NOEND : DatumGetTimestampTz(e);
			if (cnull || expires != lots[nlots - 1].expires_at ||
				DatumGetTimestampTz(c) != lots[nlots - 1].created_at)
				break;
		}
		/* (an MVCC snapshot sees at most one version per entry) */
		if (!index_fetch_heap(scan, slot))
			continue;
		slot_getallattrs(slot);
		if (slot->tts_isnull[a[T_REMAINING]] || slot->tts_isnull[a[T_VESTS]] ||
			slot->tts_isnull[a[T_CREATED]])
			continue;
		remaining = DatumGetInt64(slot->tts_values[a[T_REMAINING]]);
		vests = DatumGetTimestampTz(slot->tts_values[a[T_VESTS]]);
		expires_null = slot->tts_isnull[a[T_EXPIRES]];
		expires = expires_null ? DT_NOEND : DatumGetTimestampTz(slot->tts_values[a[T_EXPIRES]]);
		created = DatumGetTimestampTz(slot->tts_values[a[T_CREATED]]);
		if (remaining <= 0)
			continue;
		switch (filter)
		{
			case LOTS_SPENDABLE:
				match = vests <= at && (expires_null || expires > at);
				break;
			case LOTS_EXPIRED:
				match = !expires_null && expires <= at;
				break;
			default:
				match = true;
				break;
		}
		if (!match)
			continue;
		if (nlots == maxlots)
		{
			maxlots *= 2;
			lots = repalloc(lots, sizeof(OpenLot) * maxlots);
		}
		lots[nlots].lot_id = DatumGetInt64(slot->tts_values[a[T_LOT]]);
		lots[nlots].remaining = remaining;
		lots[nlots].vests_at = vests;
		lots[nlots].expires_at = expires;
		lots[nlots].created_at = created;
		lots[nlots].tid = slot->tts_tid;
		nlots++;
		available = AddInt8(available, remaining, "points");
	}
	index_endscan(scan);
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	*out = lots;
	return nlots;
}

/* allocations: a debit's allocations with points not yet given back. */
static int
FastAllocations(StoreWriter *w, int64 member_id, int64 entry_id, Allocation **out)
{
	const TableShape *s = store_shape(ST_ALLOC);
	const TableShape *ls;
	Relation	rel = table_open(s->relid, NoLock);
	Relation	idx = index_open(s->key_index, AccessShareLock);
	Relation	lrel;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TupleTableSlot *lslot;
	ScanKeyData skey[2];
	IndexScanDesc scan;
	Snapshot	snap;
	Allocation *allocs;
	int			n = 0,
				max = 8,
				i;

	(void) w;
	allocs = palloc(sizeof(Allocation) * max);
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(entry_id));
	ScanKeyInit(&skey[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(member_id));
	scan = index_beginscan(rel, idx, snap, 2, 0);
	index_rescan(scan, skey, 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		int64		points,
					returned;

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		points = DatumGetInt64(slot->tts_values[s->attno[X_POINTS]]);
		returned = DatumGetInt64(slot->tts_values[s->attno[X_RETURNED]]);
		if (returned >= points)
			continue;
		if (n == max)
		{
			max *= 2;
			allocs = repalloc(allocs, sizeof(Allocation) * max);
		}
		allocs[n].lot_id = DatumGetInt64(slot->tts_values[s->attno[X_LOT]]);
		allocs[n].open = points - returned;
		n++;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);

	/* each lot's dates, for the order of giving back */
	store_lock_table(ST_LOTS, AccessShareLock);
	ls = store_shape(ST_LOTS);
	lrel = table_open(ls->relid, NoLock);
	lslot = table_slot_create(lrel, NULL);
	for (i = 0; i < n; i++)
	{
		Datum		keys[2];

		keys[0] = Int64GetDatum(allocs[i].lot_id);
		keys[1] = Int64GetDatum(member_id);
		if (!OidIsValid(ls->key_index) || !FetchByKey(lrel, ls->key_index, snap, keys, 2, NULL, lslot))
			elog(ERROR, "loyalty: lot %lld of member %lld not found",
				 (long long) allocs[i].lot_id, (long long) member_id);
		slot_getallattrs(lslot);
		allocs[i].lot_expires_at = lslot->tts_isnull[ls->attno[T_EXPIRES]] ? DT_NOEND :
			DatumGetTimestampTz(lslot->tts_values[ls->attno[T_EXPIRES]]);
		allocs[i].lot_created_at = DatumGetTimestampTz(lslot->tts_values[ls->attno[T_CREATED]]);
		allocs[i].lot_tid = lslot->tts_tid;
	}
	ExecDropSingleTupleTableSlot(lslot);
	table_close(lrel, NoLock);
	UnregisterSnapshot(snap);
	*out = allocs;
	return n;
}

/*
 * The program row of the last account read, kept between calls: every
 * write reads it by its key (an index descent and a heap page, about 5% of
 * an earn).  Any change of loyalty.programs invalidates the table's relcache
 * entry in every backend at commit (the ALWAYS-enabled statement trigger
 * programs_changed), and the callback below drops the copy.  A copy is kept
 * only when the row read is also visible to a fresh snapshot, i.e. no change
 * of it had committed before our read (whose invalidation we could have
 * processed before reading the older version); a change committed later
 * sends its invalidation later.
 */
static bool pcache_valid = false;
static bool pcache_callback = false;
static int64 pcache_program = 0;
static Datum pcache_values[P_NCOLS];
static bool pcache_nulls[P_NCOLS];
static bool pcache_byval[P_NCOLS];
static int16 pcache_len[P_NCOLS];
static MemoryContext pcache_cxt = NULL;

static void
InvalidateProgramCache(Datum arg, Oid relid)
{
	(void) arg;
	(void) relid;
	pcache_valid = false;
}

/* Whether the programs_changed trigger is there, enabled ALWAYS. */
static bool
ProgramsTriggerPresent(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;
	int			i;

	if (td == NULL)
		return false;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (strcmp(t->tgname, "programs_changed") == 0 &&
			t->tgenabled == TRIGGER_FIRES_ALWAYS &&
			TRIGGER_FOR_AFTER(t->tgtype) && !TRIGGER_FOR_ROW(t->tgtype) &&
			TRIGGER_FOR_INSERT(t->tgtype) && TRIGGER_FOR_UPDATE(t->tgtype) &&
			TRIGGER_FOR_DELETE(t->tgtype) && TRIGGER_FOR_TRUNCATE(t->tgtype))
			return true;
	}
	return false;
}

/* Copy the fields of a slot (by column index of table t) out. */
static void
CopyFields(TupleTableSlot *slot, const TableShape *s, int ncols, Datum *values, bool *nulls)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;
	int			i;

	slot_getallattrs(slot);
	for (i = 0; i < ncols; i++)
	{
		AttrNumber	a = s->attno[i];
		Form_pg_attribute att;

		if (a < 0)
		{
			nulls[i] = true;
			values[i] = (Datum) 0;
			continue;
		}
		att = TupleDescAttr(desc, a);
		nulls[i] = slot->tts_isnull[a];
		values[i] = nulls[i] ? (Datum) 0 : datumCopy(slot->tts_values[a], att->attbyval, att->attlen);
	}
}

/* The program's policies into out->prog, from the copy or the table. */
static void
ReadProgram(int64 program_id, int64 member_id, Snapshot snap, AccountRead *out)
{
	const TableShape *s = store_shape(ST_PROGRAMS);
	Relation	rel;
	TupleTableSlot *slot;
	Datum		key = Int64GetDatum(program_id);
	bool		keep;
	int			i;

	if (pcache_valid && pcache_program == program_id)
	{
		for (i = 0; i < P_NCOLS; i++)
		{
			out->prog_null[i] = pcache_nulls[i];
			out->prog[i] = pcache_nulls[i] ? (Datum) 0 :
				datumCopy(pcache_values[i], pcache_byval[i], pcache_len[i]);
		}
		return;
	}
	if (!pcache_callback)
	{
		CacheRegisterRelcacheCallback(InvalidateProgramCache, (Datum) 0);
		pcache_callback = true;
	}
	rel = table_open(s->relid, NoLock);
	slot = table_slot_create(rel, NULL);
	if (!FetchByKey(rel, s->key_index, snap, &key, 1, NULL, slot))
		elog(ERROR, "loyalty: program %lld of member %lld not found",
			 (long long) program_id, (long long) member_id);
	CopyFields(slot, s, P_NCOLS, out->prog, out->prog_null);
	keep = ProgramsTriggerPresent(rel);
	if (keep)
	{
		Snapshot	latest = RegisterSnapshot(GetLatestSnapshot());
		TupleTableSlot *check = table_slot_create(rel, NULL);

		keep = table_tuple_fetch_row_version(rel, &slot->tts_tid, latest, check);
		ExecDropSingleTupleTableSlot(check);
		UnregisterSnapshot(latest);
	}
	if (keep)
	{
		MemoryContext old;

		if (pcache_cxt == NULL)
			pcache_cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty program row",
											   ALLOCSET_SMALL_SIZES);
		MemoryContextReset(pcache_cxt);
		old = MemoryContextSwitchTo(pcache_cxt);
		for (i = 0; i < P_NCOLS; i++)
		{
			Form_pg_attribute att = NULL;

			if (s->attno[i] >= 0)
				att = TupleDescAttr(RelationGetDescr(rel), s->attno[i]);
			pcache_byval[i] = att ? att->attbyval : true;
			pcache_len[i] = att ? att->attlen : 8;
			pcache_nulls[i] = out->prog_null[i];
			pcache_values[i] = out->prog_null[i] ? (Datum) 0 :
				datumCopy(out->prog[i], pcache_byval[i], pcache_len[i]);
		}
		MemoryContextSwitchTo(old);
		pcache_program = program_id;
		pcache_valid = true;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
}

/*
 * read_account: find the member's account by its key and, when `lock`, lock
 * it FOR NO KEY UPDATE as the statement would: under READ COMMITTED the
 * latest version is followed and locked (what the statement's EvalPlanQual
 * recheck does), under REPEATABLE READ and SERIALIZABLE a concurrent change
 * is a serialization failure.  Then the program's row, with the snapshot the
 * account was found with.  False when the member has no account.
 */
static bool
FastReadAccount(StoreWriter *w, int64 member_id, bool lock, AccountRead *out)
{
	const TableShape *s = store_shape(ST_ACCOUNTS);
	Relation	rel = table_open(s->relid, NoLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());
	Datum		key = Int64GetDatum(member_id);
	bool		found;

	(void) w;
	found = FetchByKey(rel, s->key_index, snap, &key, 1, NULL, slot);
	if (found && lock)
	{
		TM_FailureData tmfd;
		TM_Result	res;

		res = table_tuple_lock(rel, &slot->tts_tid, snap, slot,
							   GetCurrentCommandId(true), LockTupleNoKeyExclusive,
							   LockWaitBlock,
							   IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
							   &tmfd);
		switch (res)
		{
			case TM_Ok:
				break;
			case TM_Updated:
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				if (res == TM_Updated)
					elog(ERROR, "loyalty: unexpected concurrent update of the account of member %lld",
						 (long long) member_id);
				found = false;	/* deleted meanwhile */
				break;
			case TM_SelfModified:
				elog(ERROR, "loyalty: the account of member %lld was changed by a later command",
					 (long long) member_id);
				break;
			default:
				elog(ERROR, "loyalty: could not lock the account of member %lld (%d)",
					 (long long) member_id, (int) res);
		}
	}
	if (found)
	{
		bool		isnull;
		Datum		k = slot_getattr(slot, s->attno[A_MEMBER] + 1, &isnull);

		/* the version locked after a wait is still the member's */
		found = !isnull && DatumGetInt64(k) == member_id;
	}
	if (found)
	{
		out->tid = slot->tts_tid;
		CopyFields(slot, s, A_NCOLS, out->acc, out->acc_null);
		if (out->acc_null[A_PROGRAM])
			elog(ERROR, "loyalty: the account of member %lld has no program", (long long) member_id);
		ReadProgram(DatumGetInt64(out->acc[A_PROGRAM]), member_id, snap, out);
	}
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	return found;
}

/*
 * Close what the executor opened for the call, as ExecEndPlan would:
 * tuple routing, tuple slots, result relations and their indexes, the range
 * table's relations.
 */
void
fast_store_end(StoreWriter *w)
{
	FastState  *f = w->fast;

	if (f == NULL)
		return;
	if (f->proute)
		ExecCleanupTupleRouting(f->mtstate, f->proute);
	ExecResetTupleTable(f->estate->es_tupleTable, false);
	ExecCloseResultRelations(f->estate);
	ExecCloseRangeTableRelations(f->estate);
	FreeExecutorState(f->estate);
	pfree(f);
	w->fast = NULL;
}

/* A copy of a by-reference column, detoasted, in the current context. */
static Datum
CopyVarlena(TupleTableSlot *slot, AttrNumber a)
{
	return PointerGetDatum(PG_DETOAST_DATUM_COPY(slot->tts_values[a]));
}

/* The challenges read_progress looks for, by challenge_id descending. */
static int
CompareWantedDesc(const void *a, const void *b, void *arg)
{
	const int64 *ids = arg;
	int64		x = ids[*(const int *) a];
	int64		y = ids[*(const int *) b];

	return x > y ? -1 : x < y ? 1 : 0;
}

/*
 * read_progress: the member's periods of the challenges asked for, as a
 * fresh snapshot sees them (the member is locked: its rows are committed or
 * the caller's own).  One backward scan of the unique index on (member_id,
 * challenge_id, period_start) over the range of challenge ids asked for (a
 * descent per challenge cost a purchase moving 20 of them more than their
 * rows' updates): each entry's key decides from the index tuple whether its
 * row is wanted, so only those are fetched from the heap, by challenge, the
 * latest period first.
 */
static int
FastReadProgress(StoreWriter *w, int64 member_id, const int64 *ids, const TimestampTz *starts,
				 const bool *every, int n, ProgressRow **out)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_PROGRESS);
	const AttrNumber *a = s->attno;
	Relation	rel;
	Relation	idx;
	TupleTableSlot *slot;
	Snapshot	snap;
	ProgressRow *rows;
	int			nrows = 0,
				maxrows = Max(n, 4);
	int		   *order;
	int			next = 0;
	int			i;
	ScanKeyData skey[3];
	IndexScanDesc scan;
	ItemPointer tid;

	*out = NULL;
	if (n == 0)
		return 0;
	order = palloc(sizeof(int) * n);
	for (i = 0; i < n; i++)
		order[i] = i;
	qsort_arg(order, n, sizeof(int), CompareWantedDesc, (void *) ids);

	Open(w, ST_PROGRESS);
	rel = f->rri[ST_PROGRESS]->ri_RelationDesc;
	slot = f->slot[ST_PROGRESS];
	idx = index_open(s->key_index, AccessShareLock);
	rows = palloc(sizeof(ProgressRow) * maxrows);
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(member_id));
	ScanKeyInit(&skey[1], 2, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(ids[order[n - 1]]));
	ScanKeyInit(&skey[2], 2, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(ids[order[0]]));
	scan = index_beginscan(rel, idx, snap, 3, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, skey, 3, NULL, 0);
	while ((tid = index_getnext_tid(scan, BackwardScanDirection)) != NULL)
	{
		ProgressRow *p;
		int64		challenge;
		TimestampTz start;
		bool		isnull = false;
		bool		wanted = false;

		CHECK_FOR_INTERRUPTS();
		challenge = DatumGetInt64(index_getattr(scan->xs_itup, 2, scan->xs_itupdesc, &isnull));
		start = DatumGetTimestampTz(index_getattr(scan->xs_itup, 3, scan->xs_itupdesc, &isnull));
		/* the challenges asked for come by in the same (descending) order */
		while (next < n && ids[order[next]] > challenge)
			next++;
		for (i = next; i < n && ids[order[i]] == challenge && !wanted; i++)
			wanted = every[order[i]] || starts[order[i]] == start;
		if (!wanted)
			continue;
		/* an MVCC snapshot sees one version of a HOT chain at most */
		if (!index_fetch_heap(scan, slot))
			continue;
		slot_getallattrs(slot);
		if (nrows == maxrows)
		{
			maxrows *= 2;
			rows = repalloc(rows, sizeof(ProgressRow) * maxrows);
		}
		p = &rows[nrows++];
		p->challenge_id = challenge;
		p->period_start = DatumGetTimestampTz(slot->tts_values[a[PR_START]]);
		p->end_null = slot->tts_isnull[a[PR_END]];
		p->period_end = p->end_null ? 0 : DatumGetTimestampTz(slot->tts_values[a[PR_END]]);
		p->value = slot->tts_isnull[a[PR_VALUE]] ? NumericGetDatum(int64_to_numeric(0)) :
			CopyVarlena(slot, a[PR_VALUE]);
		p->items = slot->tts_isnull[a[PR_ITEMS]] ? (Datum) 0 : CopyVarlena(slot, a[PR_ITEMS]);
		p->last_item = slot->tts_isnull[a[PR_LAST]] ? NULL :
			DatumGetTextPP(CopyVarlena(slot, a[PR_LAST]));
		p->completed = !slot->tts_isnull[a[PR_COMPLETED]];
		p->completed_at = p->completed ? DatumGetTimestampTz(slot->tts_values[a[PR_COMPLETED]]) : 0;
		p->completions = DatumGetInt32(slot->tts_values[a[PR_COMPLETIONS]]);
		p->award_null = slot->tts_isnull[a[PR_AWARD]];
		p->award_entry = p->award_null ? 0 : DatumGetInt64(slot->tts_values[a[PR_AWARD]]);
		p->award_member_null = slot->tts_isnull[a[PR_AWARD_MEMBER]];
		p->award_member = p->award_member_null ? 0 : DatumGetInt64(slot->tts_values[a[PR_AWARD_MEMBER]]);
		p->clawed_null = slot->tts_isnull[a[PR_CLAWED]];
		p->clawed_back_at = p->clawed_null ? 0 : DatumGetTimestampTz(slot->tts_values[a[PR_CLAWED]]);
		p->updated_at = DatumGetTimestampTz(slot->tts_values[a[PR_UPDATED]]);
		p->slot = -1;
		p->tid = slot->tts_tid;
		/* what update_progress writes over, without fetching it again */
		p->tuple = ExecCopySlotHeapTuple(slot);
		p->tuple->t_tableOid = RelationGetRelid(rel);
	}
	index_endscan(scan);
	UnregisterSnapshot(snap);
	ExecClearTuple(slot);
	index_close(idx, NoLock);
	pfree(order);
	*out = rows;
	return nrows;
}

/*
 * Into the table's slot, the version of a row that a read of this call found
 * at `tid` (the member's lock keeps it where it was and as it was): its copy
 * `tuple`, or fetched again; false when it is gone (a version changed
 * meanwhile would fail the update).
 */
static bool
ReadVersion(FastState *f, StoreTable t, HeapTuple tuple, ItemPointer tid)
{
	TupleTableSlot *old = f->slot[t];
	bool		found;

	if (tuple != NULL && ItemPointerEquals(&tuple->t_self, tid))
	{
		ExecForceStoreHeapTuple(tuple, old, false);
		old->tts_tid = tuple->t_self;
		old->tts_tableOid = tuple->t_tableOid;
		found = true;
	}
	else
	{
		Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

		found = ItemPointerIsValid(tid) &&
			table_tuple_fetch_row_version(f->rri[t]->ri_RelationDesc, tid, snap, old);
		UnregisterSnapshot(snap);
	}
	if (found)
		slot_getallattrs(old);
	return found;
}

/* A period's columns into a row of challenge_periods. */
static void
SetProgress(TupleTableSlot *slot, const TableShape *s, const ProgressRow *p)
{
	Set(slot, s, PR_END, TimestampTzGetDatum(p->period_end), p->end_null);
	Set(slot, s, PR_VALUE, p->value, false);
	Set(slot, s, PR_ITEMS, p->items, p->items == (Datum) 0);
	Set(slot, s, PR_LAST, PointerGetDatum(p->last_item), p->last_item == NULL);
	Set(slot, s, PR_COMPLETED, TimestampTzGetDatum(p->completed_at), !p->completed);
	Set(slot, s, PR_COMPLETIONS, Int32GetDatum(p->completions), false);
	Set(slot, s, PR_AWARD, Int64GetDatum(p->award_entry), p->award_null);
	Set(slot, s, PR_AWARD_MEMBER, Int64GetDatum(p->award_member), p->award_member_null);
	Set(slot, s, PR_CLAWED, TimestampTzGetDatum(p->clawed_back_at), p->clawed_null);
	Set(slot, s, PR_UPDATED, TimestampTzGetDatum(p->updated_at), false);
}

/* insert_progress: a period's row of challenge_periods, as given. */
static void
FastInsertProgress(StoreWriter *w, int64 member_id, int64 program_id, const ProgressRow *p)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_PROGRESS);
	TupleTableSlot *slot;

	Open(w, ST_PROGRESS);
	slot = NewRow(f, ST_PROGRESS);
	Set(slot, s, PR_MEMBER, Int64GetDatum(member_id), false);
	Set(slot, s, PR_CHALLENGE, Int64GetDatum(p->challenge_id), false);
	Set(slot, s, PR_START, TimestampTzGetDatum(p->period_start), false);
	Set(slot, s, PR_PROGRAM, Int64GetDatum(program_id), false);
	SetProgress(slot, s, p);
	InsertRow(f, ST_PROGRESS, slot);
}

/*
 * update_progress: a period's columns written over the row read_progress
 * found (the member's lock keeps it where it was and as it was: its copy is
 * the version written over; a version changed meanwhile would fail the
 * update).
 */
static void
FastUpdateProgress(StoreWriter *w, int64 member_id, const ProgressRow *p)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_PROGRESS);
	TupleTableSlot *old;
	TupleTableSlot *new;
	ItemPointerData tid = p->tid;

	Open(w, ST_PROGRESS);
	old = f->slot[ST_PROGRESS];
	if (!ReadVersion(f, ST_PROGRESS, p->tuple, &tid))
		elog(ERROR, "loyalty: challenge %lld's progress row of member %lld moved while locked",
			 (long long) p->challenge_id, (long long) member_id);
	new = CopyRow(f, ST_PROGRESS, old);
	SetProgress(new, s, p);
	UpdateRow(f, ST_PROGRESS, old, new, progress_cols);
}

/*
 * read_state: the member's challenge_state row, as a fresh snapshot sees it
 * (the member is locked), its arrays detoasted in the caller's context.
 */
static bool
FastReadState(StoreWriter *w, int64 member_id, StateRow *out)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_STATE);
	Relation	rel;
	TupleTableSlot *slot;
	Snapshot	snap;
	Datum		key = Int64GetDatum(member_id);

	Open(w, ST_STATE);
	rel = f->rri[ST_STATE]->ri_RelationDesc;
	slot = f->slot[ST_STATE];
	snap = RegisterSnapshot(GetLatestSnapshot());
	out->found = FetchByKey(rel, s->key_index, snap, &key, 1, NULL, slot);
	UnregisterSnapshot(snap);
	out->tuple = NULL;
	ItemPointerSetInvalid(&out->tid);
	if (!out->found)
		return false;
	out->tid = slot->tts_tid;

	/*
	 * One copy of the row: what write_state writes over, without fetching it
	 * again, and where the columns returned point (an array stored compressed
	 * or with a short header is detoasted when it is read)
	 */
	out->tuple = ExecCopySlotHeapTuple(slot);
	out->tuple->t_tableOid = RelationGetRelid(rel);
	ExecClearTuple(slot);
	{
		TupleDesc	desc = RelationGetDescr(rel);
		Datum	   *values = palloc(sizeof(Datum) * desc->natts);
		bool	   *isnull = palloc(sizeof(bool) * desc->natts);

		heap_deform_tuple(out->tuple, desc, values, isnull);
		for (int c = 0; c < SS_NCOLS; c++)
		{
			out->nulls[c] = isnull[s->attno[c]];
			out->cols[c] = out->nulls[c] ? (Datum) 0 : values[s->attno[c]];
		}
		pfree(values);
		pfree(isnull);
	}
	return true;
}

/* write_state: over the row read_state found, or a new row. */
static void
FastWriteState(StoreWriter *w, int64 member_id, const StateRow *r)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_STATE);
	TupleTableSlot *old;
	TupleTableSlot *new;
	ItemPointerData tid;
	int			c;

	Open(w, ST_STATE);
	if (!r->found)
	{
		new = NewRow(f, ST_STATE);
		for (c = 0; c < SS_NCOLS; c++)
			Set(new, s, c, r->cols[c], r->nulls[c]);
		Set(new, s, SS_MEMBER, Int64GetDatum(member_id), false);
		InsertRow(f, ST_STATE, new);
		return;
	}
	old = f->slot[ST_STATE];
	tid = r->tid;
	if (!ReadVersion(f, ST_STATE, r->tuple, &tid))
		elog(ERROR, "loyalty: the challenge state row of member %lld moved while locked",
			 (long long) member_id);
	new = CopyRow(f, ST_STATE, old);
	for (c = SS_IDS; c < SS_NCOLS; c++)
		Set(new, s, c, r->cols[c], r->nulls[c]);
	UpdateRow(f, ST_STATE, old, new, state_cols);
}

/* insert_challenge_facts: what a purchase moved (standing 1: not refunded). */
static void
FastInsertChallengeFacts(StoreWriter *w, const ChallengeFactsRow *cf)
{
	FastState  *f = State(w);
	const TableShape *s = store_shape(ST_FACTS);
	TupleTableSlot *slot;

	Open(w, ST_FACTS);
	slot = NewRow(f, ST_FACTS);
	Set(slot, s, CF_MEMBER, Int64GetDatum(cf->member_id), false);
	Set(slot, s, CF_ENTRY, Int64GetDatum(cf->entry_id), false);
	Set(slot, s, CF_PROGRAM, Int64GetDatum(cf->program_id), false);
	Set(slot, s, CF_CHALLENGES, cf->challenge_ids, false);
	Set(slot, s, CF_STARTS, cf->period_starts, false);
	Set(slot, s, CF_DELTAS, cf->deltas, false);
	Set(slot, s, CF_ITEMS, cf->items, false);
	Set(slot, s, CF_STANDING, NumericGetDatum(int64_to_numeric(1)), false);
	InsertRow(f, ST_FACTS, slot);
}

/* read_joined: the member's joined_at, as a fresh snapshot sees it. */
static bool
FastReadJoined(StoreWriter *w, int64 member_id, TimestampTz *joined)
{
	const TableShape *s = store_shape(ST_MEMBERS);
	Relation	rel = table_open(s->relid, NoLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());
	Datum		key = Int64GetDatum(member_id);
	bool		found;

	(void) w;
	found = FetchByKey(rel, s->key_index, snap, &key, 1, NULL, slot);
	if (found)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, s->attno[M_JOINED] + 1, &isnull);

		/* NOT NULL in the table; a NULL period start would be no period */
		if (isnull)
			elog(ERROR, "loyalty: member %lld has no joined_at", (long long) member_id);
		*joined = DatumGetTimestampTz(d);
	}
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	return found;
}

const StoreRoutine fast_store = {
	.name = "fast",
	.read_account = FastReadAccount,
	.insert_entry = FastInsertEntry,
	.insert_lot = FastInsertLot,
	.update_account = FastUpdateAccount,
	.insert_idempotency = FastInsertIdempotency,
	.read_idempotency = FastReadIdempotency,
	.open_lots = FastOpenLots,
	.change_lot = FastChangeLot,
	.insert_allocation = FastInsertAllocation,
	.allocations = FastAllocations,
	.return_allocation = FastReturnAllocation,
	.set_status = FastSetStatus,
	.set_tier = FastSetTier,
	.set_referral = FastSetReferral,
	.set_segment = FastSetSegment,
	.next_entry_id = FastNextEntryId,
	.read_progress = FastReadProgress,
	.insert_progress = FastInsertProgress,
	.update_progress = FastUpdateProgress,
	.read_state = FastReadState,
	.write_state = FastWriteState,
	.insert_challenge_facts = FastInsertChallengeFacts,
	.read_joined = FastReadJoined,
};
