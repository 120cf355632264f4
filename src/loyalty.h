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

#include "fmgr.h"

/* GUC-backed settings, defined in loyalty.c */
extern int	loyalty_max_future_seconds;

#endif							/* LOYALTY_H */
