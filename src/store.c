/*
 * store.c
 *		The ledger store's one interface: which store writes each row, the
 *		shapes that decide it, and the rules of the lots, written once.
 *
 * The fast store (store_exec.c) writes a row through the executor's row
 * routines: NOT NULL and CHECK constraints, unique indexes, partial-index
 * predicates, stored generated columns, AFTER ROW triggers (foreign keys
 * among them), replica identity, partition routing, WAL.  It does not plan a
 * statement, so it does nothing a statement does above the row: statement
 * and transition-table triggers, rules, column defaults, type coercion and
 * typmods, domains, row-level security, privileges.  A table qualifies for it
 * only when none of those could make a difference: its shape, computed here
 * whenever its relcache entry (or that of one of its indexes or partitions)
 * is invalidated, must show
 *	- every column the store writes, of exactly the type it writes (no domain,
 *	  no typmod, the type's own collation, generated or identity as created),
 *	  and for a table the store inserts into, no other column;
 *	- no trigger firing for the store's operations other than AFTER ROW
 *	  triggers without transition tables (which the row routines fire exactly
 *	  as a statement does), and no rule;
 *	- a plain table (the ledger may be partitioned, into plain tables);
 *	- valid, ready indexes of the shape the store reads through.
 * CHECK constraints need no comparison: the row routines evaluate whatever
 * constraints the table has.  Row-level security and privileges depend on
 * the user and are checked for every call (one cache lookup each).  Anything
 * else, or loyalty.fast_store = off, or a Citus table, sends the operation to
 * the SQL store (store_sql.c), whose statements do everything PostgreSQL
 * does; the answer is never an error and never a different row.
 *
 * The choice is made per table, when the call first touches the table and
 * holds its lock, and kept for the rest of the call: a table the call has
 * locked cannot be altered before the transaction ends.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_opfamily_d.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/primnodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "rewrite/prs2lock.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "loyalty.h"
#include "store.h"

PG_FUNCTION_INFO_V1(loyalty_write_store);

#define INT8 "pg_catalog.int8"
#define TEXT "pg_catalog.text"
#define TSTZ "pg_catalog.timestamptz"
#define NUMERIC "pg_catalog.numeric"
#define POINTS "loyalty.points"

/* Each table's columns as the stores know them (store.h's column indexes). */
#define COL(name, type) {name, type, '\0', '\0', false}
#define IDENT(name, type) {name, type, '\0', ATTRIBUTE_IDENTITY_ALWAYS, false}
#define OPT(name, type) {name, type, '\0', '\0', true}
#define GENERATED_OPT(name, type) {name, type, ATTRIBUTE_GENERATED_STORED, '\0', true}

const StoreTableDef store_tables[ST_COUNT] = {
	[ST_LEDGER] = {"ledger", L_NCOLS, {
			COL("member_id", INT8), IDENT("entry_id", INT8),
			COL("program_id", INT8), COL("kind", TEXT), COL("points", POINTS), COL("held_delta", POINTS),
			COL("amount", NUMERIC), COL("channel", TEXT), COL("reference", TEXT), COL("reason", TEXT),
			COL("actor", TEXT), COL("source_entry", INT8), COL("hold_id", INT8),
			COL("idempotency_key", TEXT), COL("created_at", TSTZ), COL("occurred_at", TSTZ),
	COL("details", "pg_catalog.jsonb")}, ACL_INSERT, false},
	[ST_LOTS] = {"lots", T_NCOLS, {
			COL("member_id", INT8), COL("lot_id", INT8), COL("entry_id", INT8), COL("original", POINTS),
			COL("remaining", POINTS), COL("reversed", POINTS), COL("reversed_amount", NUMERIC),
			COL("vests_at", TSTZ), COL("expires_at", TSTZ), COL("created_at", TSTZ),
	GENERATED_OPT("is_open", "pg_catalog.bool")},
	ACL_INSERT | ACL_UPDATE | ACL_SELECT, false},
	[ST_ACCOUNTS] = {"accounts", A_NCOLS, {
			COL("member_id", INT8), COL("program_id", INT8), COL("status", TEXT), COL("tier", "loyalty.tier"),
			COL("referral_pending", "pg_catalog.bool"), COL("segment", TEXT), COL("balance", POINTS),
			COL("held", POINTS), COL("debt", POINTS), COL("lifetime_earned", POINTS),
			COL("lifetime_redeemed", POINTS), COL("lifetime_expired", POINTS),
			COL("first_purchase_at", TSTZ), COL("last_purchase_at", TSTZ), COL("purchase_count", INT8),
			COL("purchase_days", INT8), COL("purchase_amount", NUMERIC), COL("updated_at", TSTZ),
			OPT("next_expiry_at", TSTZ), COL("tier_since", TSTZ), COL("tier_locked_until", TSTZ),
			COL("tier_grace_until", TSTZ), OPT("risk_band", TEXT),
	OPT("segment_since", "pg_catalog.date")}, ACL_UPDATE | ACL_SELECT, true},
	[ST_IDEM] = {"idempotency_keys", K_NCOLS, {
			COL("member_id", INT8), COL("idempotency_key", TEXT), COL("operation", TEXT),
			COL("request_hash", INT8), COL("result", INT8), COL("entry_id", INT8),
	COL("created_at", TSTZ)}, ACL_INSERT, false},
	[ST_ALLOC] = {"allocations", X_NCOLS, {
			COL("member_id", INT8), COL("entry_id", INT8), COL("lot_id", INT8), COL("points", POINTS),
	COL("returned", POINTS)}, ACL_INSERT | ACL_UPDATE | ACL_SELECT, false},
	[ST_PROGRAMS] = {"programs", P_NCOLS, {
			COL("program_id", INT8), COL("earn_rate", NUMERIC), COL("rounding", TEXT),
			COL("expiry_period", "pg_catalog.interval"), COL("pending_period", "pg_catalog.interval"),
			COL("refund_policy", TEXT), COL("max_hold_ttl", "pg_catalog.interval"),
			COL("closed_through", TSTZ), COL("event_kinds", "pg_catalog._text"), COL("time_zone", TEXT),
			COL("rules_version", INT8), COL("tier_metric", TEXT), OPT("household_pool_share", NUMERIC),
	OPT("max_earn_multiplier", NUMERIC), OPT("has_challenges", "pg_catalog.bool")},
	ACL_SELECT, true},
	[ST_PROGRESS] = {"challenge_periods", PR_NCOLS, {
			COL("member_id", INT8), COL("challenge_id", INT8), COL("period_start", TSTZ),
			COL("period_end", TSTZ), COL("program_id", INT8), COL("value", NUMERIC),
			COL("items", "pg_catalog.jsonb"), COL("last_item", TEXT), COL("completed_at", TSTZ),
			COL("completions", "pg_catalog.int4"), COL("award_entry", INT8), COL("award_member", INT8),
	COL("clawed_back_at", TSTZ), COL("updated_at", TSTZ)}, ACL_INSERT | ACL_UPDATE | ACL_SELECT, false},
	[ST_STATE] = {"challenge_state", SS_NCOLS, {
			COL("member_id", INT8), COL("program_id", INT8), COL("challenge_ids", "pg_catalog._int8"),
			COL("period_starts", "pg_catalog._timestamptz"), COL("period_ends", "pg_catalog._timestamptz"),
			COL("period_values", "pg_catalog._numeric"), COL("period_items", "pg_catalog._jsonb"),
			COL("last_items", "pg_catalog._text"), COL("completed_ats", "pg_catalog._timestamptz"),
			COL("completion_counts", "pg_catalog._int4"), COL("award_entries", "pg_catalog._int8"),
			COL("award_members", "pg_catalog._int8"), COL("clawed_back_ats", "pg_catalog._timestamptz"),
			COL("updated_ats", "pg_catalog._timestamptz"), COL("joined_at", TSTZ),
	COL("earlier_done", "pg_catalog._int8")}, ACL_INSERT | ACL_UPDATE | ACL_SELECT, false},
	[ST_FACTS] = {"challenge_facts", CF_NCOLS, {
			COL("member_id", INT8), COL("entry_id", INT8), COL("program_id", INT8),
			COL("challenge_ids", "pg_catalog._int8"), COL("period_starts", "pg_catalog._timestamptz"),
			COL("deltas", "pg_catalog._numeric"), COL("items", "pg_catalog._jsonb"),
	COL("standing", NUMERIC)}, ACL_INSERT, false},
	[ST_MEMBERS] = {"members", M_NCOLS, {
	COL("member_id", INT8), COL("joined_at", TSTZ)}, ACL_SELECT, true},
};

bool		loyalty_fast_store = true;

static TableShape shapes[ST_COUNT];
static MemoryContext shape_cxt = NULL;

/*
 * The tables' OIDs by name, looked up once and forgotten whenever pg_class
 * or pg_namespace change (a table replaced, as partition_ledger() does).
 */
static Oid	relids[ST_COUNT];
static bool relids_valid = false;

static void
InvalidateShapes(Datum arg, Oid relid)
{
	int			t,
				i;

	(void) arg;
	for (t = 0; t < ST_COUNT; t++)
	{
		TableShape *s = &shapes[t];

		if (!s->checked)
			continue;
		if (!OidIsValid(relid) || relid == s->relid)
		{
			s->checked = false;
			continue;
		}
		for (i = 0; i < s->nrelated; i++)
			if (s->related[i] == relid)
			{
				s->checked = false;
				break;
			}
	}
}

static void
InvalidateRelids(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	relids_valid = false;
}

/* Register the setting and the invalidation callbacks (_PG_init). */
void
store_init(void)
{
	DefineCustomBoolVariable("loyalty.fast_store",
							 "Writes the books' rows through the executor's row routines where that changes nothing.",
							 "When off, or when a table differs from what the extension created "
							 "(see loyalty.write_store()), every row is written by an SQL statement.",
							 &loyalty_fast_store,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(InvalidateShapes, (Datum) 0);
	CacheRegisterSyscacheCallback(RELNAMENSP, InvalidateRelids, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, InvalidateRelids, (Datum) 0);
}

/* The OID the table has now, by name. */
static Oid
TableOid(StoreTable t)
{
	if (!relids_valid)
	{
		Oid			nspid = get_namespace_oid("loyalty", false);
		int			i;

		for (i = 0; i < ST_COUNT; i++)
			relids[i] = get_relname_relid(store_tables[i].name, nspid);
		relids_valid = true;
	}
	if (!OidIsValid(relids[t]))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table loyalty.%s does not exist", store_tables[t].name),
				 errhint("Reinstall or update the extension.")));
	return relids[t];
}

/*
 * Lock the table of that name and return its OID.  A table replaced while
 * we waited for the lock (partition_ledger() renames the ledger and creates
 * a partitioned one) is looked up again, as RangeVarGetRelidExtended does:
 * the writer then waits and writes into the new table.
 */
Oid
store_lock_table(StoreTable t, LOCKMODE mode)
{
	for (;;)
	{
		Oid			relid = TableOid(t);

		LockRelationOid(relid, mode);
		if (relids_valid && relids[t] == relid)
			return relid;
		UnlockRelationOid(relid, mode);
		CHECK_FOR_INTERRUPTS();
	}
}

/* A type's OID from its qualified name (InvalidOid when missing). */
static Oid
TypeOid(const char *qualified)
{
	const char *dot = strchr(qualified, '.');
	char		nsp[NAMEDATALEN];
	Oid			nspid;

	Assert(dot && dot - qualified < NAMEDATALEN);
	memcpy(nsp, qualified, dot - qualified);
	nsp[dot - qualified] = '\0';
	nspid = get_namespace_oid(nsp, true);
	if (!OidIsValid(nspid))
		return InvalidOid;
	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum(dot + 1),
						   ObjectIdGetDatum(nspid));
}

/* Record the first reason the fast store may not write the table. */
#define NotFast(s, ...) \
	do { \
		if ((s)->fast) \
		{ \
			(s)->fast = false; \
			snprintf((s)->why, sizeof((s)->why), __VA_ARGS__); \
		} \
	} while (0)

static void
AddRelated(TableShape *s, Oid relid, int *max)
{
	MemoryContext old = MemoryContextSwitchTo(shape_cxt);

	if (s->related == NULL)
	{
		*max = 16;
		s->related = palloc(sizeof(Oid) * *max);
	}
	else if (s->nrelated == *max)
	{
		*max *= 2;
		s->related = repalloc(s->related, sizeof(Oid) * *max);
	}
	s->related[s->nrelated++] = relid;
	MemoryContextSwitchTo(old);
}

/*
 * Triggers of a table (or partition) that fire for the operations `ops`
 * and are not AFTER ROW triggers without transition tables.
 */
static void
CheckTriggers(TableShape *s, Relation rel, AclMode ops)
{
	TriggerDesc *td = rel->trigdesc;
	int			i;

	if (td == NULL)
		return;
	for (i = 0; i < td->numtriggers; i++)
	{
		Trigger    *tg = &td->triggers[i];

		if (!((ops & ACL_INSERT) && TRIGGER_FOR_INSERT(tg->tgtype)) &&
			!((ops & ACL_UPDATE) && TRIGGER_FOR_UPDATE(tg->tgtype)))
			continue;
		if (!TRIGGER_FOR_ROW(tg->tgtype))
			NotFast(s, "statement-level trigger \"%s\" on %s", tg->tgname, RelationGetRelationName(rel));
		else if (!TRIGGER_FOR_AFTER(tg->tgtype))
			NotFast(s, "%s row trigger \"%s\" on %s",
					TRIGGER_FOR_BEFORE(tg->tgtype) ? "BEFORE" : "INSTEAD OF",
					tg->tgname, RelationGetRelationName(rel));
		else if (tg->tgoldtable || tg->tgnewtable)
			NotFast(s, "trigger \"%s\" on %s has a transition table", tg->tgname,
					RelationGetRelationName(rel));
	}
}

/*
 * A valid, ready, live B-tree index of the table whose leading key columns
 * are exactly `ncols` columns (store indexes) in ascending order with the
 * default NULLS LAST, of the types' default operator families, with no
 * expressions, and either no predicate or the predicate `pred_col` (a
 * boolean column), or InvalidOid.
 */
static Oid
FindIndex(TableShape *s, Relation rel, const int *cols, int ncols, bool unique, int pred_col,
		  int *max)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			found = InvalidOid;

	foreach(lc, indexes)
	{
		Oid			idxid = lfirst_oid(lc);
		Relation	idx = index_open(idxid, AccessShareLock);
		Form_pg_index ind = idx->rd_index;
		bool		ok;
		int			k;

		AddRelated(s, idxid, max);
		ok = !OidIsValid(found) && idx->rd_rel->relam == BTREE_AM_OID &&
			ind->indisvalid && ind->indisready && ind->indislive &&
			ind->indnkeyatts >= ncols && (!unique || (ind->indisunique && ind->indnkeyatts == ncols)) &&
			RelationGetIndexExpressions(idx) == NIL;
		for (k = 0; ok && k < ncols; k++)
		{
			AttrNumber	a = s->attno[cols[k]];

			ok = a >= 0 && ind->indkey.values[k] == a + 1 && idx->rd_indoption[k] == 0 &&
				idx->rd_opfamily[k] == get_opclass_family(GetDefaultOpClass(s->col_type[cols[k]],
																			BTREE_AM_OID));
		}
		if (ok)
		{
			List	   *pred = RelationGetIndexPredicate(idx);

			if (pred != NIL)
			{
				Node	   *p = linitial(pred);

				ok = pred_col >= 0 && list_length(pred) == 1 && IsA(p, Var) &&
					((Var *) p)->varattno == s->attno[pred_col] + 1;
			}
		}
		if (ok)
			found = idxid;
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	return found;
}

/* The leaf partitions of a partitioned ledger: plain tables, triggers. */
static void
CheckPartitions(TableShape *s, Relation rel, AclMode ops, int *max)
{
	List	   *parts = find_all_inheritors(RelationGetRelid(rel), NoLock, NULL);
	ListCell   *lc;

	foreach(lc, parts)
	{
		Oid			partid = lfirst_oid(lc);
		Relation	part;

		if (partid == RelationGetRelid(rel))
			continue;
		AddRelated(s, partid, max);
		part = try_table_open(partid, AccessShareLock);
		if (part == NULL)
			continue;			/* dropped meanwhile */
		if (part->rd_rel->relkind != RELKIND_RELATION &&
			part->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
			NotFast(s, "partition %s is not a plain table", RelationGetRelationName(part));
		CheckTriggers(s, part, ops);
		table_close(part, AccessShareLock);
	}
	list_free(parts);
}

/* Work out the table's shape (the caller holds a lock on it). */
static void
ComputeShape(StoreTable t, Oid relid, TableShape *s)
{
	const StoreTableDef *def = &store_tables[t];
	Relation	rel = table_open(relid, NoLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			max = 0;
	int			i,
				a;

	if (shape_cxt == NULL)
		shape_cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty table shapes",
										  ALLOCSET_SMALL_SIZES);
	if (s->related)
		pfree(s->related);
	memset(s, 0, sizeof(*s));
	s->relid = relid;
	s->relkind = rel->rd_rel->relkind;
	s->natts = desc->natts;
	s->fast = true;

	if (s->relkind != RELKIND_RELATION &&
		!(t == ST_LEDGER && s->relkind == RELKIND_PARTITIONED_TABLE))
		NotFast(s, "loyalty.%s is not a plain table", def->name);

	for (i = 0; i < def->ncols; i++)
	{
		const StoreColumn *col = &def->cols[i];
		Form_pg_attribute att = NULL;

		s->col_type[i] = TypeOid(col->type);
		s->attno[i] = -1;
		for (a = 0; a < desc->natts; a++)
		{
			att = TupleDescAttr(desc, a);
			if (!att->attisdropped && strcmp(NameStr(att->attname), col->name) == 0)
				break;
		}
		if (a == desc->natts)
		{
			if (col->optional)
				NotFast(s, "loyalty.%s lacks column %s (run ALTER EXTENSION loyalty UPDATE)",
						def->name, col->name);
			else
				NotFast(s, "loyalty.%s lacks column %s", def->name, col->name);
			continue;
		}
		s->attno[i] = a;
		if (att->atttypid != s->col_type[i])
			NotFast(s, "column %s.%s is %s, not %s", def->name, col->name,
					format_type_be(att->atttypid), col->type);
		else if (att->atttypmod != -1)
			NotFast(s, "column %s.%s has a type modifier (%s)", def->name, col->name,
					format_type_with_typemod(att->atttypid, att->atttypmod));
		else if (att->attcollation != get_typcollation(att->atttypid))
			NotFast(s, "column %s.%s has another collation", def->name, col->name);
		else if (att->attgenerated != col->generated)
			NotFast(s, "column %s.%s is %sa generated column", def->name, col->name,
					col->generated ? "not " : "");
		else if (col->identity && att->attidentity == '\0')
			NotFast(s, "column %s.%s is not an identity column", def->name, col->name);
	}
	if (!def->others_allowed)
		for (a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (att->attisdropped)
				continue;
			for (i = 0; i < def->ncols; i++)
				if (s->attno[i] == a)
					break;
			if (i == def->ncols)
				NotFast(s, "loyalty.%s has column %s, which the fast store does not write",
						def->name, NameStr(att->attname));
		}

	CheckTriggers(s, rel, def->writes);
	/* (relhasrules stays set after the last rule is dropped) */
	if (rel->rd_rules != NULL && rel->rd_rules->numLocks > 0)
		NotFast(s, "loyalty.%s has rules", def->name);

	switch (t)
	{
		case ST_LEDGER:
			if (s->fast)
#if PG_VERSION_NUM >= 170000
				s->entry_seq = getIdentitySequence(rel, s->attno[L_ENTRY] + 1, true);
#else
				s->entry_seq = getIdentitySequence(relid, s->attno[L_ENTRY] + 1, true);
#endif
			if (s->fast && !OidIsValid(s->entry_seq))
				NotFast(s, "loyalty.ledger has no entry_id sequence");
			if (s->relkind == RELKIND_PARTITIONED_TABLE)
				CheckPartitions(s, rel, def->writes, &max);
			break;
		case ST_LOTS:
			{
				static const int key[] = {T_LOT, T_MEMBER};
				static const int open[] = {T_MEMBER, T_EXPIRES, T_CREATED};

				if (!s->fast)
					break;
				s->key_index = FindIndex(s, rel, key, 2, true, -1, &max);
				s->open_lot_index = FindIndex(s, rel, open, 3, false, T_IS_OPEN, &max);
				if (!OidIsValid(s->key_index))
					NotFast(s, "loyalty.lots has no valid unique index on (lot_id, member_id)");
				else if (!OidIsValid(s->open_lot_index))
					NotFast(s, "loyalty.lots has no valid index on (member_id, expires_at, created_at) of its open lots");
			}
			break;
		case ST_ACCOUNTS:
		case ST_PROGRAMS:
		case ST_MEMBERS:
		case ST_STATE:
			{
				static const int acc_key[] = {A_MEMBER};
				static const int prog_key[] = {P_PROGRAM};
				static const int member_key[] = {M_MEMBER};
				static const int state_key[] = {SS_MEMBER};

				if (!s->fast)
					break;
				s->key_index = FindIndex(s, rel, t == ST_ACCOUNTS ? acc_key : t == ST_PROGRAMS ? prog_key :
										 t == ST_STATE ? state_key : member_key,
										 1, true, -1, &max);
				if (!OidIsValid(s->key_index))
					NotFast(s, "loyalty.%s has no valid unique index on %s", def->name,
							def->cols[0].name);
			}
			break;
		case ST_IDEM:
			{
				static const int key[] = {K_MEMBER, K_KEY};

				/* no such index: the keys are read by statement */
				if (s->fast)
					s->key_index = FindIndex(s, rel, key, 2, true, -1, &max);
			}
			break;
		case ST_PROGRESS:
			{
				static const int key[] = {PR_MEMBER, PR_CHALLENGE, PR_START};

				if (!s->fast)
					break;
				s->key_index = FindIndex(s, rel, key, 3, true, -1, &max);
				if (!OidIsValid(s->key_index))
					NotFast(s, "loyalty.challenge_periods has no valid unique index on (member_id, challenge_id, period_start)");
			}
			break;
		case ST_ALLOC:
			{
				static const int key[] = {X_ENTRY, X_MEMBER, X_LOT};

				if (!s->fast)
					break;
				s->key_index = FindIndex(s, rel, key, 3, true, -1, &max);
				if (!OidIsValid(s->key_index))
					NotFast(s, "loyalty.allocations has no valid unique index on (entry_id, member_id, lot_id)");
			}
			break;
		default:
			break;
	}
	table_close(rel, NoLock);
	s->checked = true;
}

/* The shape of a table the caller has locked (store_lock_table). */
const TableShape *
store_shape(StoreTable t)
{
	TableShape *s = &shapes[t];
	Oid			relid = TableOid(t);

	if (!s->checked || s->relid != relid)
		ComputeShape(t, relid, s);
	return s;
}

/* The role that called, not the extension owner the call runs as. */
const char *
store_user_name(void)
{
	return GetUserNameFromId(GetOuterUserId(), false);
}

/*
 * Why the fast store may not do `mode` on the table now, or NULL when it
 * may.  Locks the table (kept to the end of the transaction).
 */
static const char *
WhyNotFast(StoreTable t, AclMode mode)
{
	const TableShape *s;
	Oid			relid;

	if (loyalty_distributed())
		return "the tables are Citus tables";
	relid = store_lock_table(t, (mode & (ACL_INSERT | ACL_UPDATE)) ? RowExclusiveLock : AccessShareLock);
	s = store_shape(t);
	if (!s->fast)
		return s->why;
	if (!loyalty_fast_store)
		return "loyalty.fast_store is off";
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return "row-level security applies to the writing role";
	if (pg_class_aclcheck(relid, GetUserId(), mode) != ACLCHECK_OK)
		return "the writing role lacks a table privilege";
	return NULL;
}

/* The store that does `mode` on table t in this call. */
static const StoreRoutine *
Choose(StoreWriter *w, StoreTable t, AclMode mode)
{
	StoreChoice *c = &w->choices[t];

	if (c->store == &sql_store)
		return c->store;
	if (c->store == &fast_store && (c->checked & mode) == mode)
		return c->store;
	if (WhyNotFast(t, mode) == NULL)
	{
		c->store = &fast_store;
		c->checked |= mode;
	}
	else
		c->store = &sql_store;
	return c->store;
}

/* Start one API call's writes. */
StoreWriter *
store_begin(void)
{
	StoreWriter *w = palloc0(sizeof(StoreWriter));

	w->cxt = CurrentMemoryContext;
	return w;
}

/* End them: close what the fast store opened. */
void
store_end(StoreWriter *w)
{
	if (w->fast)
		fast_store_end(w);
	pfree(w);
}

bool
store_read_account(StoreWriter *w, int64 member_id, bool lock, AccountRead *out)
{
	const StoreRoutine *s = Choose(w, ST_ACCOUNTS, lock ? ACL_SELECT | ACL_UPDATE : ACL_SELECT);

	/* the program's row is read with the account, by the same store */
	if (s == &fast_store && Choose(w, ST_PROGRAMS, ACL_SELECT) != &fast_store)
		s = &sql_store;
	return s->read_account(w, member_id, lock, out);
}

int64
store_insert_entry(StoreWriter *w, const LedgerRow *r)
{
	return Choose(w, ST_LEDGER, ACL_INSERT)->insert_entry(w, r);
}

int64
store_insert_lot(StoreWriter *w, const LotRow *l)
{
	return Choose(w, ST_LOTS, ACL_INSERT)->insert_lot(w, l);
}

void
store_update_account(StoreWriter *w, int64 member_id, ItemPointer tid, const AccountDelta *d)
{
	Choose(w, ST_ACCOUNTS, ACL_SELECT | ACL_UPDATE)->update_account(w, member_id, tid, d);
}

void
store_insert_idempotency(StoreWriter *w, int64 member_id, text *key, const char *op,
						 int64 hash, int64 result, int64 entry_id)
{
	Choose(w, ST_IDEM, ACL_INSERT)->insert_idempotency(w, member_id, key, op, hash, result, entry_id);
}

/*
 * The first result recorded under a member's key (after its lock).  Chosen
 * (and locked) as for the insert that follows unless it is a replay: the
 * fast store reads through the result relation it writes.
 */
bool
store_read_idempotency(StoreWriter *w, int64 member_id, text *key, IdemRow *out)
{
	return Choose(w, ST_IDEM, ACL_SELECT | ACL_INSERT)->read_idempotency(w, member_id, key, out);
}

/* First to expire first; then the older lot, then the lower id. */
int
store_compare_fefo(const void *a, const void *b)
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

/* Take `take` points from a lot and record the debit's allocation. */
static void
TakeFromLot(StoreWriter *w, int64 member_id, int64 entry_id, const OpenLot *lot, int64 take,
			int64 reversed, Datum reversed_amount)
{
	Choose(w, ST_LOTS, ACL_SELECT | ACL_UPDATE)->change_lot(w, member_id, lot, -take, reversed,
															reversed_amount);
	if (take > 0)
		Choose(w, ST_ALLOC, ACL_INSERT)->insert_allocation(w, member_id, entry_id, lot->lot_id, take);
}

/*
 * The rule of spending: take up to `points` from the member's lots
 * spendable at `at`, first to expire first, recording each lot taken from
 * in allocations for entry `entry_id`.  Returns what the lots gave (all they
 * had, when short).  The caller holds the member's lock.
 */
int64
store_consume_lots(StoreWriter *w, int64 member_id, int64 entry_id, int64 points, TimestampTz at)
{
	OpenLot    *lots;
	int			n,
				i;
	int64		taken = 0;

	n = Choose(w, ST_LOTS, ACL_SELECT)->open_lots(w, member_id, LOTS_SPENDABLE, at, points, &lots);
	if (n > 1)
		qsort(lots, n, sizeof(OpenLot), store_compare_fefo);
	for (i = 0; i < n && taken < points; i++)
	{
		int64		take = Min(lots[i].remaining, points - taken);

		CHECK_FOR_INTERRUPTS();
		TakeFromLot(w, member_id, entry_id, &lots[i], take, 0, (Datum) 0);
		taken += take;
	}
	if (n > 0)
		pfree(lots);
	return taken;
}

/*
 * The member's open lots matching `f` at `at` (LOTS_SPENDABLE: all of them,
 * unlike store_consume_lots' walk), in no particular order.
 */
int
store_open_lots(StoreWriter *w, int64 member_id, LotFilter f, TimestampTz at, OpenLot **out)
{
	return Choose(w, ST_LOTS, ACL_SELECT)->open_lots(w, member_id, f, at, -1, out);
}

/* Take `points` of an open lot for debit entry `entry_id` (expiry, merges). */
void
store_take_lot(StoreWriter *w, int64 member_id, int64 entry_id, const OpenLot *lot, int64 points)
{
	TakeFromLot(w, member_id, entry_id, lot, points, 0, (Datum) 0);
}

/* The earliest expiry of the member's open lots (0: none expires). */
TimestampTz
store_first_expiry(StoreWriter *w, int64 member_id)
{
	OpenLot    *lots;
	TimestampTz first = 0;
	int			n,
				i;

	n = store_open_lots(w, member_id, LOTS_ALL_OPEN, 0, &lots);
	for (i = 0; i < n; i++)
		if (lots[i].expires_at != DT_NOEND && (first == 0 || lots[i].expires_at < first))
			first = lots[i].expires_at;
	if (n > 0)
		pfree(lots);
	return first;
}

/* Set the status a write learns from the member's locked account row. */
void
store_set_status(StoreWriter *w, int64 member_id, const char *status)
{
	Choose(w, ST_ACCOUNTS, ACL_SELECT | ACL_UPDATE)->set_status(w, member_id, status);
}

/* Change the member's tier columns (the caller holds the member's lock). */
void
store_set_tier(StoreWriter *w, int64 member_id, const TierChange *c)
{
	Choose(w, ST_ACCOUNTS, ACL_SELECT | ACL_UPDATE)->set_tier(w, member_id, c);
}

/* Whether the member's referral waits for a qualifying purchase. */
void
store_set_referral(StoreWriter *w, int64 member_id, bool pending)
{
	Choose(w, ST_ACCOUNTS, ACL_SELECT | ACL_UPDATE)->set_referral(w, member_id, pending);
}

/* The member's stored segment and risk band (the caller holds the lock). */
void
store_set_segment(StoreWriter *w, int64 member_id, const SegmentChange *c)
{
	Choose(w, ST_ACCOUNTS, ACL_SELECT | ACL_UPDATE)->set_segment(w, member_id, c);
}

/*
 * A new member's account.  Always a statement: the account has columns the
 * books do not know (a DBA's, the tiers' and segments'), and only an INSERT
 * fills them with their defaults.  Enrolment is rare next to the writes.
 */
void
store_insert_account(StoreWriter *w, int64 member_id, int64 program_id)
{
	w->choices[ST_ACCOUNTS].store = &sql_store;
	sql_insert_account(member_id, program_id);
}

/*
 * Once the archived partitions' entries are carried forward: the allocations
 * of the archived debits and the closed lots credited before `horizon` that
 * no allocation names any more leave the books (copied into
 * `archive_schema` unless it is NULL).  Balances do not move.  Deleting rows
 * that leave the books is a statement's work in both stores: the fast store
 * writes and updates rows, it never deletes them.
 */
void
store_archive_rows(StoreWriter *w, const Oid *parts, int nparts, TimestampTz horizon,
				   const char *archive_schema, int64 *lots, int64 *allocations)
{
	w->choices[ST_ALLOC].store = &sql_store;
	w->choices[ST_LOTS].store = &sql_store;
	*allocations = sql_archive_allocations(parts, nparts, archive_schema);
	*lots = sql_archive_lots(horizon, archive_schema);
}

/* A fresh number from the ledger's entry_id sequence (a merge's new lots). */
int64
store_next_entry_id(StoreWriter *w)
{
	return Choose(w, ST_LEDGER, ACL_INSERT)->next_entry_id(w);
}

/*
 * A member's earlier challenge periods (loyalty.challenge_periods; the caller
 * holds the member's lock): for each i, every period of challenge ids[i]
 * when every[i], else its period starting at starts[i]; by challenge, the
 * latest period first.  One store reads and writes a call's progress rows.
 */
#define PROGRESS_MODE (ACL_SELECT | ACL_INSERT | ACL_UPDATE)
int
store_read_progress(StoreWriter *w, int64 member_id, const int64 *ids, const TimestampTz *starts,
					const bool *every, int n, ProgressRow **out)
{
	return Choose(w, ST_PROGRESS, PROGRESS_MODE)->read_progress(w, member_id, ids, starts, every, n, out);
}

/* A period's row, as given. */
void
store_insert_progress(StoreWriter *w, int64 member_id, int64 program_id, const ProgressRow *r)
{
	Choose(w, ST_PROGRESS, PROGRESS_MODE)->insert_progress(w, member_id, program_id, r);
}

/* A period read by store_read_progress, written over with r's columns. */
void
store_update_progress(StoreWriter *w, int64 member_id, const ProgressRow *r)
{
	Choose(w, ST_PROGRESS, PROGRESS_MODE)->update_progress(w, member_id, r);
}

/* The member's latest periods (loyalty.challenge_state), if it has any. */
bool
store_read_state(StoreWriter *w, int64 member_id, StateRow *out)
{
	return Choose(w, ST_STATE, PROGRESS_MODE)->read_state(w, member_id, out);
}

/*
 * The member's latest periods written: over the row store_read_state found
 * (r->found), or a new one.
 */
void
store_write_state(StoreWriter *w, int64 member_id, const StateRow *r)
{
	Choose(w, ST_STATE, PROGRESS_MODE)->write_state(w, member_id, r);
}

/* What a purchase moved, for its refund. */
void
store_insert_challenge_facts(StoreWriter *w, const ChallengeFactsRow *f)
{
	Choose(w, ST_FACTS, ACL_INSERT)->insert_challenge_facts(w, f);
}

/* When the member joined (challenges of the first days of membership). */
TimestampTz
store_read_joined(StoreWriter *w, int64 member_id)
{
	TimestampTz joined = 0;

	if (!Choose(w, ST_MEMBERS, ACL_SELECT)->read_joined(w, member_id, &joined))
		elog(ERROR, "loyalty: member %lld not found", (long long) member_id);
	return joined;
}

/*
 * A reversal's take from the lot of the credit it reverses: `points` leave
 * the lot (recorded in allocations for entry `entry_id`), and the lot's
 * reversed points and amount grow by `reversed` and `reversed_amount`.
 */
void
store_take_from_lot(StoreWriter *w, int64 member_id, int64 entry_id, int64 lot_id, int64 points,
					int64 reversed, Datum reversed_amount)
{
	OpenLot		lot = {0};

	lot.lot_id = lot_id;
	ItemPointerSetInvalid(&lot.tid);
	TakeFromLot(w, member_id, entry_id, &lot, points, reversed, reversed_amount);
}

/* Latest to expire first (never first), then the newer lot, the higher id. */
static int
CompareGiveBack(const void *a, const void *b)
{
	const Allocation *x = a;
	const Allocation *y = b;

	if (x->lot_expires_at != y->lot_expires_at)
		return x->lot_expires_at > y->lot_expires_at ? -1 : 1;
	if (x->lot_created_at != y->lot_created_at)
		return x->lot_created_at > y->lot_created_at ? -1 : 1;
	if (x->lot_id != y->lot_id)
		return x->lot_id > y->lot_id ? -1 : 1;
	return 0;
}

/* A debit's allocations and their lots, the latest-expiring first. */
static int
Allocations(StoreWriter *w, int64 member_id, int64 source_entry, Allocation **allocs)
{
	const StoreRoutine *reader = Choose(w, ST_ALLOC, ACL_SELECT);
	int			n;

	/* the fast read finds each allocation's lot through the lots' key */
	if (reader == &fast_store && Choose(w, ST_LOTS, ACL_SELECT) != &fast_store)
		reader = &sql_store;
	n = reader->allocations(w, member_id, source_entry, allocs);
	if (n > 1)
		qsort(*allocs, n, sizeof(Allocation), CompareGiveBack);
	return n;
}

/*
 * The rule of giving back: return `points` of debit entry `source_entry` to
 * the lots it took them from, the latest-expiring first (what is given back
 * stays spendable the longest).  With `into`, the member was merged away
 * since: each part goes instead to a new lot of the survivor (into's member,
 * entry and vesting) that keeps the expiry of the lot it came from, as the
 * merge moved the lots.  Returns the earliest expiry among the lots given to
 * (0: none expires), for the account's expiry bound.
 */
TimestampTz
store_return_to_lots(StoreWriter *w, int64 member_id, int64 source_entry, int64 points,
					 const LotRow *into)
{
	Allocation *allocs;
	int			n = Allocations(w, member_id, source_entry, &allocs),
				i;
	int64		given = 0;
	TimestampTz first = 0;

	for (i = 0; i < n && given < points; i++)
	{
		int64		give = Min(allocs[i].open, points - given);
		OpenLot		lot = {0};

		CHECK_FOR_INTERRUPTS();
		if (give <= 0)
			continue;
		Choose(w, ST_ALLOC, ACL_SELECT | ACL_UPDATE)->return_allocation(w, member_id, source_entry,
																		allocs[i].lot_id, give);
		if (into)
		{
			LotRow		moved = *into;

			moved.lot_id = store_next_entry_id(w);
			moved.original = give;
			moved.remaining = give;
			moved.expires_at = allocs[i].lot_expires_at == DT_NOEND ? 0 : allocs[i].lot_expires_at;
			store_insert_lot(w, &moved);
		}
		else
		{
			lot.lot_id = allocs[i].lot_id;
			lot.tid = allocs[i].lot_tid;
			Choose(w, ST_LOTS, ACL_SELECT | ACL_UPDATE)->change_lot(w, member_id, &lot, give, 0, (Datum) 0);
		}
		if (allocs[i].lot_expires_at != DT_NOEND && (first == 0 || allocs[i].lot_expires_at < first))
			first = allocs[i].lot_expires_at;
		given += give;
	}
	if (given != points)
		elog(ERROR, "loyalty: returned %lld of %lld points to the lots of entry %lld",
			 (long long) given, (long long) points, (long long) source_entry);
	if (n > 0)
		pfree(allocs);
	return first;
}

/*
 * What a transfer gives: for each lot debit entry `source_entry` of
 * `member_id` took from, a new lot of `into`'s member and entry, of the
 * points taken and with that lot's expiry (points keep their dates when they
 * change hands).  The first `repay` points repay the receiver's debt: their
 * lots start with less remaining than original, as a credit's lot does.
 * Returns the earliest expiry among the lots with points left (0: none).
 */
TimestampTz
store_mirror_lots(StoreWriter *w, int64 member_id, int64 source_entry, const LotRow *into,
				  int64 repay)
{
	Allocation *allocs;
	int			n = Allocations(w, member_id, source_entry, &allocs),
				i;
	TimestampTz first = 0;

	for (i = n - 1; i >= 0; i--)
	{
		LotRow		lot = *into;
		int64		repaid = Min(allocs[i].open, repay);

		CHECK_FOR_INTERRUPTS();
		if (allocs[i].open <= 0)
			continue;
		lot.lot_id = store_next_entry_id(w);
		lot.original = allocs[i].open;
		lot.remaining = allocs[i].open - repaid;
		lot.expires_at = allocs[i].lot_expires_at == DT_NOEND ? 0 : allocs[i].lot_expires_at;
		store_insert_lot(w, &lot);
		repay -= repaid;
		if (lot.remaining > 0 && lot.expires_at != 0 && (first == 0 || lot.expires_at < first))
			first = lot.expires_at;
	}
	if (n > 0)
		pfree(allocs);
	return first;
}

/*
 * loyalty.write_store(): which store writes each table in this session now,
 * and why not the fast one.
 */
Datum
loyalty_write_store(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			t;

	InitMaterializedSRF(fcinfo, 0);
	for (t = 0; t < ST_COUNT; t++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		const char *why;

		/* a schema not yet updated has no challenge tables */
		if (!OidIsValid(get_relname_relid(store_tables[t].name, get_namespace_oid("loyalty", false))))
			continue;
		why = WhyNotFast(t, store_tables[t].writes);

		values[0] = CStringGetTextDatum(store_tables[t].name);
		values[1] = CStringGetTextDatum(why ? "sql" : "fast");
		values[2] = why ? CStringGetTextDatum(why) : (Datum) 0;
		nulls[2] = why == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
