/*
 * direct.c
 *		The rows every write makes (ledger entry, lot, account update,
 *		idempotency key) written through the table AM and the executor's
 *		row-level routines, as logical replication's apply worker writes them.
 *
 * Why: an SPI statement pays for executor start-up and shutdown (plan tree,
 * expression compilation, CHECK expressions re-read from the catalog), and a
 * call writes three or four rows whose shape never changes.  The row-level
 * routines keep everything a statement would do for these rows: NOT NULL and
 * CHECK constraints, unique indexes, partial-index predicates, row triggers
 * (user audit triggers still fire), partition routing, WAL and replication.
 * Only the SQL layer is skipped, and with it the table privileges, which the
 * SECURITY DEFINER callers hold anyway.
 *
 * Columns are found by name and checked against the table once per backend
 * (and again whenever the table is replaced), so a column the write path does
 * not know, or one it needs that is gone, is a clear error, not a bad row.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/itup.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/index.h"
#include "catalog/pg_opfamily_d.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
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
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/relcache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "direct.h"
#include "points.h"

typedef enum DirectTable
{
	DT_LEDGER,
	DT_LOTS,
	DT_ACCOUNTS,
	DT_IDEM,
	DT_ALLOC,
	DT_PROGRAMS,
	DT_COUNT
} DirectTable;

#define MAX_COLS 24

/* What the write path knows of each table: its columns, in our order. */
typedef struct TableDef
{
	const char *name;
	int			ncols;
	const char *cols[MAX_COLS];
} TableDef;

enum
{
	L_MEMBER, L_ENTRY, L_PROGRAM, L_KIND, L_POINTS, L_HELD, L_AMOUNT, L_CHANNEL,
	L_REFERENCE, L_REASON, L_ACTOR, L_SOURCE, L_HOLD, L_IDEM, L_CREATED,
	L_OCCURRED, L_DETAILS, L_NCOLS
};
enum
{
	T_MEMBER, T_LOT, T_ENTRY, T_ORIGINAL, T_REMAINING, T_REVERSED,
	T_REVERSED_AMOUNT, T_VESTS, T_EXPIRES, T_CREATED, T_NCOLS
};
enum
{
	A_MEMBER, A_BALANCE, A_HELD, A_DEBT, A_EARNED, A_REDEEMED, A_EXPIRED,
	A_FIRST, A_LAST, A_COUNT, A_DAYS, A_AMOUNT, A_UPDATED,
	/* read when the account is locked */
	A_PROGRAM, A_STATUS, A_REFERRAL, A_TIER, A_SEGMENT, A_NEXT_EXPIRY, A_NCOLS
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
	P_CLOSED, P_EVENTS, P_TIME_ZONE, P_RULES_VERSION, P_TIER_METRIC, P_NCOLS
};

static const TableDef table_defs[DT_COUNT] = {
	[DT_LEDGER] = {"ledger", L_NCOLS,
		{"member_id", "entry_id", "program_id", "kind", "points", "held_delta", "amount",
			"channel", "reference", "reason", "actor", "source_entry", "hold_id",
	"idempotency_key", "created_at", "occurred_at", "details"}},
	[DT_LOTS] = {"lots", T_NCOLS,
		{"member_id", "lot_id", "entry_id", "original", "remaining", "reversed",
	"reversed_amount", "vests_at", "expires_at", "created_at"}},
	/* only the columns an update changes or a write reads */
	[DT_ACCOUNTS] = {"accounts", A_NCOLS,
		{"member_id", "balance", "held", "debt", "lifetime_earned", "lifetime_redeemed",
			"lifetime_expired", "first_purchase_at", "last_purchase_at", "purchase_count",
			"purchase_days", "purchase_amount", "updated_at", "program_id", "status",
	/*
	 * "?": optional.  Between installing a new library and ALTER EXTENSION
	 * UPDATE, the old schema lacks the column and writes carry on without it
	 * (the old schema's expiry job does not need it).
	 */
	"referral_pending", "tier", "segment", "?next_expiry_at"}},
	[DT_IDEM] = {"idempotency_keys", K_NCOLS,
		{"member_id", "idempotency_key", "operation", "request_hash", "result", "entry_id",
	"created_at"}},
	[DT_ALLOC] = {"allocations", X_NCOLS,
	{"member_id", "entry_id", "lot_id", "points", "returned"}},
	/* read only: the policies a write follows */
	[DT_PROGRAMS] = {"programs", P_NCOLS,
		{"program_id", "earn_rate", "rounding", "expiry_period", "pending_period",
			"refund_policy", "max_hold_ttl", "closed_through", "event_kinds", "time_zone",
	"rules_version", "tier_metric"}},
};

/* Per backend: where our columns are in each table, checked on every use. */
typedef struct ColumnMap
{
	Oid			relid;
	int			natts;			/* columns when mapped (an added one remaps) */
	AttrNumber	attno[MAX_COLS];	/* 0-based index into the tuple; -1: an
									 * optional column that is missing */
	Oid			seqid;			/* ledger: the entry_id identity sequence */
	bool		checked;		/* checked against the table since its last
								 * relcache invalidation */
} ColumnMap;

static ColumnMap maps[DT_COUNT];

struct DirectWriter
{
	EState	   *estate;
	Relation	rel[DT_COUNT];
	ResultRelInfo *rri[DT_COUNT];
	TupleTableSlot *slot[DT_COUNT];
	/* partitioned ledger: tuple routing, as COPY and logical replication do */
	ModifyTableState *mtstate;
	PartitionTupleRouting *proute;
};

/* Build or check the column map of an opened table. */
/* A column's name in table_defs, without the optional mark. */
static inline const char *
ColName(const char *col)
{
	return col[0] == '?' ? col + 1 : col;
}

static void
CheckColumns(DirectTable t, Relation rel)
{
	const TableDef *def = &table_defs[t];
	ColumnMap  *map = &maps[t];
	TupleDesc	desc = RelationGetDescr(rel);
	bool		valid;
	int			i;

	/*
	 * Any change of the table's columns invalidates its relcache entry,
	 * which clears `checked` (InvalidateColumnMaps): until then the names
	 * need not be compared again on every call.
	 */
	if (map->checked && map->relid == RelationGetRelid(rel))
		return;
	valid = map->relid == RelationGetRelid(rel) && map->natts == desc->natts;
	for (i = 0; valid && i < def->ncols; i++)
	{
		Form_pg_attribute att;

		if (map->attno[i] < 0)
			continue;
		if (map->attno[i] >= desc->natts)
		{
			valid = false;
			break;
		}
		att = TupleDescAttr(desc, map->attno[i]);
		valid = !att->attisdropped && strcmp(NameStr(att->attname), ColName(def->cols[i])) == 0;
	}
	if (valid)
	{
		map->checked = true;
		return;
	}

	map->relid = InvalidOid;
	map->checked = false;
	for (i = 0; i < def->ncols; i++)
	{
		int			a;

		for (a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), ColName(def->cols[i])) == 0)
				break;
		}
		if (a == desc->natts && def->cols[i][0] == '?')
			a = -1;
		else if (a == desc->natts)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of table loyalty.%s is missing", def->cols[i], def->name),
					 errhint("The extension's tables were changed by hand; reinstall or update the extension.")));
		map->attno[i] = a;
	}
	/* an insert must know every column: the rest would silently be NULL */
	if (t != DT_ACCOUNTS && t != DT_PROGRAMS)
	{
		int			a;

		for (a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			/* generated columns are computed by the executor's routines */
			if (att->attisdropped || att->attgenerated == ATTRIBUTE_GENERATED_STORED)
				continue;
			for (i = 0; i < def->ncols; i++)
				if (map->attno[i] == a)
					break;
			if (i == def->ncols)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("column \"%s\" of table loyalty.%s is unknown to the write path",
								NameStr(att->attname), def->name),
						 errhint("The extension's tables were changed by hand; reinstall or update the extension.")));
		}
	}
	if (t == DT_LEDGER)
		map->seqid = getIdentitySequence(RelationGetRelid(rel), map->attno[L_ENTRY] + 1, false);
	map->relid = RelationGetRelid(rel);
	map->natts = desc->natts;
	map->checked = true;
}

static void
InvalidateColumnMaps(Datum arg, Oid relid)
{
	int			t;

	(void) arg;
	for (t = 0; t < DT_COUNT; t++)
		if (!OidIsValid(relid) || maps[t].relid == relid)
			maps[t].checked = false;
}

/*
 * The tables' OIDs, looked up once and forgotten whenever pg_class changes
 * (a table replaced, the schema renamed), so a call costs no catalog lookup.
 */
static Oid	relids[DT_COUNT];
static bool relids_valid = false;
static bool relids_callback = false;

/*
 * The program row of the last account read, kept between calls: every write
 * read it by its key (an index descent and a heap page, about 5% of an
 * earn's instructions).  Any change of loyalty.programs invalidates the table's relcache
 * entry in every backend at commit (trigger programs_changed, enabled ALWAYS
 * so that it fires under session_replication_role = replica too), and the
 * callback below drops the copy.  A transaction processes invalidations at
 * its start, so a call never uses a row older than its transaction; within a
 * READ COMMITTED transaction the row may be a statement old, as a program
 * change committed during the call would be.
 */
static bool pcache_valid = false;
static int64 pcache_program = 0;
static Datum pcache_values[PF_COUNT];
static bool pcache_nulls[PF_COUNT];
static bool pcache_byval[PF_COUNT];
static int16 pcache_len[PF_COUNT];
static MemoryContext pcache_cxt = NULL;

static void InvalidateDirectCaches(Datum arg, Oid relid);

static void
InvalidateProgramCache(Datum arg, Oid relid)
{
	(void) arg;
	if (!OidIsValid(relid) || !relids_valid || relid == relids[DT_PROGRAMS])
		pcache_valid = false;
}

static void
InvalidateRelids(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	relids_valid = false;
}

static Oid
TableOid(DirectTable t)
{
	if (!relids_valid)
	{
		Oid			nspid = get_namespace_oid("loyalty", false);
		int			i;

		if (!relids_callback)
		{
			CacheRegisterSyscacheCallback(RELNAMENSP, InvalidateRelids, (Datum) 0);
			CacheRegisterSyscacheCallback(NAMESPACEOID, InvalidateRelids, (Datum) 0);
			/*
			 * One relcache callback for all of this file's caches: a backend
			 * has ten slots for every library loaded (Citus takes some).
			 */
			CacheRegisterRelcacheCallback(InvalidateDirectCaches, (Datum) 0);
			relids_callback = true;
		}
		for (i = 0; i < DT_COUNT; i++)
		{
			relids[i] = get_relname_relid(table_defs[i].name, nspid);
			if (!OidIsValid(relids[i]))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_TABLE),
						 errmsg("table loyalty.%s does not exist", table_defs[i].name)));
		}
		relids_valid = true;
	}
	return relids[t];
}

DirectWriter *
direct_begin(void)
{
	DirectWriter *w;
	List	   *rtable = NIL;
	int			t;

	if (loyalty_distributed())
		return spi_begin();
	w = palloc0(sizeof(DirectWriter));
	w->estate = CreateExecutorState();
	/* one range-table entry per table, opened on first use */
	for (t = 0; t < DT_COUNT; t++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);

		rte->rtekind = RTE_RELATION;
		rte->relid = TableOid(t);
		rte->relkind = RELKIND_RELATION;	/* corrected when opened */
		rte->rellockmode = t == DT_PROGRAMS ? AccessShareLock : RowExclusiveLock;
		rtable = lappend(rtable, rte);
	}
	ExecInitRangeTable(w->estate, rtable);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->estate->es_snapshot = GetActiveSnapshot();
	AfterTriggerBeginQuery();
	return w;
}

/*
 * The IndexInfo of each B-tree index of our tables, built once per backend
 * with its partial-index predicate already compiled.  ExecOpenIndices would
 * rebuild them and ExecInsertIndexTuples recompile each predicate (through
 * the planner's constant folding) for every call, a tenth of an earn's time.
 * Any relcache invalidation of one of the tables or indexes (or of all)
 * marks the lot stale.  Indexes of other access methods, or with expressions, get
 * a fresh IndexInfo per call, as the executor makes them.
 */
typedef struct IndexCache
{
	bool		valid;
	Oid			relid;
	int			n;
	Oid		   *oids;
	IndexInfo **infos;			/* NULL: build per call */
	/* stored generated columns: one compiled expression per attribute */
	ExprState **gen;			/* NULL: none */
	int			ngen;
} IndexCache;

static IndexCache icache[DT_COUNT];
static MemoryContext icache_cxt = NULL;

/*
 * An invalidation only marks the cache stale: a call may be using the
 * IndexInfos right now (an invalidation can arrive whenever a lock is
 * taken), so their memory is freed at the end of the transaction.
 */
static bool icache_dirty = false;

static void
InvalidateIndexCache(Datum arg, Oid relid)
{
	int			t,
				i;
	bool		hit = false;

	(void) arg;
	for (t = 0; !hit && t < DT_COUNT; t++)
	{
		if (!icache[t].valid)
			continue;
		hit = !OidIsValid(relid) || relid == icache[t].relid;
		for (i = 0; !hit && i < icache[t].n; i++)
			hit = icache[t].oids[i] == relid;
	}
	if (!hit)
		return;
	for (t = 0; t < DT_COUNT; t++)
		icache[t].valid = false;
	icache_dirty = true;
}

static void
InvalidateDirectCaches(Datum arg, Oid relid)
{
	InvalidateColumnMaps(arg, relid);
	InvalidateProgramCache(arg, relid);
	InvalidateIndexCache(arg, relid);
}

static void
IndexCacheXactEnd(XactEvent event, void *arg)
{
	(void) arg;
	if (!icache_dirty || icache_cxt == NULL)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		MemoryContextReset(icache_cxt);
		memset(icache, 0, sizeof(icache));
		icache_dirty = false;
	}
}

static void
BuildIndexCache(Relation rel, DirectTable t)
{
	IndexCache *c = &icache[t];
	List	   *oids = RelationGetIndexList(rel);
	MemoryContext old;
	ListCell   *lc;
	int			i = 0;

	if (icache_cxt == NULL)
	{
		icache_cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty index cache",
										   ALLOCSET_SMALL_SIZES);
		RegisterXactCallback(IndexCacheXactEnd, NULL);
	}
	old = MemoryContextSwitchTo(icache_cxt);
	c->n = list_length(oids);
	c->oids = palloc0(sizeof(Oid) * Max(c->n, 1));
	c->infos = palloc0(sizeof(IndexInfo *) * Max(c->n, 1));
	foreach(lc, oids)
	{
		Oid			idxid = lfirst_oid(lc);
		Relation	idx = index_open(idxid, RowExclusiveLock);

		c->oids[i] = idxid;
		if (idx->rd_rel->relam == BTREE_AM_OID && RelationGetIndexExpressions(idx) == NIL)
		{
			IndexInfo  *ii = BuildIndexInfo(idx);

			if (ii->ii_Predicate != NIL)
				ii->ii_PredicateState =
					ExecInitQual((List *) expression_planner((Expr *) ii->ii_Predicate), NULL);
			c->infos[i] = ii;
		}
		index_close(idx, NoLock);
		i++;
	}
	/*
	 * The executor would read, plan and compile each generation expression
	 * again for every call (ExecInitStoredGenerated); like the predicates
	 * above, they are compiled once.  They depend on nothing but the row.
	 */
	c->gen = NULL;
	c->ngen = 0;
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
	{
		TupleDesc	desc = RelationGetDescr(rel);

		c->gen = palloc0(sizeof(ExprState *) * desc->natts);
		for (i = 0; i < desc->natts; i++)
		{
			if (TupleDescAttr(desc, i)->attgenerated != ATTRIBUTE_GENERATED_STORED)
				continue;
			c->gen[i] = ExecInitExpr(expression_planner((Expr *) build_column_default(rel, i + 1)),
									 NULL);
			c->ngen++;
		}
	}
	MemoryContextSwitchTo(old);
	list_free(oids);
	c->relid = RelationGetRelid(rel);
	c->valid = true;
}

/* ExecOpenIndices, with the cached IndexInfos. */
static void
OpenIndices(ResultRelInfo *rri, DirectTable t)
{
	Relation	rel = rri->ri_RelationDesc;
	IndexCache *c = &icache[t];
	int			i;

	if (!c->valid || c->relid != RelationGetRelid(rel))
		BuildIndexCache(rel, t);
	if (c->gen)
	{
		rri->ri_GeneratedExprs = c->gen;
		rri->ri_NumGeneratedNeeded = c->ngen;
	}
	if (!rel->rd_rel->relhasindex)
		return;
	rri->ri_NumIndices = c->n;
	rri->ri_IndexRelationDescs = palloc(sizeof(Relation) * Max(c->n, 1));
	rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * Max(c->n, 1));
	for (i = 0; i < c->n; i++)
	{
		Relation	idx = index_open(c->oids[i], RowExclusiveLock);

		rri->ri_IndexRelationDescs[i] = idx;
		rri->ri_IndexRelationInfo[i] = c->infos[i] ? c->infos[i] : BuildIndexInfo(idx);
	}
}

/* The table's result relation, opened with its indexes on first use. */
static ResultRelInfo *
Open(DirectWriter *w, DirectTable t)
{
	if (w->rri[t] == NULL)
	{
		RangeTblEntry *rte = exec_rt_fetch(t + 1, w->estate);
		Relation	rel = table_open(rte->relid, RowExclusiveLock);
		ResultRelInfo *rri = makeNode(ResultRelInfo);

		rte->relkind = rel->rd_rel->relkind;
		CheckColumns(t, rel);
		/*
		 * A debit updates only lots.remaining: say so, as an UPDATE's range
		 * table entry would, so that the generated is_open is recomputed.
		 */
		if (t == DT_LOTS)
			rte->updatedCols = bms_make_singleton(maps[DT_LOTS].attno[T_REMAINING] + 1 -
												  FirstLowInvalidHeapAttributeNumber);
		InitResultRelInfo(rri, rel, t + 1, NULL, 0);
		w->estate->es_opened_result_relations =
			lappend(w->estate->es_opened_result_relations, rri);
		if (rel->rd_rel->relkind == RELKIND_RELATION)
			OpenIndices(rri, t);
		w->rel[t] = rel;
		w->rri[t] = rri;
		w->slot[t] = table_slot_create(rel, &w->estate->es_tupleTable);
	}
	return w->rri[t];
}

/* A fresh virtual row of the table, all NULL. */
static TupleTableSlot *
NewRow(DirectWriter *w, DirectTable t)
{
	TupleTableSlot *slot = w->slot[t];

	ExecClearTuple(slot);
	memset(slot->tts_values, 0, sizeof(Datum) * slot->tts_tupleDescriptor->natts);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	return slot;
}

static inline void
Set(TupleTableSlot *slot, DirectTable t, int col, Datum value, bool isnull)
{
	AttrNumber	a = maps[t].attno[col];

	slot->tts_values[a] = value;
	slot->tts_isnull[a] = isnull;
}

/* Insert the row in `slot`, routing it to its partition when needed. */
static void
InsertRow(DirectWriter *w, DirectTable t, TupleTableSlot *slot)
{
	ResultRelInfo *rri = w->rri[t];

	ExecStoreVirtualTuple(slot);
	if (w->rel[t]->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		ResultRelInfo *part;
		TupleTableSlot *pslot;
		TupleConversionMap *map;
		MemoryContext oldcxt;

		if (w->proute == NULL)
		{
			w->mtstate = makeNode(ModifyTableState);
			w->mtstate->ps.plan = NULL;
			w->mtstate->ps.state = w->estate;
			w->mtstate->operation = CMD_INSERT;
			w->mtstate->resultRelInfo = rri;
			w->mtstate->rootResultRelInfo = rri;
			w->proute = ExecSetupPartitionTupleRouting(w->estate, w->rel[t]);
		}
		oldcxt = MemoryContextSwitchTo(GetPerTupleMemoryContext(w->estate));
		part = ExecFindPartition(w->mtstate, rri, w->proute, slot, w->estate);
		MemoryContextSwitchTo(oldcxt);
		map = part->ri_RootToPartitionMap;
		pslot = part->ri_PartitionTupleSlot;
		if (map != NULL)
			slot = execute_attr_map_slot(map->attrMap, slot, pslot);
		ExecSimpleRelationInsert(part, w->estate, slot);
	}
	else
		ExecSimpleRelationInsert(rri, w->estate, slot);
	ResetPerTupleExprContext(w->estate);
}

/*
 * Append a ledger row (and the lot of a credit, numbered by its entry);
 * returns the new entry_id.
 */
int64
direct_insert_entry(DirectWriter *w, const LedgerRow *r)
{
	TupleTableSlot *slot;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int64		entry_id;

	if (loyalty_distributed())
		return spi_insert_entry(w, r);
	Open(w, DT_LEDGER);
	entry_id = nextval_internal(maps[DT_LEDGER].seqid, false);
	slot = NewRow(w, DT_LEDGER);
	Set(slot, DT_LEDGER, L_MEMBER, Int64GetDatum(r->member_id), false);
	Set(slot, DT_LEDGER, L_ENTRY, Int64GetDatum(entry_id), false);
	Set(slot, DT_LEDGER, L_PROGRAM, Int64GetDatum(r->program_id), false);
	Set(slot, DT_LEDGER, L_KIND, CStringGetTextDatum(r->kind), false);
	Set(slot, DT_LEDGER, L_POINTS, Int64GetDatum(r->points), false);
	Set(slot, DT_LEDGER, L_HELD, Int64GetDatum(r->held_delta), false);
	Set(slot, DT_LEDGER, L_AMOUNT, r->amount, r->amount == (Datum) 0);
	Set(slot, DT_LEDGER, L_CHANNEL, PointerGetDatum(r->channel), r->channel == NULL);
	Set(slot, DT_LEDGER, L_REFERENCE, PointerGetDatum(r->reference), r->reference == NULL);
	Set(slot, DT_LEDGER, L_REASON, PointerGetDatum(r->reason), r->reason == NULL);
	/* the role that called, not the extension owner the call runs as */
	Set(slot, DT_LEDGER, L_ACTOR,
		CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false)), false);
	Set(slot, DT_LEDGER, L_SOURCE, Int64GetDatum(r->source_entry), r->source_entry == 0);
	Set(slot, DT_LEDGER, L_HOLD, Int64GetDatum(r->hold_id), r->hold_id == 0);
	Set(slot, DT_LEDGER, L_IDEM, PointerGetDatum(r->idem_key), r->idem_key == NULL);
	Set(slot, DT_LEDGER, L_CREATED, TimestampTzGetDatum(now), false);
	Set(slot, DT_LEDGER, L_OCCURRED, TimestampTzGetDatum(r->occurred_at ? r->occurred_at : now), false);
	if (r->details)
		Set(slot, DT_LEDGER, L_DETAILS,
			DirectFunctionCall1(jsonb_in, CStringGetDatum(r->details)), false);
	InsertRow(w, DT_LEDGER, slot);

	if (r->lot_original > 0)
	{
		Open(w, DT_LOTS);
		slot = NewRow(w, DT_LOTS);
		Set(slot, DT_LOTS, T_MEMBER, Int64GetDatum(r->member_id), false);
		Set(slot, DT_LOTS, T_LOT, Int64GetDatum(entry_id), false);
		Set(slot, DT_LOTS, T_ENTRY, Int64GetDatum(entry_id), false);
		Set(slot, DT_LOTS, T_ORIGINAL, Int64GetDatum(r->lot_original), false);
		Set(slot, DT_LOTS, T_REMAINING, Int64GetDatum(r->lot_remaining), false);
		Set(slot, DT_LOTS, T_REVERSED, Int64GetDatum(0), false);
		Set(slot, DT_LOTS, T_REVERSED_AMOUNT, NumericGetDatum(int64_to_numeric(0)), false);
		Set(slot, DT_LOTS, T_VESTS, TimestampTzGetDatum(r->lot_vests_at), false);
		Set(slot, DT_LOTS, T_EXPIRES, TimestampTzGetDatum(r->lot_expires_at), r->lot_expires_at == 0);
		Set(slot, DT_LOTS, T_CREATED, TimestampTzGetDatum(now), false);
		InsertRow(w, DT_LOTS, slot);
	}
	return entry_id;
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

/*
 * The account update checks the table's one CHECK (accounts_sound) in C,
 * because the executor would re-read and compile it from the catalog for
 * every call.  Any other CHECK, stored generated column or BEFORE UPDATE row
 * trigger on accounts takes the executor's general routine instead.
 */
static bool
AccountsFastPath(ResultRelInfo *rri)
{
	TupleConstr *constr = RelationGetDescr(rri->ri_RelationDesc)->constr;

	if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_update_before_row)
		return false;
	if (constr == NULL)
		return true;
	if (constr->has_generated_stored)
		return false;
	return constr->num_check == 0 ||
		(constr->num_check == 1 && strcmp(constr->check[0].ccname, "accounts_sound") == 0);
}

/* accounts_sound, as 30_ledger.sql defines it */
static void
CheckAccountsSound(Relation rel, TupleTableSlot *slot, const AttrNumber *a)
{
	int64		balance = DatumGetInt64(slot->tts_values[a[A_BALANCE]]);
	int64		held = DatumGetInt64(slot->tts_values[a[A_HELD]]);
	int64		debt = DatumGetInt64(slot->tts_values[a[A_DEBT]]);

	if ((balance >= 0 || debt > 0) && held >= 0 && debt >= 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("new row for relation \"%s\" violates check constraint \"%s\"",
					RelationGetRelationName(rel), "accounts_sound"),
			 errdetail("balance %lld, held %lld, debt %lld.",
					   (long long) balance, (long long) held, (long long) debt),
			 errtableconstraint(rel, "accounts_sound")));
}

/*
 * Apply deltas to a member's account row, which the caller has locked.  `tid`
 * is where the row was when it was locked; the row's latest version is found
 * from there (the caller's own statements may have updated it since), and
 * *tid is set to the new version.
 */
static void
UpdateAccountLocal(DirectWriter *w, int64 member_id, ItemPointer tid, const AccountDelta *d)
{
	ResultRelInfo *rri = Open(w, DT_ACCOUNTS);
	Relation	rel = w->rel[DT_ACCOUNTS];
	TupleTableSlot *old = w->slot[DT_ACCOUNTS];
	TupleTableSlot *new;
	TableScanDesc scan;
	Snapshot	snap;
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *v;
	bool	   *n;
	const AttrNumber *a = maps[DT_ACCOUNTS].attno;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("loyalty.accounts must be a plain table")));
	/*
	 * Usually the row is still where it was locked; after an update by one
	 * of the caller's own statements, follow its update chain.
	 */
	snap = RegisterSnapshot(GetLatestSnapshot());
	if (!table_tuple_fetch_row_version(rel, tid, snap, old))
	{
		scan = table_beginscan_tid(rel, snap);
		table_tuple_get_latest_tid(scan, tid);
		table_endscan(scan);
		if (!table_tuple_fetch_row_version(rel, tid, snap, old))
			elog(ERROR, "loyalty: account row of member %lld not found", (long long) member_id);
	}
	UnregisterSnapshot(snap);
	slot_getallattrs(old);
	if (old->tts_isnull[a[A_MEMBER]] || DatumGetInt64(old->tts_values[a[A_MEMBER]]) != member_id)
		elog(ERROR, "loyalty: account row moved from member %lld", (long long) member_id);

	new = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	ExecClearTuple(new);
	v = new->tts_values;
	n = new->tts_isnull;
	memcpy(v, old->tts_values, sizeof(Datum) * desc->natts);
	memcpy(n, old->tts_isnull, sizeof(bool) * desc->natts);
	v[a[A_BALANCE]] = Int64GetDatum(points_add_checked(DatumGetInt64(v[a[A_BALANCE]]), d->balance));
	v[a[A_HELD]] = Int64GetDatum(points_add_checked(DatumGetInt64(v[a[A_HELD]]), d->held));
	v[a[A_DEBT]] = Int64GetDatum(points_add_checked(DatumGetInt64(v[a[A_DEBT]]), d->debt));
	v[a[A_EARNED]] = Int64GetDatum(points_add_checked(DatumGetInt64(v[a[A_EARNED]]), d->earned));
	v[a[A_REDEEMED]] = Int64GetDatum(points_add_checked(DatumGetInt64(v[a[A_REDEEMED]]), d->redeemed));
	v[a[A_EXPIRED]] = Int64GetDatum(points_add_checked(DatumGetInt64(v[a[A_EXPIRED]]), d->expired));
	if (d->purchase)
	{
		if (n[a[A_FIRST]] || d->purchase_at < DatumGetTimestampTz(v[a[A_FIRST]]))
			v[a[A_FIRST]] = TimestampTzGetDatum(d->purchase_at);
		if (n[a[A_LAST]] || d->purchase_at > DatumGetTimestampTz(v[a[A_LAST]]))
			v[a[A_LAST]] = TimestampTzGetDatum(d->purchase_at);
		n[a[A_FIRST]] = n[a[A_LAST]] = false;
	}
	v[a[A_COUNT]] = Int64GetDatum(AddInt8(DatumGetInt64(v[a[A_COUNT]]), d->purchase_count, "purchase count"));
	v[a[A_DAYS]] = Int64GetDatum(AddInt8(DatumGetInt64(v[a[A_DAYS]]), d->purchase_days, "purchase days"));
	if (d->purchase_amount)
		v[a[A_AMOUNT]] = DirectFunctionCall2(numeric_add, v[a[A_AMOUNT]], d->purchase_amount);
	v[a[A_UPDATED]] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	/* only a lower bound moves it: other updates stay HOT */
	if (d->expiry_floor != 0 && a[A_NEXT_EXPIRY] >= 0 &&
		(n[a[A_NEXT_EXPIRY]] || d->expiry_floor < DatumGetTimestampTz(v[a[A_NEXT_EXPIRY]])))
	{
		v[a[A_NEXT_EXPIRY]] = TimestampTzGetDatum(d->expiry_floor);
		n[a[A_NEXT_EXPIRY]] = false;
	}
	ExecStoreVirtualTuple(new);

	if (AccountsFastPath(rri))
	{
		bool		update_indexes;
		List	   *recheck = NIL;

		CheckAccountsSound(rel, new, a);
		simple_table_tuple_update(rel, &old->tts_tid, new, w->estate->es_snapshot, &update_indexes);
		if (rri->ri_NumIndices > 0 && update_indexes)
			recheck = ExecInsertIndexTuples(rri, new, w->estate, true, false, NULL, NIL);
		ExecARUpdateTriggers(w->estate, rri, NULL, NULL, &old->tts_tid, NULL, new,
							 recheck, NULL, false);
	}
	else
		ExecSimpleRelationUpdate(rri, w->estate, NULL, old, new);
	*tid = new->tts_tid;
	ExecDropSingleTupleTableSlot(new);
	ResetPerTupleExprContext(w->estate);
}

/* Record the first result of a keyed call. */
void
direct_insert_idempotency(DirectWriter *w, int64 member_id, text *key, const char *op,
						  int64 hash, int64 result, int64 entry_id)
{
	TupleTableSlot *slot;

	if (loyalty_distributed())
	{
		spi_insert_idempotency(w, member_id, key, op, hash, result, entry_id);
		return;
	}
	Open(w, DT_IDEM);
	slot = NewRow(w, DT_IDEM);
	Set(slot, DT_IDEM, K_MEMBER, Int64GetDatum(member_id), false);
	Set(slot, DT_IDEM, K_KEY, PointerGetDatum(key), false);
	Set(slot, DT_IDEM, K_OP, CStringGetTextDatum(op), false);
	Set(slot, DT_IDEM, K_HASH, Int64GetDatum(hash), false);
	Set(slot, DT_IDEM, K_RESULT, Int64GetDatum(result), false);
	Set(slot, DT_IDEM, K_ENTRY, Int64GetDatum(entry_id), entry_id == 0);
	Set(slot, DT_IDEM, K_CREATED, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	InsertRow(w, DT_IDEM, slot);
}

/* The map index of each AccountField and ProgramField. */
static const int account_fields[AF_COUNT] = {
	[AF_BALANCE] = A_BALANCE, [AF_HELD] = A_HELD, [AF_DEBT] = A_DEBT,
	[AF_STATUS] = A_STATUS, [AF_PROGRAM] = A_PROGRAM, [AF_FIRST_PURCHASE] = A_FIRST,
	[AF_LAST_PURCHASE] = A_LAST, [AF_REFERRAL_PENDING] = A_REFERRAL, [AF_TIER] = A_TIER,
	[AF_SEGMENT] = A_SEGMENT, [AF_NEXT_EXPIRY] = A_NEXT_EXPIRY
};
static const int program_fields[PF_COUNT] = {
	[PF_EARN_RATE] = P_EARN_RATE, [PF_ROUNDING] = P_ROUNDING, [PF_EXPIRY] = P_EXPIRY,
	[PF_PENDING] = P_PENDING, [PF_REFUND] = P_REFUND, [PF_MAX_HOLD] = P_MAX_HOLD,
	[PF_CLOSED] = P_CLOSED, [PF_EVENTS] = P_EVENTS, [PF_TIME_ZONE] = P_TIME_ZONE,
	[PF_RULES_VERSION] = P_RULES_VERSION, [PF_TIER_METRIC] = P_TIER_METRIC
};

/* The primary key of a table keyed by one bigint column, `col`. */
static Relation
OpenKeyIndex(Relation rel, DirectTable t, int col, LOCKMODE lockmode)
{
	Oid			idxid = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;

	if (!OidIsValid(idxid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table loyalty.%s has no primary key", table_defs[t].name),
				 errhint("The extension's tables were changed by hand; reinstall or update the extension.")));
	idx = index_open(idxid, lockmode);
	if (idx->rd_index->indnkeyatts != 1 ||
		idx->rd_index->indkey.values[0] != maps[t].attno[col] + 1 ||
		idx->rd_opfamily[0] != INTEGER_BTREE_FAM_OID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the primary key of loyalty.%s is not (%s)", table_defs[t].name, table_defs[t].cols[col]),
				 errhint("The extension's tables were changed by hand; reinstall or update the extension.")));
	return idx;
}

/* The row whose key is `key`, as `snap` sees it, into `slot`. */
static bool
FetchByKey(Relation rel, Relation idx, Snapshot snap, int64 key, TupleTableSlot *slot)
{
	ScanKeyData skey;
	IndexScanDesc scan;
	bool		found;

	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(key));
	scan = index_beginscan(rel, idx, snap, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	return found;
}

/* Copy the columns `fields` (map indexes of table t) out of a slot. */
static void
CopyFields(TupleTableSlot *slot, DirectTable t, const int *fields, int n, Datum *values, bool *nulls)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;
	int			i;

	slot_getallattrs(slot);
	for (i = 0; i < n; i++)
	{
		AttrNumber	a = maps[t].attno[fields[i]];
		Form_pg_attribute att;

		if (a < 0)
		{
			/* an optional column the table does not have (yet) */
			nulls[i] = true;
			values[i] = (Datum) 0;
			continue;
		}
		att = TupleDescAttr(desc, a);
		nulls[i] = slot->tts_isnull[a];
		values[i] = nulls[i] ? (Datum) 0 :
			datumCopy(slot->tts_values[a], att->attbyval, att->attlen);
	}
}

/*
 * Whether changes of loyalty.programs reach InvalidateProgramCache: the
 * trigger is there, enabled ALWAYS, after each statement of every kind.
 * Not so while a 1.2 schema runs with this library (before ALTER EXTENSION
 * UPDATE) or after someone disabled it; then every call reads the row.
 * (Disabling or dropping it invalidates the relcache entry, and so the copy.)
 */
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

/* Copy program fields into `cxt`; their types are pcache_byval/len. */
static void
CopyProgramInto(MemoryContext cxt, const Datum *from, const bool *from_null, Datum *to, bool *to_null)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int			i;

	for (i = 0; i < PF_COUNT; i++)
	{
		to_null[i] = from_null[i];
		to[i] = from_null[i] ? (Datum) 0 :
			datumCopy(from[i], pcache_byval[i], pcache_len[i]);
	}
	MemoryContextSwitchTo(old);
}

/* Note the types of the program fields, as the table's columns have them. */
static void
ProgramFieldTypes(TupleDesc desc)
{
	int			i;

	for (i = 0; i < PF_COUNT; i++)
	{
		AttrNumber	a = maps[DT_PROGRAMS].attno[program_fields[i]];

		/* a missing optional column is always NULL: never copied */
		pcache_byval[i] = a < 0 ? true : TupleDescAttr(desc, a)->attbyval;
		pcache_len[i] = a < 0 ? 8 : TupleDescAttr(desc, a)->attlen;
	}
}

/*
 * Whether the row in a buffer slot is its latest version: not updated or
 * deleted by anybody (a row lock, such as a foreign key check's, is not a
 * new version), and not written by this transaction (which may still roll
 * back).  Only such a row is kept: a version replaced before the
 * invalidation of its change was processed here would otherwise be kept
 * after it.
 */
static bool
IsLatestVersion(TupleTableSlot *slot)
{
	BufferHeapTupleTableSlot *bslot = (BufferHeapTupleTableSlot *) slot;
	HeapTupleHeader h;
	bool		latest;

	if (!TTS_IS_BUFFERTUPLE(slot) || !BufferIsValid(bslot->buffer) || bslot->base.tuple == NULL)
		return false;
	LockBuffer(bslot->buffer, BUFFER_LOCK_SHARE);
	h = bslot->base.tuple->t_data;
	latest = !TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmin(h)) &&
		((h->t_infomask & HEAP_XMAX_INVALID) ||
		 HEAP_XMAX_IS_LOCKED_ONLY(h->t_infomask) ||
		 !TransactionIdIsValid(HeapTupleHeaderGetRawXmax(h)));
	LockBuffer(bslot->buffer, BUFFER_LOCK_UNLOCK);
	return latest;
}

/*
 * Find a member's account by its primary key and, when `lock`, lock it FOR
 * NO KEY UPDATE, as the SQL statement would but without planning it: under
 * READ COMMITTED the latest version is followed and locked (what the
 * statement's EvalPlanQual recheck does), under REPEATABLE READ and
 * SERIALIZABLE a concurrent change is a serialization failure.  Then read
 * the program's row, with the snapshot the account was found with (the
 * program may be a moment old, as if the call had come just before a
 * program change).  Returns false when the member has no account.
 */
bool
direct_read_account(int64 member_id, bool lock, AccountRead *out)
{
	Relation	rel,
				idx,
				prel,
				pidx;
	TupleTableSlot *slot,
			   *pslot;
	Snapshot	snap;
	bool		found;
	int64		program_id;

	if (loyalty_distributed())
		return spi_read_account(member_id, lock, out);
	rel = table_open(TableOid(DT_ACCOUNTS), lock ? RowExclusiveLock : AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("loyalty.accounts must be a plain table")));
	CheckColumns(DT_ACCOUNTS, rel);
	/*
	 * A locking read is followed by the account's update, which takes
	 * RowExclusiveLock on every index: take that mode here too, or the key
	 * index would hold two locks (and use two of the backend's sixteen
	 * fast-path lock slots).
	 */
	idx = OpenKeyIndex(rel, DT_ACCOUNTS, A_MEMBER, lock ? RowExclusiveLock : AccessShareLock);
	slot = table_slot_create(rel, NULL);
	snap = RegisterSnapshot(GetTransactionSnapshot());
	found = FetchByKey(rel, idx, snap, member_id, slot);
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
		Datum		key = slot_getattr(slot, maps[DT_ACCOUNTS].attno[A_MEMBER] + 1, &isnull);

		/* the version locked after a wait is still the member's */
		found = !isnull && DatumGetInt64(key) == member_id;
	}
	if (found)
	{
		out->tid = slot->tts_tid;
		CopyFields(slot, DT_ACCOUNTS, account_fields, AF_COUNT, out->acc, out->acc_null);
		if (out->acc_null[AF_PROGRAM])
			elog(ERROR, "loyalty: the account of member %lld has no program", (long long) member_id);
		program_id = DatumGetInt64(out->acc[AF_PROGRAM]);

		if (pcache_valid && pcache_program == program_id)
			CopyProgramInto(CurrentMemoryContext, pcache_values, pcache_nulls, out->prog, out->prog_null);
		else
		{
			bool		latest;

			prel = table_open(TableOid(DT_PROGRAMS), AccessShareLock);
			CheckColumns(DT_PROGRAMS, prel);
			pidx = OpenKeyIndex(prel, DT_PROGRAMS, P_PROGRAM, AccessShareLock);
			pslot = table_slot_create(prel, NULL);
			if (!FetchByKey(prel, pidx, snap, program_id, pslot))
				elog(ERROR, "loyalty: program %lld of member %lld not found",
					 (long long) program_id, (long long) member_id);
			CopyFields(pslot, DT_PROGRAMS, program_fields, PF_COUNT, out->prog, out->prog_null);
			latest = ProgramsTriggerPresent(prel) && IsLatestVersion(pslot);
			if (latest)
			{
				pcache_valid = false;
				ProgramFieldTypes(RelationGetDescr(prel));
			}
			ExecDropSingleTupleTableSlot(pslot);
			index_close(pidx, NoLock);
			table_close(prel, NoLock);
			if (latest)
			{
				if (pcache_cxt == NULL)
					pcache_cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty program row",
													   ALLOCSET_SMALL_SIZES);
				MemoryContextReset(pcache_cxt);
				CopyProgramInto(pcache_cxt, out->prog, out->prog_null, pcache_values, pcache_nulls);
				pcache_program = program_id;
				pcache_valid = true;
			}
		}
	}
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/* An open lot a debit may take from, in first-to-expire-first order. */
typedef struct OpenLot
{
	int64		lot_id;
	int64		remaining;
	TimestampTz expires_at;		/* DT_NOEND: never */
	TimestampTz created_at;
	ItemPointerData tid;
} OpenLot;

static int
CompareLots(const void *a, const void *b)
{
	const OpenLot *x = a;
	const OpenLot *y = b;

	if (x->expires_at != y->expires_at)
		return x->expires_at < y->expires_at ? -1 : 1;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	if (x->lot_id != y->lot_id)
		return x->lot_id < y->lot_id ? -1 : 1;
	return 0;
}

/*
 * Take up to `points` from the member's spendable lots at time `at`,
 * first-to-expire-first (ties: older lot, then lower id), recording each
 * lot taken from in allocations for entry `entry_id`.  Returns what the lots
 * gave (all they had when short), or -1 when the lots' open-lot index is
 * missing (the caller then runs the SQL form).  The caller holds the
 * member's lock, so the lots cannot change underneath.
 */
static int64
ConsumeLotsLocal(DirectWriter *w, int64 member_id, int64 entry_id, int64 points, TimestampTz at)
{
	ResultRelInfo *rri = Open(w, DT_LOTS);
	Relation	rel = w->rel[DT_LOTS];
	Relation	idx = NULL;
	const AttrNumber *a = maps[DT_LOTS].attno;
	TupleTableSlot *slot = w->slot[DT_LOTS];
	TupleTableSlot *new;
	ScanKeyData skey;
	IndexScanDesc scan;
	Snapshot	snap;
	OpenLot    *lots;
	int			nlots = 0,
				maxlots = 16,
				i;
	int64		taken = 0;
	int64		available = 0;
	bool		ordered = false;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return -1;
	for (i = 0; i < rri->ri_NumIndices; i++)
	{
		Relation	r = rri->ri_IndexRelationDescs[i];

		if (strcmp(RelationGetRelationName(r), "lots_open_idx") == 0 &&
			r->rd_index->indkey.values[0] == a[T_MEMBER] + 1 &&
			r->rd_opfamily[0] == INTEGER_BTREE_FAM_OID)
		{
			idx = r;
			/* keyed (member, expiry, creation), ascending, NULLs last */
			ordered = r->rd_index->indnkeyatts >= 3 &&
				r->rd_index->indkey.values[1] == a[T_EXPIRES] + 1 &&
				r->rd_index->indkey.values[2] == a[T_CREATED] + 1 &&
				r->rd_indoption[1] == 0 && r->rd_indoption[2] == 0;
		}
	}
	if (idx == NULL)
		return -1;

	Open(w, DT_ALLOC);
	lots = palloc(sizeof(OpenLot) * maxlots);
	snap = RegisterSnapshot(GetTransactionSnapshot());
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(member_id));
	scan = index_beginscan(rel, idx, snap, 1, 0);
	/*
	 * The index returns the lots by (expiry, creation), NULL expiry last:
	 * first-to-expire-first already, but for the lot id between equal keys.
	 * Once the lots collected cover the debit, only lots with the same key as
	 * the last one can still come before it.  That is decided on the index
	 * entry, which carries the key: fetching the next lot's row to read it
	 * there cost every redemption a heap page of another lot (bench/README).
	 */
	scan->xs_want_itup = ordered;
	index_rescan(scan, &skey, 1, NULL, 0);
	for (;;)
	{
		int64		remaining;
		TimestampTz vests,
					expires,
					created;
		bool		expires_null;

		if (index_getnext_tid(scan, ForwardScanDirection) == NULL)
			break;
		if (ordered && available >= points && nlots > 0)
		{
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
		expires_null = slot->tts_isnull[a[T_EXPIRES]];
		expires = expires_null ? DT_NOEND : DatumGetTimestampTz(slot->tts_values[a[T_EXPIRES]]);
		created = DatumGetTimestampTz(slot->tts_values[a[T_CREATED]]);

		if (slot->tts_isnull[a[T_REMAINING]] || slot->tts_isnull[a[T_VESTS]])
			continue;
		remaining = DatumGetInt64(slot->tts_values[a[T_REMAINING]]);
		vests = DatumGetTimestampTz(slot->tts_values[a[T_VESTS]]);
		if (remaining <= 0 || vests > at || (!expires_null && expires <= at))
			continue;
		if (nlots == maxlots)
		{
			maxlots *= 2;
			lots = repalloc(lots, sizeof(OpenLot) * maxlots);
		}
		lots[nlots].lot_id = DatumGetInt64(slot->tts_values[a[T_LOT]]);
		lots[nlots].remaining = remaining;
		lots[nlots].expires_at = expires;
		lots[nlots].created_at = created;
		lots[nlots].tid = slot->tts_tid;
		nlots++;
		available = AddInt8(available, remaining, "points");
	}
	index_endscan(scan);
	if (nlots > 1)
		qsort(lots, nlots, sizeof(OpenLot), CompareLots);

	new = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
	for (i = 0; i < nlots && taken < points; i++)
	{
		int64		take = Min(lots[i].remaining, points - taken);
		int			natts = RelationGetDescr(rel)->natts;
		TupleTableSlot *alloc;

		if (!table_tuple_fetch_row_version(rel, &lots[i].tid, snap, slot))
			elog(ERROR, "loyalty: lot %lld of member %lld vanished",
				 (long long) lots[i].lot_id, (long long) member_id);
		slot_getallattrs(slot);
		ExecClearTuple(new);
		memcpy(new->tts_values, slot->tts_values, sizeof(Datum) * natts);
		memcpy(new->tts_isnull, slot->tts_isnull, sizeof(bool) * natts);
		new->tts_values[a[T_REMAINING]] = Int64GetDatum(lots[i].remaining - take);
		ExecStoreVirtualTuple(new);
		ExecSimpleRelationUpdate(rri, w->estate, NULL, slot, new);
		ResetPerTupleExprContext(w->estate);

		alloc = NewRow(w, DT_ALLOC);
		Set(alloc, DT_ALLOC, X_MEMBER, Int64GetDatum(member_id), false);
		Set(alloc, DT_ALLOC, X_ENTRY, Int64GetDatum(entry_id), false);
		Set(alloc, DT_ALLOC, X_LOT, Int64GetDatum(lots[i].lot_id), false);
		Set(alloc, DT_ALLOC, X_POINTS, Int64GetDatum(take), false);
		Set(alloc, DT_ALLOC, X_RETURNED, Int64GetDatum(0), false);
		InsertRow(w, DT_ALLOC, alloc);
		taken += take;
	}
	ExecDropSingleTupleTableSlot(new);
	UnregisterSnapshot(snap);
	pfree(lots);
	return taken;
}

/* Apply deltas to the locked account row (UpdateAccountLocal). */
void
direct_update_account(DirectWriter *w, int64 member_id, ItemPointer tid, const AccountDelta *d)
{
	if (loyalty_distributed())
		spi_update_account(w, member_id, d);
	else
		UpdateAccountLocal(w, member_id, tid, d);
}

/* Take a debit's points from lots FEFO (ConsumeLotsLocal). */
int64
direct_consume_lots(DirectWriter *w, int64 member_id, int64 entry_id, int64 points, TimestampTz at)
{
	if (loyalty_distributed())
		return spi_consume_lots(w, member_id, entry_id, points, at);
	return ConsumeLotsLocal(w, member_id, entry_id, points, at);
}

/*
 * Fire queued AFTER row triggers, close everything, and make the rows
 * visible to the caller's next statement.
 */
void
direct_end(DirectWriter *w)
{
	int			t;

	if (loyalty_distributed())
	{
		spi_end(w);
		return;
	}
	AfterTriggerEndQuery(w->estate);
	if (w->proute)
		ExecCleanupTupleRouting(w->mtstate, w->proute);
	for (t = 0; t < DT_COUNT; t++)
	{
		ResultRelInfo *rri = w->rri[t];
		int			i;

		if (rri == NULL)
			continue;
		/*
		 * Unlike ExecCloseIndices, keep the index locks to the end of the
		 * transaction, as for the table: the next call then finds them held
		 * instead of taking them again.
		 */
		for (i = 0; i < rri->ri_NumIndices; i++)
			if (rri->ri_IndexRelationDescs[i])
				index_close(rri->ri_IndexRelationDescs[i], NoLock);
		table_close(w->rel[t], NoLock);
	}
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	pfree(w);
	CommandCounterIncrement();
}
