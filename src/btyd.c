/*
 * btyd.c
 *		Buy-till-you-die models in C: BG/NBD (Fader, Hardie & Lee 2005),
 *		MBG/NBD (Batislam, Denizel & Filiztekin 2007) and Gamma-Gamma (Fader,
 *		Hardie & Lee 2005, "RFM and CLV"), fitted by maximum likelihood, and
 *		the per-customer expectations built on them.
 *
 * The fits are aggregates: loyalty.bgnbd_fit(x, t_x, T),
 * loyalty.mbgnbd_fit(x, t_x, T) and loyalty.gamma_gamma_fit(x, m_x) collect
 * the customers (identical rows are merged, so the state stays small) and the
 * final function maximises the log-likelihood with Nelder-Mead on the
 * logarithms of the parameters, restarted until it no longer improves.  A fit
 * that the data cannot identify fails with SQLSTATE LY030 instead of
 * returning numbers.  Each takes an optional penalizer (lifetimes' L2
 * penalty on the parameters).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "btyd.h"
#include "loyalty.h"

PG_FUNCTION_INFO_V1(btyd_bgnbd_trans);
PG_FUNCTION_INFO_V1(btyd_gg_trans);
PG_FUNCTION_INFO_V1(btyd_combine);
PG_FUNCTION_INFO_V1(btyd_serialize);
PG_FUNCTION_INFO_V1(btyd_deserialize);
PG_FUNCTION_INFO_V1(btyd_bgnbd_final);
PG_FUNCTION_INFO_V1(btyd_gg_final);
PG_FUNCTION_INFO_V1(btyd_bgnbd_loglik);
PG_FUNCTION_INFO_V1(btyd_bgnbd_expected);
PG_FUNCTION_INFO_V1(btyd_bgnbd_p_alive);
PG_FUNCTION_INFO_V1(btyd_gg_expected);
PG_FUNCTION_INFO_V1(btyd_mbgnbd_final);
PG_FUNCTION_INFO_V1(btyd_mbgnbd_loglik);
PG_FUNCTION_INFO_V1(btyd_mbgnbd_expected);
PG_FUNCTION_INFO_V1(btyd_mbgnbd_p_alive);
PG_FUNCTION_INFO_V1(btyd_predict);

static BtydState *
state_new(MemoryContext cxt)
{
	BtydState  *s = MemoryContextAllocZero(cxt, sizeof(BtydState));

	s->cap = 64;
	s->obs = MemoryContextAlloc(cxt, sizeof(Obs) * s->cap);
	s->penalizer = NAN;
	return s;
}

/*
 * Add a row.  Rows are appended; the final function sorts and merges them,
 * and so does a state that grows past its capacity, so repeated summaries
 * (most customers of a cohort share small x) cost no memory.
 */
static int
obs_cmp(const void *p, const void *q)
{
	const Obs  *x = p,
			   *y = q;

	if (x->a != y->a)
		return x->a < y->a ? -1 : 1;
	if (x->b != y->b)
		return x->b < y->b ? -1 : 1;
	if (x->c != y->c)
		return x->c < y->c ? -1 : 1;
	return 0;
}

static void
state_compact(BtydState *s)
{
	int			i,
				j = 0;

	if (s->nobs < 2)
		return;
	qsort(s->obs, s->nobs, sizeof(Obs), obs_cmp);
	for (i = 1; i < s->nobs; i++)
	{
		if (obs_cmp(&s->obs[j], &s->obs[i]) == 0)
			s->obs[j].n += s->obs[i].n;
		else
			s->obs[++j] = s->obs[i];
	}
	s->nobs = j + 1;
}

static void
state_add(BtydState *s, MemoryContext cxt, double a, double b, double c, double n)
{
	if (s->nobs == s->cap)
	{
		state_compact(s);
		if (s->nobs > s->cap / 2)
		{
			s->cap *= 2;
			s->obs = repalloc(s->obs, sizeof(Obs) * s->cap);
		}
	}
	s->obs[s->nobs].a = a;
	s->obs[s->nobs].b = b;
	s->obs[s->nobs].c = c;
	s->obs[s->nobs].n = n;
	s->nobs++;
	s->total += n;
	if (a > 0)
		s->repeaters += n;
	(void) cxt;
}

static double
arg_double(FunctionCallInfo fcinfo, int i, const char *name)
{
	double		v = PG_GETARG_FLOAT8(i);

	if (isnan(v) || isinf(v) || v < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number, not negative, got %g", name, v)));
	return v;
}

/*
 * Take a penalizer (a property of the fit, so the same on every row; a NULL
 * one is no penalizer) into the state.
 */
static void
state_penalizer(BtydState *s, double v)
{
	if (isnan(v))
		return;
	if (!isnan(s->penalizer) && s->penalizer != v)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the penalizer must be the same for every row of a fit, got %g and %g", s->penalizer, v)));
	s->penalizer = v;
}

/* The penalizer argument argno of a transition function, if it has one. */
static void
arg_penalizer(FunctionCallInfo fcinfo, BtydState *s, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return;
	state_penalizer(s, arg_double(fcinfo, argno, "the penalizer"));
}

Datum
btyd_bgnbd_trans(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	BtydState  *s;
	double		x,
				tx,
				T;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "btyd_bgnbd_trans called in non-aggregate context");
	s = PG_ARGISNULL(0) ? state_new(cxt) : (BtydState *) PG_GETARG_POINTER(0);
	arg_penalizer(fcinfo, s, 4);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_POINTER(s);	/* like other aggregates, rows with NULLs are
								 * skipped */
	x = arg_double(fcinfo, 1, "x");
	tx = arg_double(fcinfo, 2, "t_x");
	T = arg_double(fcinfo, 3, "T");
	if (x != floor(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("x (repeat purchases) must be a whole number, got %g", x)));
	if (tx > T || (x == 0 && tx != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inconsistent customer summary: x = %g, t_x = %g, T = %g", x, tx, T),
				 errdetail("t_x (time of the last repeat purchase) lies between 0 and T, and is 0 when x = 0.")));
	state_add(s, cxt, x, tx, T, 1);
	PG_RETURN_POINTER(s);
}

Datum
btyd_gg_trans(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	BtydState  *s;
	double		x,
				m;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "btyd_gg_trans called in non-aggregate context");
	s = PG_ARGISNULL(0) ? state_new(cxt) : (BtydState *) PG_GETARG_POINTER(0);
	arg_penalizer(fcinfo, s, 3);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);
	x = arg_double(fcinfo, 1, "x");
	m = arg_double(fcinfo, 2, "m_x");
	/* Gamma-Gamma is fitted on repeat customers with a positive mean spend */
	if (x >= 1 && m > 0)
		state_add(s, cxt, x, m, 0, 1);
	PG_RETURN_POINTER(s);
}

Datum
btyd_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	BtydState  *a,
			   *b;
	int			i;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "btyd_combine called in non-aggregate context");
	a = PG_ARGISNULL(0) ? NULL : (BtydState *) PG_GETARG_POINTER(0);
	b = PG_ARGISNULL(1) ? NULL : (BtydState *) PG_GETARG_POINTER(1);
	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
		a = state_new(cxt);
	state_penalizer(a, b->penalizer);
	for (i = 0; i < b->nobs; i++)
		state_add(a, cxt, b->obs[i].a, b->obs[i].b, b->obs[i].c, b->obs[i].n);
	PG_RETURN_POINTER(a);
}

Datum
btyd_serialize(PG_FUNCTION_ARGS)
{
	BtydState  *s = (BtydState *) PG_GETARG_POINTER(0);
	Size		len;
	bytea	   *out;

	state_compact(s);
	len = sizeof(int32) + sizeof(Obs) * s->nobs + sizeof(double);
	out = palloc(VARHDRSZ + len);
	SET_VARSIZE(out, VARHDRSZ + len);
	memcpy(VARDATA(out), &s->nobs, sizeof(int32));
	memcpy(VARDATA(out) + sizeof(int32), s->obs, sizeof(Obs) * s->nobs);
	memcpy(VARDATA(out) + sizeof(int32) + sizeof(Obs) * s->nobs, &s->penalizer, sizeof(double));
	PG_RETURN_BYTEA_P(out);
}

Datum
btyd_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *in = PG_GETARG_BYTEA_PP(0);
	MemoryContext cxt;
	BtydState  *s;
	int32		n;
	int			i;
	const char *p = VARDATA_ANY(in);

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "btyd_deserialize called in non-aggregate context");
	if (VARSIZE_ANY_EXHDR(in) < sizeof(int32))
		elog(ERROR, "loyalty: corrupt model state");
	memcpy(&n, p, sizeof(int32));
	if (n < 0 || VARSIZE_ANY_EXHDR(in) != sizeof(int32) + sizeof(Obs) * (Size) n + sizeof(double))
		elog(ERROR, "loyalty: corrupt model state");
	s = state_new(cxt);
	memcpy(&s->penalizer, p + sizeof(int32) + sizeof(Obs) * n, sizeof(double));
	for (i = 0; i < n; i++)
	{
		Obs			o;

		memcpy(&o, p + sizeof(int32) + sizeof(Obs) * i, sizeof(Obs));
		state_add(s, cxt, o.a, o.b, o.c, o.n);
	}
	PG_RETURN_POINTER(s);
}

/* log Beta function */
static double
lbeta(double a, double b)
{
	return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/*
 * The terms of one customer's BG/NBD log-likelihood (Fader, Hardie & Lee
 * 2005, eq. 6) that depend on x alone: a fit computes them once per distinct
 * x (the state is sorted by x), not once per customer, which saves the four
 * lgamma calls that were most of its time.
 */
typedef struct BgnbdX
{
	double		A1;
	double		A2;
	double		A4;				/* the part of A4 before t_x */
} BgnbdX;

static void
bgnbd_x_terms(double r, double alpha, double a, double b, double x, BgnbdX *t)
{
	t->A1 = lgamma(r + x) - lgamma(r) + r * log(alpha);
	t->A2 = lbeta(a, b + x) - lbeta(a, b);
	t->A4 = x > 0 ? log(a) - log(b + x - 1) : 0;
}

/* The rest, for one customer with the x of t. */
static double
bgnbd_ll_row(const BgnbdX *t, double r, double alpha, double x, double tx, double T)
{
	double		A3 = -(r + x) * log(alpha + T);

	if (x > 0)
	{
		double		A4 = t->A4 - (r + x) * log(alpha + tx);
		double		mx = Max(A3, A4);

		return t->A1 + t->A2 + mx + log(exp(A3 - mx) + exp(A4 - mx));
	}
	return t->A1 + t->A2 + A3;
}

/* BG/NBD log-likelihood of one customer. */
static double
bgnbd_ll1(double r, double alpha, double a, double b, double x, double tx, double T)
{
	BgnbdX		t;

	bgnbd_x_terms(r, alpha, a, b, x, &t);
	return bgnbd_ll_row(&t, r, alpha, x, tx, T);
}

static double
bgnbd_ll(BtydState *s, const double *p)
{
	BgnbdX		t = {0};
	double		ll = 0;
	double		x = -1;
	int			i;

	for (i = 0; i < s->nobs; i++)
	{
		const Obs  *o = &s->obs[i];

		if (o->a != x)
		{
			x = o->a;
			bgnbd_x_terms(p[0], p[1], p[2], p[3], x, &t);
		}
		ll += o->n * bgnbd_ll_row(&t, p[0], p[1], x, o->b, o->c);
	}
	return ll;
}

/* digamma: the recurrence up to 10, then the asymptotic series */
static double
digamma(double x)
{
	double		v = 0;
	double		x2;

	while (x < 10)
	{
		v -= 1 / x;
		x += 1;
	}
	x2 = 1 / (x * x);
	return v + log(x) - 0.5 / x
		- x2 * (1.0 / 12 - x2 * (1.0 / 120 - x2 * (1.0 / 252 - x2 * (1.0 / 240 - x2 / 132))));
}

/*
 * The BG/NBD log-likelihood (the same sum as bgnbd_ll) and its gradient in
 * the logarithms of the parameters, for the quasi-Newton search.  With w3,
 * w4 the shares of the two terms of a repeat customer's likelihood (w3 = 1,
 * w4 = 0 without repeats):
 *   d/dr     = psi(r + x) - psi(r) + ln alpha - w3 ln(alpha + T) - w4 ln(alpha + t_x)
 *   d/dalpha = r / alpha - (r + x) (w3 / (alpha + T) + w4 / (alpha + t_x))
 *   d/da     = psi(a + b) - psi(a + b + x) + w4 / a
 *   d/db     = psi(a + b) - psi(a + b + x) + psi(b + x) - psi(b) - w4 / (b + x - 1)
 * each times its parameter for the log scale.
 */
static double
bgnbd_ll_grad(BtydState *s, const double *p, double *grad)
{
	double		r = p[0],
				alpha = p[1],
				a = p[2],
				b = p[3];
	double		lalpha = log(alpha);
	BgnbdX		t = {0};
	double		ll = 0,
				gr = 0,
				galpha = 0,
				ga = 0,
				gb = 0;
	double		x = -1,
				dr = 0,
				dab = 0,
				db = 0;
	int			i;

	for (i = 0; i < s->nobs; i++)
	{
		const Obs  *o = &s->obs[i];
		double		lT,
					A3,
					v;

		if (o->a != x)
		{
			x = o->a;
			bgnbd_x_terms(r, alpha, a, b, x, &t);
			dr = digamma(r + x) - digamma(r);
			dab = digamma(a + b) - digamma(a + b + x);
			db = digamma(b + x) - digamma(b);
		}
		lT = log(alpha + o->c);
		A3 = -(r + x) * lT;
		if (x > 0)
		{
			double		ltx = log(alpha + o->b);
			double		A4 = t.A4 - (r + x) * ltx;
			double		mx = Max(A3, A4);
			double		e3 = exp(A3 - mx);
			double		e4 = exp(A4 - mx);
			double		w3 = e3 / (e3 + e4);
			double		w4 = e4 / (e3 + e4);

			v = t.A1 + t.A2 + mx + log(e3 + e4);
			gr += o->n * (dr + lalpha - w3 * lT - w4 * ltx);
			galpha += o->n * (r / alpha - (r + x) * (w3 / (alpha + o->c) + w4 / (alpha + o->b)));
			ga += o->n * (dab + w4 / a);
			gb += o->n * (dab + db - w4 / (b + x - 1));
		}
		else
		{
			v = t.A1 + t.A2 + A3;
			gr += o->n * (dr + lalpha - lT);
			galpha += o->n * (r / alpha - r / (alpha + o->c));
			ga += o->n * dab;
			gb += o->n * (dab + db);
		}
		ll += o->n * v;
	}
	grad[0] = gr * r;
	grad[1] = galpha * alpha;
	grad[2] = ga * a;
	grad[3] = gb * b;
	return ll;
}

/*
 * Gamma-Gamma log-likelihood of customers with x repeat purchases of mean m:
 * what depends on x alone (three lgamma calls and two logs) computed once
 * per distinct x.
 */
static double
gg_x_terms(double pp, double q, double g, double x)
{
	return lgamma(pp * x + q) - lgamma(pp * x) - lgamma(q) + q * log(g);
}

static double
gg_ll_row(double x_terms, double pp, double q, double g, double x, double m, double logx)
{
	return x_terms + (pp * x - 1) * log(m) + pp * x * logx - (pp * x + q) * log(g + m * x);
}

static double
gg_ll(BtydState *s, const double *p)
{
	double		ll = 0;
	double		x = -1,
				xt = 0,
				logx = 0;
	int			i;

	for (i = 0; i < s->nobs; i++)
	{
		const Obs  *o = &s->obs[i];

		if (o->a != x)
		{
			x = o->a;
			xt = gg_x_terms(p[0], p[1], p[2], x);
			logx = log(x);
		}
		ll += o->n * gg_ll_row(xt, p[0], p[1], p[2], x, o->b, logx);
	}
	return ll;
}

typedef double (*LogLik) (BtydState *s, const double *p);

/*
 * -LL at exp(logp); +inf when not finite, so the simplex steers away.  With
 * a penalizer, lifetimes' objective -LL / n + penalizer * sum(p^2) (the
 * parameters, not their logarithms), here times n: the same minimum.
 */
static double
objective(LogLik f, BtydState *s, const double *logp, int k)
{
	double		p[4] = {0};
	double		v;
	int			i;

	for (i = 0; i < k; i++)
	{
		if (logp[i] > 30 || logp[i] < -30)
			return INFINITY;
		p[i] = exp(logp[i]);
	}
	v = -f(s, p);
	if (s->penalizer > 0)
		for (i = 0; i < k; i++)
			v += s->penalizer * s->total * p[i] * p[i];
	return isfinite(v) ? v : INFINITY;
}

typedef double (*LogLikGrad) (BtydState *s, const double *p, double *grad);

/* -LL and its gradient at exp(logp); +inf when either is not finite. */
static double
objective_grad(LogLikGrad f, BtydState *s, const double *logp, int k, double *grad)
{
	double		p[4] = {0};
	double		v;
	int			i;

	for (i = 0; i < k; i++)
	{
		if (logp[i] > 30 || logp[i] < -30)
			return INFINITY;
		p[i] = exp(logp[i]);
	}
	v = -f(s, p, grad);
	for (i = 0; i < k; i++)
	{
		grad[i] = -grad[i];
		/* the penalty as objective() adds it, derived on the log scale */
		if (s->penalizer > 0)
		{
			v += s->penalizer * s->total * p[i] * p[i];
			grad[i] += 2 * s->penalizer * s->total * p[i] * p[i];
		}
		if (!isfinite(grad[i]))
			return INFINITY;
	}
	return isfinite(v) ? v : INFINITY;
}

/*
 * BFGS on k <= 4 log-parameters from `logp`, with a backtracking (Armijo)
 * line search; leaves the best point in `logp` and its value in *best.  True
 * when it stops at a minimum: the gradient vanishes (to 1e-10 of the
 * objective), or the decrease the quasi-Newton step still promises is below
 * what the objective resolves (1e-14 of it, or 1e-11 once the line search
 * finds only steps that rounding swamps: a sum over many customers carries
 * that much rounding).  False when it cannot get there (a parameter running
 * off, a likelihood not finite at the start, steps that stall far from a
 * minimum), and the caller goes on with Nelder-Mead.  It needs a few dozen
 * evaluations where Nelder-Mead needs hundreds.
 */
static bool
bfgs(LogLikGrad f, BtydState *s, double *logp, int k, double *best)
{
	double		H[4][4];
	double		g[4],
				gn[4],
				d[4],
				xn[4],
				sv[4],
				y[4],
				Hy[4];
	double		fx,
				fn = INFINITY;
	bool		scaled = false;
	int			it,
				i,
				j;

	fx = objective_grad(f, s, logp, k, g);
	*best = fx;
	if (!isfinite(fx))
		return false;
	for (i = 0; i < k; i++)
		for (j = 0; j < k; j++)
			H[i][j] = i == j ? 1 : 0;
	for (it = 0; it < 200; it++)
	{
		double		gmax = 0,
					dmax = 0,
					gd = 0,
					step = 1,
					step0,
					sy = 0,
					yHy = 0;
		int			ls;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < k; i++)
		{
			gmax = Max(gmax, fabs(g[i]));
			d[i] = 0;
			for (j = 0; j < k; j++)
				d[i] -= H[i][j] * g[j];
			gd += g[i] * d[i];
		}
		if (gmax <= 1e-10 * (fabs(fx) + 1) || -gd <= 1e-14 * (fabs(fx) + 1))
			return true;
		if (!(gd < 0))
		{
			/* not a descent direction: start again from the gradient */
			for (i = 0; i < k; i++)
				for (j = 0; j < k; j++)
					H[i][j] = i == j ? 1 : 0;
			scaled = false;
			gd = 0;
			for (i = 0; i < k; i++)
			{
				d[i] = -g[i];
				gd -= g[i] * g[i];
			}
		}
		/* at most a factor e on any parameter per step */
		for (i = 0; i < k; i++)
			dmax = Max(dmax, fabs(d[i]));
		if (dmax > 1)
			step = 1 / dmax;
		step0 = step;
		for (ls = 0; ls < 30; ls++)
		{
			for (i = 0; i < k; i++)
				xn[i] = logp[i] + step * d[i];
			fn = objective_grad(f, s, xn, k, gn);
			if (fn < fx && fn <= fx + 1e-4 * step * gd)
				break;
			step *= 0.5;
		}
		if (ls == 30 || step < 1e-3 * step0)
		{
			/* rounding swamps the steps: a minimum if little is left to gain */
			if (ls < 30)
			{
				memcpy(logp, xn, sizeof(double) * k);
				*best = fn;
			}
			return -gd <= 1e-11 * (fabs(fx) + 1);
		}
		for (i = 0; i < k; i++)
		{
			sv[i] = xn[i] - logp[i];
			y[i] = gn[i] - g[i];
			sy += sv[i] * y[i];
			logp[i] = xn[i];
			g[i] = gn[i];
		}
		fx = fn;
		*best = fx;
		/* running off, as in nelder_mead: leave it to fit() to say so */
		for (i = 0; i < k; i++)
			if (fabs(logp[i]) > 16)
				return false;
		/* the inverse Hessian, updated where the curvature is positive */
		if (!(sy > 0))
			continue;
		if (!scaled)
		{
			double		yy = 0;

			for (i = 0; i < k; i++)
				yy += y[i] * y[i];
			for (i = 0; i < k; i++)
				for (j = 0; j < k; j++)
					H[i][j] = i == j ? sy / yy : 0;
			scaled = true;
		}
		for (i = 0; i < k; i++)
		{
			Hy[i] = 0;
			for (j = 0; j < k; j++)
				Hy[i] += H[i][j] * y[j];
			yHy += y[i] * Hy[i];
		}
		for (i = 0; i < k; i++)
			for (j = 0; j < k; j++)
				H[i][j] += ((sy + yHy) * sv[i] * sv[j]) / (sy * sy)
					- (Hy[i] * sv[j] + sv[i] * Hy[j]) / sy;
	}
	return false;
}

/*
 * Nelder-Mead on k <= 4 log-parameters from `start`; returns the minimum and
 * leaves the best point in `start`.  Restarted by the caller until it stops
 * improving, the usual cure for a collapsed simplex.
 */
static double
nelder_mead(LogLik f, BtydState *s, double *start, int k, int max_iter)
{
	double		x[5][4];
	double		fx[5];
	int			i,
				j,
				it;

	for (i = 0; i <= k; i++)
	{
		for (j = 0; j < k; j++)
			x[i][j] = start[j] + (i == j + 1 ? 0.5 : 0);
		fx[i] = objective(f, s, x[i], k);
	}
	for (it = 0; it < max_iter; it++)
	{
		int			lo = 0,
					hi = 0,
					nh = 0;
		double		c[4],
					xr[4],
					xc[4];
		double		fr,
					fc;

		CHECK_FOR_INTERRUPTS();
		for (i = 1; i <= k; i++)
		{
			if (fx[i] < fx[lo])
				lo = i;
			if (fx[i] > fx[hi])
				hi = i;
		}

		/*
		 * The best point has a parameter beyond e^+-16, well past the
		 * e^+-13.8 at which fit() declares the model unidentified: the
		 * likelihood keeps improving towards 0 or infinity, and following it
		 * further only costs time (minutes on a million distinct customers)
		 * before the same error.
		 */
		for (j = 0; j < k; j++)
			if (fabs(x[lo][j]) > 16)
				break;
		if (j < k)
			break;
		nh = lo;
		for (i = 0; i <= k; i++)
			if (i != hi && fx[i] > fx[nh])
				nh = i;
		if (fabs(fx[hi] - fx[lo]) <= 1e-12 * (fabs(fx[lo]) + 1e-12))
		{
			double		spread = 0;

			for (i = 0; i <= k; i++)
				for (j = 0; j < k; j++)
					spread = Max(spread, fabs(x[i][j] - x[lo][j]));
			if (spread < 1e-9)
				break;
		}
		for (j = 0; j < k; j++)
		{
			c[j] = 0;
			for (i = 0; i <= k; i++)
				if (i != hi)
					c[j] += x[i][j];
			c[j] /= k;
			xr[j] = c[j] + (c[j] - x[hi][j]);
		}
		fr = objective(f, s, xr, k);
		if (fr < fx[lo])
		{
			double		xe[4];
			double		fe;

			for (j = 0; j < k; j++)
				xe[j] = c[j] + 2 * (c[j] - x[hi][j]);
			fe = objective(f, s, xe, k);
			if (fe < fr)
			{
				memcpy(x[hi], xe, sizeof(double) * k);
				fx[hi] = fe;
			}
			else
			{
				memcpy(x[hi], xr, sizeof(double) * k);
				fx[hi] = fr;
			}
			continue;
		}
		if (fr < fx[nh])
		{
			memcpy(x[hi], xr, sizeof(double) * k);
			fx[hi] = fr;
			continue;
		}
		for (j = 0; j < k; j++)
			xc[j] = fr < fx[hi] ? c[j] + 0.5 * (xr[j] - c[j]) : c[j] + 0.5 * (x[hi][j] - c[j]);
		fc = objective(f, s, xc, k);
		if (fc < Min(fr, fx[hi]))
		{
			memcpy(x[hi], xc, sizeof(double) * k);
			fx[hi] = fc;
			continue;
		}
		/* shrink towards the best point */
		for (i = 0; i <= k; i++)
		{
			if (i == lo)
				continue;
			for (j = 0; j < k; j++)
				x[i][j] = x[lo][j] + 0.5 * (x[i][j] - x[lo][j]);
			fx[i] = objective(f, s, x[i], k);
		}
	}
	{
		int			lo = 0;

		for (i = 1; i <= k; i++)
			if (fx[i] < fx[lo])
				lo = i;
		memcpy(start, x[lo], sizeof(double) * k);
		return fx[lo];
	}
}

/*
 * Maximise; fail loudly when the optimum is not an interior, finite point.
 * With a gradient (grad not NULL), BFGS first; Nelder-Mead, restarted until
 * it no longer improves, only where BFGS did not reach a stationary point.
 */
static double
fit_with(LogLik f, LogLikGrad grad, BtydState *s, double *p, int k, const char *model, const char *const *names)
{
	double		logp[4];
	double		best = INFINITY;
	int			round,
				i;

	for (i = 0; i < k; i++)
		logp[i] = log(p[i]);
	/* at a minimum after BFGS: no Nelder-Mead */
	round = grad != NULL && bfgs(grad, s, logp, k, &best) ? 50 : 0;
	for (; round < 50; round++)
	{
		double		v = nelder_mead(f, s, logp, k, 5000);

		if (!(v < best - 1e-10 * (fabs(best) + 1)) && round > 0)
		{
			best = Min(best, v);
			break;
		}
		best = Min(best, v);
		/* running off (see nelder_mead): restarts would only run further */
		for (i = 0; i < k; i++)
			if (fabs(logp[i]) > 16)
				break;
		if (i < k)
			break;
	}
	if (!isfinite(best))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the %s model cannot be fitted to these data: the likelihood is not finite anywhere searched", model)));
	for (i = 0; i < k; i++)
	{
		p[i] = exp(logp[i]);

		/*
		 * a parameter run off towards 0 or infinity (beyond 1e-6 .. 1e6): the
		 * data do not pin it down, and its value is an accident of where the
		 * search stopped
		 */
		if (logp[i] > 13.8 || logp[i] < -13.8)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
					 errmsg("the data do not identify the %s model: %s runs off to %g", model, names[i], p[i]),
					 errhint("Fit on more customers, with repeat purchases, over a longer calibration period.")));
	}
	/* the log-likelihood, without the penalty */
	return f(s, p);
}

static double
fit(LogLik f, BtydState *s, double *p, int k, const char *model, const char *const *names)
{
	return fit_with(f, NULL, s, p, k, model, names);
}

static Datum
result_tuple(FunctionCallInfo fcinfo, const double *v, int nv)
{
	TupleDesc	desc;
	Datum		values[8];
	bool		nulls[8] = {0};
	int			i;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "loyalty: the model fit must return a composite type");
	desc = BlessTupleDesc(desc);
	for (i = 0; i < nv; i++)
		values[i] = Float8GetDatum(v[i]);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * The start of both final functions: false for no rows (the fit is NULL,
 * like any aggregate over nothing); too few customers to fit is LY030.
 */
static bool
final_state(BtydState *s, const char *model, const char *what)
{
	if (s == NULL || s->total == 0)
		return false;
	state_compact(s);
	if (s->total < 10)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the %s model needs at least 10 %s, got %g", model, what, s->total)));
	return true;
}

/* The final function of the purchase models (BG/NBD, MBG/NBD): the fit of f. */
static Datum
purchase_final(FunctionCallInfo fcinfo, LogLik f, const char *model)
{
	BtydState  *s = PG_ARGISNULL(0) ? NULL : (BtydState *) PG_GETARG_POINTER(0);
	static const char *const names[] = {"r", "alpha", "a", "b"};
	double		p[4];
	double		out[6];
	double		meanT = 0;
	int			i;

	if (!final_state(s, model, "customers"))
		PG_RETURN_NULL();
	if (s->repeaters == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the data do not identify the %s model: no customer made a repeat purchase", model)));
	if (s->repeaters == s->total)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the data do not identify the %s model: every customer made a repeat purchase", model),
				 errdetail("Dropout cannot be told from a low purchase rate without customers who did not come back.")));
	for (i = 0; i < s->nobs; i++)
		meanT += s->obs[i].n * s->obs[i].c;
	meanT /= s->total;
	/* start: r = 1, alpha = mean T, a = b = 1 */
	p[0] = 1;
	p[1] = Max(meanT, 1e-3);
	p[2] = 1;
	p[3] = 1;
	/* BG/NBD's gradient is written out: quasi-Newton first */
	out[4] = fit_with(f, f == bgnbd_ll ? bgnbd_ll_grad : NULL, s, p, 4, model, names);
	for (i = 0; i < 4; i++)
		out[i] = p[i];
	out[5] = s->total;
	PG_RETURN_DATUM(result_tuple(fcinfo, out, 6));
}

Datum
btyd_bgnbd_final(PG_FUNCTION_ARGS)
{
	return purchase_final(fcinfo, bgnbd_ll, "BG/NBD");
}

Datum
btyd_gg_final(PG_FUNCTION_ARGS)
{
	BtydState  *s = PG_ARGISNULL(0) ? NULL : (BtydState *) PG_GETARG_POINTER(0);
	static const char *const names[] = {"p", "q", "gamma"};
	double		p[3];
	double		out[5];
	double		mean = 0;
	int			i;

	if (!final_state(s, "Gamma-Gamma", "repeat customers"))
		PG_RETURN_NULL();
	for (i = 0; i < s->nobs; i++)
		mean += s->obs[i].n * s->obs[i].b;
	mean /= s->total;
	{
		double		var = 0;

		for (i = 0; i < s->nobs; i++)
			var += s->obs[i].n * (s->obs[i].b - mean) * (s->obs[i].b - mean);
		if (var <= 1e-12 * mean * mean)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
					 errmsg("the data do not identify the Gamma-Gamma model: every customer spends the same")));
	}
	p[0] = 1;
	p[1] = 1;
	p[2] = Max(mean, 1e-3);
	out[3] = fit(gg_ll, s, p, 3, "Gamma-Gamma", names);
	for (i = 0; i < 3; i++)
		out[i] = p[i];
	out[4] = s->total;
	PG_RETURN_DATUM(result_tuple(fcinfo, out, 5));
}

static void
check_params(FunctionCallInfo fcinfo, int from, int n)
{
	int			i;

	for (i = from; i < from + n; i++)
	{
		double		v = PG_GETARG_FLOAT8(i);

		if (!(v > 0) || isinf(v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model parameters must be positive and finite, got %g", v)));
	}
}

/* loyalty.bgnbd_loglik(r, alpha, a, b, x, t_x, T): one customer's log-likelihood */
Datum
btyd_bgnbd_loglik(PG_FUNCTION_ARGS)
{
	check_params(fcinfo, 0, 4);
	PG_RETURN_FLOAT8(bgnbd_ll1(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2),
							   PG_GETARG_FLOAT8(3), PG_GETARG_FLOAT8(4), PG_GETARG_FLOAT8(5),
							   PG_GETARG_FLOAT8(6)));
}

/*
 * The series of 2F1(a, b; c; z), 0 <= z < 1, summed until what is left
 * (about the last term / (1 - z), as the terms' ratio tends to z) is below
 * double precision; false when that takes more than max_terms.
 */
static bool
hyp2f1_series(double a, double b, double c, double z, int max_terms, double *out)
{
	double		term = 1,
				sum = 1;
	int			j;

	for (j = 0; j < max_terms; j++)
	{
		term *= (a + j) * (b + j) / ((c + j) * (j + 1)) * z;
		sum += term;
		if (fabs(term) <= 1e-16 * (1 - z) * fabs(sum))
		{
			*out = sum;
			return true;
		}
	}
	return false;
}

/* The same where it must converge (z <= 1/2: each term at most about half the last). */
static double
hyp2f1_sum(double a, double b, double c, double z)
{
	double		v;

	/* NaN: the callers say for whom it failed (or give NULL and why) */
	if (!hyp2f1_series(a, b, c, z, 100000, &v))
		return NAN;
	return v;
}

/* log |Gamma(x)| and its sign; *zero when 1/Gamma(x) = 0 (x = 0, -1, -2 ...). */
static double
log_gamma(double x, int *sign, bool *zero)
{
	*zero = x <= 0 && x == floor(x);
	*sign = x > 0 || ((long) floor(x)) % 2 == 0 ? 1 : -1;
	return *zero ? 0 : lgamma(x);
}

/*
 * Gamma(p1) Gamma(p2) / (Gamma(q1) Gamma(q2)), by logarithms (the arguments
 * grow with a customer's purchases, beyond where Gamma itself overflows).
 */
static double
gamma_ratio(double p1, double p2, double q1, double q2)
{
	int			s1,
				s2,
				s3,
				s4;
	bool		z1,
				z2,
				z3,
				z4;
	double		l = log_gamma(p1, &s1, &z1) + log_gamma(p2, &s2, &z2)
	- log_gamma(q1, &s3, &z3) - log_gamma(q2, &s4, &z4);

	if (z3 || z4)
		return 0;				/* a pole below: the term vanishes */
	if (z1 || z2)
		return NAN;				/* at a pole: as hyp2f1_sum */
	return s1 * s2 * s3 * s4 * exp(l);
}

/* 2F1 for 1/2 < z < 1 by its continuation around z = 1 (c - a - b not an integer). */
static double
hyp2f1_near_one(double a, double b, double c, double z)
{
	double		d = c - a - b;
	double		w = 1 - z;

	return gamma_ratio(c, d, c - a, c - b) * hyp2f1_sum(a, b, 1 - d, w) +
		pow(w, d) * gamma_ratio(c, -d, a, b) * hyp2f1_sum(c - a, c - b, 1 + d, w);
}

/* The continuation where c - a - b = k + e (integer k): on both sides of the pole, averaged. */
static double
hyp2f1_beside(double a, double b, double c, double z, double e, double h)
{
	return (hyp2f1_near_one(a, b, c - e + h, z) + hyp2f1_near_one(a, b, c - e - h, z)) / 2;
}

/*
 * Gauss hypergeometric 2F1(a, b; c; z) for 0 <= z < 1.  Its series converges
 * slowly as z nears 1 (a customer with no history and a long horizon: z =
 * t / (alpha + T + t) within 1e-4 of 1 needs 10^5 terms and more), so above
 * 1/2 it is computed from two series in 1 - z (Abramowitz and Stegun
 * 15.3.6).  Where c - a - b is an integer that form has poles that cancel:
 * there the series itself is used if it converges in 200,000 terms, else the
 * continuation is evaluated on both sides of the integer, at steps h and 2h,
 * and extrapolated to the pole (Richardson: an error of order h^4).
 */
static double
hyp2f1(double a, double b, double c, double z)
{
	double		d,
				k,
				v,
				h = 1e-4;

	if (z <= 0.5)
		return hyp2f1_sum(a, b, c, z);
	d = c - a - b;
	k = round(d);
	if (fabs(d - k) >= 2 * h)
		return hyp2f1_near_one(a, b, c, z);
	if (hyp2f1_series(a, b, c, z, 200000, &v))
		return v;
	return (4 * hyp2f1_beside(a, b, c, z, d - k, h) - hyp2f1_beside(a, b, c, z, d - k, 2 * h)) / 3;
}

/*
 * w^s 2F1(a, b; c; z), 0 <= z < 1, w = 1 - z given as computed without
 * cancellation by the caller, as alive_expected needs it.  Above
 * z = 1/2 with a large parameter (a customer with many purchases: a and b
 * grow with x) the two terms of the continuation around z = 1 are each much
 * larger than their difference, and cancel to a few digits or none (a
 * relative error of 1e-5 at max(a, b) (1 - z) near 17).  There Euler's
 * transformation, 2F1(a, b; c; z) = (1 - z)^(c - a - b) 2F1(c - a, c - b;
 * c; z), gives a series of small terms (c - a and c - b stay of the size of
 * the model's parameters) that falls at least as fast as z^j j^(c - a - b - 1):
 * in few terms, and with the power of 1 - z combined with s, no overflow.
 */
static double
hyp2f1_scaled(double a, double b, double c, double z, double w, double s)
{
	double		v;

	if (z > 0.5 && Max(fabs(a), fabs(b)) * w > 1 &&
		hyp2f1_series(c - a, c - b, c, z, 200000, &v))
		return pow(w, s + c - a - b) * v;
	return pow(w, s) * hyp2f1(a, b, c, z);
}

/*
 * The state, the fit and the hypergeometric series for the other models'
 * files (btyd.h): the same code, under names of their own in the library.
 */
BtydState *
btyd_state_new(MemoryContext cxt)
{
	return state_new(cxt);
}

void
btyd_state_add(BtydState *s, MemoryContext cxt, double a, double b, double c, double n)
{
	state_add(s, cxt, a, b, c, n);
}

bool
btyd_final_state(BtydState *s, const char *model, const char *what)
{
	return final_state(s, model, what);
}

double
btyd_fit(BtydLogLik f, BtydState *s, double *p, int k, const char *model, const char *const *names)
{
	return fit(f, s, p, k, model, names);
}

Datum
btyd_result_tuple(FunctionCallInfo fcinfo, const double *v, int nv)
{
	return result_tuple(fcinfo, v, nv);
}

bool
btyd_hyp2f1_series(double a, double b, double c, double z, int max_terms, double *out)
{
	return hyp2f1_series(a, b, c, z, max_terms, out);
}

static void
summary_args(FunctionCallInfo fcinfo, int from, double *x, double *tx, double *T)
{
	*x = PG_GETARG_FLOAT8(from);
	*tx = PG_GETARG_FLOAT8(from + 1);
	*T = PG_GETARG_FLOAT8(from + 2);
	if (!(*x >= 0) || !(*tx >= 0) || !(*T >= *tx) || isinf(*T))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inconsistent customer summary: x = %g, t_x = %g, T = %g", *x, *tx, *T)));
}

/* P(alive | x, t_x, T) */
static double
p_alive(double r, double alpha, double a, double b, double x, double tx, double T)
{
	if (x == 0)
		return 1;
	return 1 / (1 + (a / (b + x - 1)) * pow((alpha + T) / (alpha + tx), r + x));
}

/*
 * An alive customer's expected purchases in the next t, over lambda ~
 * Gamma(r, alpha) and p ~ Beta(a, b): E[(1 - e^(-lambda p t)) / p], in closed
 * form (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t))^r * 2F1(r, b;
 * a + b - 1; t / (alpha + t))).  The models' expectations are this with
 * their posterior parameters, times P(alive).  The integral is finite for
 * every a > 0 and the closed form is its analytic continuation below a = 1
 * (tools/btyd_reference.py checks both sides against quadrature).
 */
static double
alive_expected(double r, double alpha, double a, double b, double t)
{
	/* a = 1 is a removable singularity of the closed form: step beside it */
	if (fabs(a - 1) < 1e-9)
		a = 1 + 1e-9;
	return (a + b - 1) / (a - 1) *
		(1 - hyp2f1_scaled(r, b, a + b - 1, t / (alpha + t), alpha / (alpha + t), r));
}

/* BG/NBD: E[purchases in (T, T+t] | x, t_x, T] (eq. 10) */
static double
bgnbd_cond_expected(double r, double alpha, double a, double b, double x, double tx, double T, double t)
{
	return alive_expected(r + x, alpha + T, a, b + x, t) * p_alive(r, alpha, a, b, x, tx, T);
}

typedef double (*Expected) (double r, double alpha, double a, double b, double x, double tx, double T, double t);

/* A model's expected purchases (r, alpha, a, b, x, t_x, T, t) called from SQL: arguments checked. */
static double
sql_expected(FunctionCallInfo fcinfo, Expected f, const char *model)
{
	double		r,
				alpha,
				a,
				b,
				x,
				tx,
				T,
				t;
	double		v;

	check_params(fcinfo, 0, 4);
	r = PG_GETARG_FLOAT8(0);
	alpha = PG_GETARG_FLOAT8(1);
	a = PG_GETARG_FLOAT8(2);
	b = PG_GETARG_FLOAT8(3);
	summary_args(fcinfo, 4, &x, &tx, &T);
	t = PG_GETARG_FLOAT8(7);
	if (!(t >= 0) || isinf(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the horizon must be a finite time, not negative, got %g", t)));
	v = f(r, alpha, a, b, x, tx, T, t);
	if (isnan(v))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the %s expected purchases cannot be computed for x = %g, t_x = %g, T = %g, t = %g",
						model, x, tx, T, t),
				 errdetail("Its hypergeometric function did not converge, or met a pole, at r = %g, alpha = %g, a = %g, b = %g.",
						   r, alpha, a, b)));
	return v;
}

/* loyalty.bgnbd_expected(r, alpha, a, b, x, t_x, T, t): E[purchases in (T, T+t]] (eq. 10) */
Datum
btyd_bgnbd_expected(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(sql_expected(fcinfo, bgnbd_cond_expected, "BG/NBD"));
}

/* loyalty.bgnbd_p_alive(r, alpha, a, b, x, t_x, T) */
Datum
btyd_bgnbd_p_alive(PG_FUNCTION_ARGS)
{
	double		x,
				tx,
				T;

	check_params(fcinfo, 0, 4);
	summary_args(fcinfo, 4, &x, &tx, &T);
	PG_RETURN_FLOAT8(p_alive(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2),
							 PG_GETARG_FLOAT8(3), x, tx, T));
}

/* loyalty.gamma_gamma_expected(p, q, gamma, x, m_x): E[M | x, m_x] (eq. 5) */
Datum
btyd_gg_expected(PG_FUNCTION_ARGS)
{
	double		p,
				q,
				g,
				x,
				m;

	check_params(fcinfo, 0, 3);
	p = PG_GETARG_FLOAT8(0);
	q = PG_GETARG_FLOAT8(1);
	g = PG_GETARG_FLOAT8(2);
	x = PG_GETARG_FLOAT8(3);
	m = PG_GETARG_FLOAT8(4);
	if (q <= 1)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("expected spend needs q > 1, got q = %g", q)));
	if (!(x >= 0) || !(m >= 0) || isinf(m))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("x and m_x must be finite and not negative")));
	/* with no repeat purchase the population mean p*gamma/(q-1) */
	PG_RETURN_FLOAT8((g + m * x) * p / (p * x + q - 1));
}

/*
 * MBG/NBD (Batislam, Denizel & Filiztekin 2007; lifetimes'
 * ModifiedBetaGeoFitter): BG/NBD where a customer may also drop out at the
 * first purchase, so one who never came back is not certainly alive.  A
 * customer's likelihood is (1-p)^(x+1) lambda^x e^(-lambda T), alive at T,
 * plus p (1-p)^x lambda^x e^(-lambda t_x), gone after the last purchase; A4
 * is the logarithm of the second over the first, each integrated over lambda
 * ~ Gamma(r, alpha) and p ~ Beta(a, b).
 */
static double
mbgnbd_a4(double r, double alpha, double a, double b, double x, double tx, double T)
{
	return log(a) - log(b + x) + (r + x) * (log(alpha + T) - log(alpha + tx));
}

/* MBG/NBD log-likelihood of one customer */
static double
mbgnbd_ll1(double r, double alpha, double a, double b, double x, double tx, double T)
{
	double		A1 = lgamma(r + x) - lgamma(r) + r * log(alpha);
	double		A2 = lgamma(a + b) + lgamma(b + x + 1) - lgamma(b) - lgamma(a + b + x + 1);
	double		A3 = -(r + x) * log(alpha + T);
	double		A4 = mbgnbd_a4(r, alpha, a, b, x, tx, T);

	/* log(1 + e^A4), which for a large A4 is A4 + log(1 + e^-A4) */
	return A1 + A2 + A3 + (A4 > 0 ? A4 + log1p(exp(-A4)) : log1p(exp(A4)));
}

/* MBG/NBD log-likelihood of the state's customers */
static double
mbgnbd_ll(BtydState *s, const double *p)
{
	double		ll = 0;
	int			i;

	for (i = 0; i < s->nobs; i++)
		ll += s->obs[i].n * mbgnbd_ll1(p[0], p[1], p[2], p[3], s->obs[i].a, s->obs[i].b, s->obs[i].c);
	return ll;
}

/* MBG/NBD P(alive | x, t_x, T) = 1 / (1 + e^A4): below 1 also when x = 0 */
static double
mbgnbd_p_alive(double r, double alpha, double a, double b, double x, double tx, double T)
{
	return 1 / (1 + exp(mbgnbd_a4(r, alpha, a, b, x, tx, T)));
}

/* MBG/NBD: E[purchases in (T, T+t] | x, t_x, T] */
static double
mbgnbd_cond_expected(double r, double alpha, double a, double b, double x, double tx, double T, double t)
{
	/* alive at T: lambda ~ Gamma(r + x, alpha + T), p ~ Beta(a, b + x + 1) */
	return alive_expected(r + x, alpha + T, a, b + x + 1, t) * mbgnbd_p_alive(r, alpha, a, b, x, tx, T);
}

Datum
btyd_mbgnbd_final(PG_FUNCTION_ARGS)
{
	return purchase_final(fcinfo, mbgnbd_ll, "MBG/NBD");
}

/* loyalty.mbgnbd_loglik(r, alpha, a, b, x, t_x, T): one customer's log-likelihood */
Datum
btyd_mbgnbd_loglik(PG_FUNCTION_ARGS)
{
	double		x,
				tx,
				T;

	check_params(fcinfo, 0, 4);
	summary_args(fcinfo, 4, &x, &tx, &T);
	PG_RETURN_FLOAT8(mbgnbd_ll1(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2),
								PG_GETARG_FLOAT8(3), x, tx, T));
}

/* loyalty.mbgnbd_expected(r, alpha, a, b, x, t_x, T, t): E[purchases in (T, T+t]] */
Datum
btyd_mbgnbd_expected(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(sql_expected(fcinfo, mbgnbd_cond_expected, "MBG/NBD"));
}

/* loyalty.mbgnbd_p_alive(r, alpha, a, b, x, t_x, T) */
Datum
btyd_mbgnbd_p_alive(PG_FUNCTION_ARGS)
{
	double		x,
				tx,
				T;

	check_params(fcinfo, 0, 4);
	summary_args(fcinfo, 4, &x, &tx, &T);
	PG_RETURN_FLOAT8(mbgnbd_p_alive(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1), PG_GETARG_FLOAT8(2),
									PG_GETARG_FLOAT8(3), x, tx, T));
}

/*
 * The purchase models a program can predict with, by their name in SQL (and
 * in loyalty.models), with the argument of predict_purchases that carries
 * their parameters.
 */
typedef struct PurchaseModel
{
	const char *name;
	const char *title;			/* in messages */
	int			argno;
	double		(*p_alive) (double r, double alpha, double a, double b, double x, double tx, double T);
	Expected	expected;
} PurchaseModel;

static const PurchaseModel purchase_models[] = {
	{"bgnbd", "BG/NBD", 1, p_alive, bgnbd_cond_expected},
	{"mbgnbd", "MBG/NBD", 2, mbgnbd_p_alive, mbgnbd_cond_expected},
};

/*
 * loyalty.predict_purchases(model, bgnbd, mbgnbd, x, t_x, T, horizons): the
 * one place where predictions pick their model's formulas.  The views pass
 * the models' purchase_model (the program's choice, resolved when they were
 * fitted or the choice set) and both fits; the result is the model,
 * P(alive), the expected purchases in (T, T + h] for each horizon h, and why
 * they are NULL.  For a member the formulas fail for (or a model not fitted)
 * the values are NULL and the reason is given, not raised, so that a view
 * over every member still answers.  (0, 0, 0) is a customer at the first
 * purchase: the expectations are then the model's E[X(t)].
 */
Datum
btyd_predict(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {true, true, true, true};
	const PurchaseModel *m = NULL;
	char	   *name;
	char	   *failure = NULL;
	double		prm[4];
	double		x = 0,
				tx = 0,
				T = 0;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "loyalty: predict_purchases must return a composite type");
	desc = BlessTupleDesc(desc);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the purchase model to predict with must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (i = 0; i < (int) lengthof(purchase_models); i++)
		if (strcmp(purchase_models[i].name, name) == 0)
			m = &purchase_models[i];
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown purchase model \"%s\"", name),
				 errhint("The purchase models are bgnbd (BG/NBD) and mbgnbd (MBG/NBD).")));
	values[0] = CStringGetTextDatum(m->name);
	nulls[0] = false;

	if (PG_ARGISNULL(m->argno))
		failure = psprintf("the %s model was not fitted (models.%s_failure says why)", m->title, m->name);
	else
	{
		HeapTupleHeader params = PG_GETARG_HEAPTUPLEHEADER(m->argno);
		static const char *const names[] = {"r", "alpha", "a", "b"};

		for (i = 0; i < 4 && failure == NULL; i++)
		{
			bool		isnull;

			prm[i] = DatumGetFloat8(GetAttributeByName(params, names[i], &isnull));
			if (isnull || !(prm[i] > 0) || isinf(prm[i]))
				failure = psprintf("the %s model's parameters are not all positive and finite", m->title);
		}
	}
	if (failure == NULL && (PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5)))
		failure = pstrdup("no customer summary (x, t_x, T)");
	if (failure == NULL)
	{
		x = PG_GETARG_FLOAT8(3);
		tx = PG_GETARG_FLOAT8(4);
		T = PG_GETARG_FLOAT8(5);
		if (!(x >= 0) || !(tx >= 0) || !(T >= tx) || isinf(T))
			failure = psprintf("inconsistent customer summary: x = %g, t_x = %g, T = %g", x, tx, T);
	}
	if (failure == NULL)
	{
		double		pa = m->p_alive(prm[0], prm[1], prm[2], prm[3], x, tx, T);

		if (isfinite(pa))
		{
			values[1] = Float8GetDatum(pa);
			nulls[1] = false;
		}
		else
			failure = psprintf("the %s P(alive) is not finite for x = %g, t_x = %g, T = %g", m->title, x, tx, T);
	}
	if (failure == NULL && !PG_ARGISNULL(6))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(6);
		Datum	   *hs;
		bool	   *hnulls;
		int			n;

		deconstruct_array(arr, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &hs, &hnulls, &n);
		for (i = 0; i < n && failure == NULL; i++)
		{
			double		h = hnulls[i] ? NAN : DatumGetFloat8(hs[i]);
			double		e;

			if (!(h >= 0) || isinf(h))
			{
				failure = psprintf("a horizon is not a finite time, not negative: %g", h);
				break;
			}
			e = m->expected(prm[0], prm[1], prm[2], prm[3], x, tx, T, h);
			if (!isfinite(e))
				failure = psprintf("the %s expected purchases cannot be computed for x = %g, t_x = %g, T = %g, t = %g",
								   m->title, x, tx, T, h);
			hs[i] = Float8GetDatum(e);
		}
		if (failure == NULL)
		{
			values[2] = PointerGetDatum(construct_array(hs, n, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
														TYPALIGN_DOUBLE));
			nulls[2] = false;
		}
	}
	if (failure != NULL)
	{
		values[3] = CStringGetTextDatum(failure);
		nulls[3] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
