/*
 * partitions.c
 *		loyalty.ledger_keep_entries: the event trigger that keeps a
 *		partitioned ledger's entries in the books whatever tool retires its
 *		partitions (pg_partman's retention, a DBA's DETACH or DROP).
 *
 * Every balance is the sum of loyalty.ledger.  A partition that leaves the
 * ledger takes its entries out of that sum, so only two kinds may leave: an
 * empty one, and one whose entries loyalty.archive_ledger() has just carried
 * forward (loyalty.archive_books records those partitions for the rest of its
 * transaction, forgetting them if the subtransaction that carried them rolls
 * back).  Any other ALTER TABLE ... DETACH PARTITION or DROP TABLE of a
 * partition of loyalty.ledger is refused before it starts (ddl_command_start:
 * the parse tree names the partition; at ddl_command_end a dropped table's
 * rows could no longer be counted).
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "commands/event_trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "ledger.h"

PG_FUNCTION_INFO_V1(loyalty_ledger_keep_entries);

/* The partitions whose entries this transaction carried forward. */
typedef struct CarriedPartition
{
	Oid			relid;
	SubTransactionId subxact;	/* the subtransaction that carried them */
} CarriedPartition;

static CarriedPartition *carried = NULL;
static int	ncarried = 0;
static int	carried_size = 0;
static bool carried_callbacks = false;

/* At the end of the transaction every record goes. */
static void
CarriedXactCallback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			ncarried = 0;
			break;
		default:
			break;
	}
}

/* A subtransaction rolled back takes its records; one committed hands them up. */
static void
CarriedSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			i,
				kept = 0;

	(void) arg;
	for (i = 0; i < ncarried; i++)
	{
		/* subtransaction ids grow: one rolled back takes its children along */
		if (event == SUBXACT_EVENT_ABORT_SUB && carried[i].subxact >= mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB && carried[i].subxact == mySubid)
			carried[i].subxact = parentSubid;
		carried[kept++] = carried[i];
	}
	ncarried = kept;
}

/*
 * Record that the entries of these ledger partitions were carried forward
 * (loyalty.archive_books, once the carry_forward entries are written): they
 * may leave the ledger in this transaction.
 */
void
ledger_mark_carried(const Oid *parts, int nparts)
{
	int			i;

	if (!carried_callbacks)
	{
		RegisterXactCallback(CarriedXactCallback, NULL);
		RegisterSubXactCallback(CarriedSubXactCallback, NULL);
		carried_callbacks = true;
	}
	if (ncarried + nparts > carried_size)
	{
		int			size = Max(16, 2 * (ncarried + nparts));

		carried = carried == NULL
			? MemoryContextAlloc(TopMemoryContext, size * sizeof(CarriedPartition))
			: repalloc(carried, size * sizeof(CarriedPartition));
		carried_size = size;
	}
	for (i = 0; i < nparts; i++)
	{
		carried[ncarried].relid = parts[i];
		carried[ncarried].subxact = GetCurrentSubTransactionId();
		ncarried++;
	}
}

/* Whether this transaction carried the partition's entries forward. */
static bool
IsCarried(Oid relid)
{
	int			i;

	for (i = 0; i < ncarried; i++)
		if (carried[i].relid == relid)
			return true;
	return false;
}

/* Whether the current user owns the relation or the namespace. */
static bool
Owns(Oid classid, Oid objid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(classid, objid, GetUserId());
#else
	if (classid == NamespaceRelationId)
		return pg_namespace_ownercheck(objid, GetUserId());
	return pg_class_ownercheck(objid, GetUserId());
#endif
}

/* Whether any table of the partition's tree holds a row. */
static bool
HoldsRows(Oid relid, LOCKMODE lockmode)
{
	List	   *rels = find_all_inheritors(relid, lockmode, NULL);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ListCell   *lc;
	bool		found = false;

	foreach(lc, rels)
	{
		Relation	rel;
		TableScanDesc scan;
		TupleTableSlot *slot;

		if (get_rel_relkind(lfirst_oid(lc)) != RELKIND_RELATION)
			continue;
		rel = table_open(lfirst_oid(lc), NoLock);
		slot = table_slot_create(rel, NULL);
		scan = table_beginscan(rel, snapshot, 0, NULL);
		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, NoLock);
		if (found)
			break;
	}
	UnregisterSnapshot(snapshot);
	return found;
}

/*
 * Refuse that `rv` leave the ledger (detach: ALTER TABLE ... DETACH
 * PARTITION; else DROP TABLE) if it is a partition of loyalty.ledger holding
 * entries that were not carried forward.
 */
static void
KeepPartition(Oid ledger, RangeVar *rv, bool detach, bool concurrent)
{
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);
	List	   *ancestors;
	Oid			parent;
	ListCell   *lc;

	if (!OidIsValid(relid) || !get_rel_relispartition(relid))
		return;
	ancestors = get_partition_ancestors(relid);
	if (!list_member_oid(ancestors, ledger))
		return;
	if (IsCarried(relid))
		return;
	foreach(lc, ancestors)
	{
		if (IsCarried(lfirst_oid(lc)))
			return;
	}

	/*
	 * Lock as the command will (its parent, then the partition), so that no
	 * entry arrives between the check and the command; but not for whom the
	 * command will refuse anyway, who must not be able to queue locks on the
	 * ledger.
	 */
	parent = linitial_oid(ancestors);
	if (!Owns(RelationRelationId, relid) && !Owns(RelationRelationId, parent) &&
		!Owns(NamespaceRelationId, get_rel_namespace(relid)))
		return;
	LockRelationOid(parent, concurrent ? ShareUpdateExclusiveLock : AccessExclusiveLock);
	LockRelationOid(relid, concurrent ? ShareLock : AccessExclusiveLock);
	if (!HoldsRows(relid, concurrent ? ShareLock : AccessExclusiveLock))
		return;

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s %s: it holds ledger entries that were not carried forward",
					detach ? "detach partition" : "drop table",
					quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											   get_rel_name(relid))),
			 errdetail("Every balance is the sum of loyalty.ledger: entries that leave it unbalance the books."),
			 errhint("Retire old partitions with loyalty.archive_ledger(before), which carries each member's entries forward first; "
					 "with pg_partman, leave its retention unset for loyalty.ledger.")));
}

/*
 * loyalty.ledger_keep_entries(): event trigger on ddl_command_start for ALTER
 * TABLE and DROP TABLE.  Declared without a search_path of its own, so that
 * an unqualified name resolves to the table the command will act on.
 */
Datum
loyalty_ledger_keep_entries(PG_FUNCTION_ARGS)
{
	Node	   *parsetree;
	Oid			schema;
	Oid			ledger;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "loyalty: ledger_keep_entries must be fired by an event trigger");
	parsetree = ((EventTriggerData *) fcinfo->context)->parsetree;
	schema = get_namespace_oid("loyalty", true);
	ledger = OidIsValid(schema) ? get_relname_relid("ledger", schema) : InvalidOid;
	if (!OidIsValid(ledger) || get_rel_relkind(ledger) != RELKIND_PARTITIONED_TABLE)
		PG_RETURN_VOID();

	if (IsA(parsetree, AlterTableStmt))
	{
		foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_DetachPartition)
			{
				PartitionCmd *pc = castNode(PartitionCmd, cmd->def);

				KeepPartition(ledger, pc->name, true, pc->concurrent);
			}
		}
	}
	else if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_TABLE)
	{
		foreach(lc, ((DropStmt *) parsetree)->objects)
			KeepPartition(ledger, makeRangeVarFromNameList(lfirst(lc)), false, false);
	}
	PG_RETURN_VOID();
}
