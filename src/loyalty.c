/*
 * loyalty.c
 *		Module entry point: the magic block and GUC registration.
 *
 * Everything else lives in one file per concern (points.c, tier.c, ...).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "loyalty.h"

PG_MODULE_MAGIC;

/* How far in the future a client's business time ("occurred at") may lie. */
int			loyalty_max_future_seconds = 300;

void		_PG_init(void);

/* Register the extension's GUCs; nothing else happens at load time. */
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
}
