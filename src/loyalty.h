/*
 * loyalty.h
 *		Declarations shared by the loyalty extension's C files.
 *
 * Each SQL type has its own header (points.h, tier.h); this one only holds
 * what several concerns need.
 */
#ifndef LOYALTY_H
#define LOYALTY_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"

/* GUC-backed settings, defined in loyalty.c */
extern int	loyalty_max_future_seconds;
extern int	loyalty_max_past_days;

/*
 * A statement of a hot path, prepared on first use and kept (loyalty.c).
 * Zero-initialised (static) until then.
 */
typedef struct KeptPlan
{
	SPIPlanPtr	plan;
	uint64		runs;			/* executions since it was prepared */
} KeptPlan;

extern int	loyalty_run(KeptPlan *kp, const char *sql, int nargs, const Oid *argtypes,
						Datum *values, const char *nulls, bool read_only, long tcount);

/* Multi-program isolation (access.c). */
extern void access_init(void);
extern bool access_program_visible(int64 program_id);
extern void access_check_program(int64 program_id);

/* SQL operators spelled out so that no search_path can redirect them. */
#define EQ " OPERATOR(pg_catalog.=) "
#define LT " OPERATOR(pg_catalog.<) "
#define LE " OPERATOR(pg_catalog.<=) "
#define GT " OPERATOR(pg_catalog.>) "
#define GE " OPERATOR(pg_catalog.>=) "
#define PLUS " OPERATOR(pg_catalog.+) "
#define MINUS " OPERATOR(pg_catalog.-) "
#define I8 "::pg_catalog.int8"
#define PTS "::loyalty.points"

#endif							/* LOYALTY_H */
