/*
 * loyalty.c
 *		Module entry point: the magic block and GUC registration.
 *
 * Everything else lives in one file per concern (points.c, tier.c, ...).
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "store.h"
#include "loyalty.h"

PG_MODULE_MAGIC;

#ifndef LOYALTY_VERSION
#error "LOYALTY_VERSION must be defined (the Makefile takes it from loyalty.control)"
#endif

PG_FUNCTION_INFO_V1(loyalty_version);

/* loyalty.version(): the version this library was built as. */
Datum
loyalty_version(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_TEXT_P(cstring_to_text(LOYALTY_VERSION));
}

/* How far in the future a client's business time ("occurred at") may lie. */
int			loyalty_max_future_seconds = 300;

/* How far in the past a client's business time may lie. */
int			loyalty_max_past_days = 18300;

void		_PG_init(void);

/* Register the extension's GUCs and the program-binding cache callbacks. */
void
_PG_init(void)
{
	DefineCustomIntVariable("loyalty.max_future_seconds",
							"How far in the future a client-supplied occurrence time may be.",
							"Calls whose occurred_at lies further ahead of the database clock are refused, "
							"so a client clock cannot post points into the future.",
							&loyalty_max_future_seconds,
							300, 0, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("loyalty.max_past_days",
							"How far in the past a client-supplied occurrence time may be.",
							"Calls whose occurred_at lies further back are refused, so a wrong or "
							"sentinel date (0001-01-01, 1970-01-01) cannot post points into history; "
							"raise it for a backfill of older sales.",
							&loyalty_max_past_days,
							18300, 1, 36600,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	store_init();
	MarkGUCPrefixReserved("loyalty");
	access_init();
}

/*
 * Execute a kept statement, preparing it on first use.
 *
 * Its generic plan is made once and kept until an invalidation (ANALYZE,
 * DDL) replaces it.  A plan made while a table was tiny (a new installation,
 * or the first rows of a bulk import in one transaction, when no ANALYZE can
 * run) may scan the table instead of looking a member up through its index,
 * and keep doing so as the table grows: a million-row import turns
 * quadratic.  So the statement is prepared again after 16, 32, 64, ...
 * executions: each new plan is made with the tables' current sizes (the
 * planner reads their actual number of pages), a few dozen plans in a
 * backend's life, and no plan serves more executions than it had seen when
 * it was made.  The planner scans a table only while that is cheaper than
 * its index, i.e. while it is a few pages small.
 */
static List *retired_plans = NIL;
static bool retired_callback = false;

/*
 * A replaced plan may still be running further up the stack (a trigger
 * fired by one of our statements calling the API again), so it is freed
 * only when the transaction ends.
 */
static void
FreeRetiredPlans(XactEvent event, void *arg)
{
	ListCell   *lc;

	(void) arg;
	if (retired_plans == NIL ||
		!(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		  event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT))
		return;
	foreach(lc, retired_plans)
		SPI_freeplan((SPIPlanPtr) lfirst(lc));
	list_free(retired_plans);
	retired_plans = NIL;
}

int
loyalty_run(KeptPlan *kp, const char *sql, int nargs, const Oid *argtypes,
			Datum *values, const char *nulls, bool read_only, long tcount)
{
	if (kp->plan != NULL && kp->runs >= 16 && (kp->runs & (kp->runs - 1)) == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		if (!retired_callback)
		{
			RegisterXactCallback(FreeRetiredPlans, NULL);
			retired_callback = true;
		}
		retired_plans = lappend(retired_plans, kp->plan);
		MemoryContextSwitchTo(old);
		kp->plan = NULL;
	}
	if (kp->plan == NULL)
	{
		/*
		 * Under Citus a router query with an unresolved parameter may have no
		 * generic distributed plan; there the plan cache chooses.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes,
											  loyalty_distributed() ? 0 : CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "loyalty: SPI_prepare failed: %s (%s)", SPI_result_code_string(SPI_result), sql);
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "loyalty: SPI_keepplan failed");
		kp->plan = plan;
	}
	kp->runs++;
	return SPI_execute_plan(kp->plan, values, nulls, read_only, tcount);
}
