/*
 * loyalty.c
 *		Module entry point: the magic block and GUC registration.
 *
 * Everything else lives in one file per concern (points.c, tier.c, ...).
 */
#include "postgres.h"

#include "executor/spi.h"
#include "executor/spi_priv.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/plancache.h"

#include "direct.h"
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

	MarkGUCPrefixReserved("loyalty");
	access_init();
}

/*
 * Prepare and keep a statement of a hot path.  Always the generic plan: no
 * planning per call, and (see loyalty_execute) a plan that keeps using the
 * member indexes however small the tables were when it was made.
 */
SPIPlanPtr
loyalty_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	/*
	 * Under Citus a router query with an unresolved parameter may have no
	 * generic distributed plan; there the plan cache chooses (spiwrite.c).
	 */
	plan = SPI_prepare_cursor(sql, nargs, argtypes,
							  loyalty_distributed() ? 0 : CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "loyalty: SPI_prepare failed: %s (%s)", SPI_result_code_string(SPI_result), sql);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "loyalty: SPI_keepplan failed");
	return plan;
}

/*
 * Execute a kept plan.  When its plan is (re)built, sequential scans are
 * switched off: a plan made while a table is tiny or freshly analysed empty
 * (a new installation, or the first bulk import in one transaction) would
 * otherwise scan the whole table on every call as the table grows, which
 * turns a million-row import quadratic.  Every statement here looks rows up
 * by member, through an index.
 */
int
loyalty_execute(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long tcount)
{
	CachedPlanSource *ps = (CachedPlanSource *) linitial(plan->plancache_list);
	int			rc;

	if (ps->is_valid && ps->gplan != NULL && ps->gplan->is_valid)
		return SPI_execute_plan(plan, values, nulls, read_only, tcount);
	else
	{
		int			level = NewGUCNestLevel();

		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		rc = SPI_execute_plan(plan, values, nulls, read_only, tcount);
		AtEOXact_GUC(true, level);
		return rc;
	}
}
