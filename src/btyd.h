/*
 * btyd.h
 *		What the model fits of btyd.c share with other models' files (sbg.c):
 *		the aggregate state of distinct weighted observations, the maximum
 *		likelihood fit, and the hypergeometric series.
 */
#ifndef BTYD_H
#define BTYD_H

#include "postgres.h"

#include "fmgr.h"

#define ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED MAKE_SQLSTATE('L','Y','0','3','0')

/* One distinct observation and how many customers share it. */
typedef struct Obs
{
	double		a;				/* x (BTYD); periods paid (sBG) */
	double		b;				/* t_x (BG/NBD), m_x (Gamma-Gamma); 1 still
								 * active, 0 churned (sBG) */
	double		c;				/* T (BG/NBD) */
	double		n;				/* weight */
} Obs;

typedef struct BtydState
{
	int			nobs;
	int			cap;
	Obs		   *obs;
	double		total;			/* customers */
	double		repeaters;		/* customers with x > 0 */
	double		penalizer;		/* the fit's penalizer; NaN: none given */
} BtydState;

/* A model's log-likelihood of the whole state at parameters p. */
typedef double (*BtydLogLik) (BtydState *s, const double *p);

extern BtydState *btyd_state_new(MemoryContext cxt);
extern void btyd_state_add(BtydState *s, MemoryContext cxt, double a, double b, double c, double n);
extern bool btyd_final_state(BtydState *s, const char *model, const char *what);
extern double btyd_fit(BtydLogLik f, BtydState *s, double *p, int k, const char *model,
					   const char *const *names);
extern Datum btyd_result_tuple(FunctionCallInfo fcinfo, const double *v, int nv);
extern bool btyd_hyp2f1_series(double a, double b, double c, double z, int max_terms, double *out);

#endif							/* BTYD_H */
