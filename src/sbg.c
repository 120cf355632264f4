/*
 * sbg.c
 *		The shifted-beta-geometric (sBG) model of paid memberships (Fader &
 *		Hardie 2007, "How to project customer retention"; 2010,
 *		"Customer-base valuation in a contractual setting: the perils of
 *		ignoring heterogeneity").
 *
 * At the end of each paid period a subscriber renews or leaves; each leaves
 * with a probability theta of their own, constant over time, and theta is
 * Beta(alpha, beta) across subscribers.  T, the number of periods paid
 * before leaving, then has
 *		P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta),   t >= 1
 *		S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)
 * A subscription that paid n periods and left contributes ln P(T = n) to the
 * log-likelihood; one still paying (or seen no longer: a change of plan)
 * after n periods has renewed n - 1 times and contributes ln S(n - 1).
 *
 * loyalty.sbg_fit(periods, still_active [, subscriptions]) collects the
 * subscriptions in btyd.c's state (a = periods, b = 1 if still active) and
 * maximises with btyd.c's fit; data that cannot identify the model fail with
 * SQLSTATE LY030.  A subscription that has paid n periods renews next with
 * probability (beta + n - 1) / (alpha + beta + n - 1), pays (beta + n - 1) /
 * (alpha - 1) more periods on average (infinite for alpha <= 1), and its
 * discounted expected residual lifetime at the next renewal is
 *		DERL(d | n) = sum_{k >= 0} S(n + k) / S(n - 1) / (1 + d)^k
 *					= (beta + n - 1) / (alpha + beta + n - 1)
 *					  * 2F1(1, beta + n; alpha + beta + n; 1 / (1 + d))
 * (Fader & Hardie 2010, whose customer with n - 1 renewals has paid our n
 * periods).
 */
#include "postgres.h"

#include <math.h>

#include "btyd.h"
#include "loyalty.h"
#include "utils/hsearch.h"

PG_FUNCTION_INFO_V1(sbg_trans);
PG_FUNCTION_INFO_V1(sbg_trans_weighted);
PG_FUNCTION_INFO_V1(sbg_final);
PG_FUNCTION_INFO_V1(sbg_loglik);
PG_FUNCTION_INFO_V1(sbg_survival);
PG_FUNCTION_INFO_V1(sbg_renewal_probability);
PG_FUNCTION_INFO_V1(sbg_expected_remaining);
PG_FUNCTION_INFO_V1(sbg_derl);

/*
 * Terms of 2F1's series DERL may sum: the terms fall at least as fast as
 * 1 / (1 + d)^k, so this covers any discount from about 5e-7 per period, in
 * under half a second for the longest.
 */
#define SBG_SERIES_TERMS 100000000

/*
 * DERL by its arguments, per call site (fn_extra): a view asks for the same
 * plan and periods paid once per membership, and the series of a monthly
 * plan takes thousands of terms (about 70 us).  Emptied when it holds
 * SBG_MEMO_MAX values, so arguments that never repeat cost little memory.
 */
#define SBG_MEMO_MAX 10000

typedef struct SbgMemo
{
	double		key[4];			/* alpha, beta, periods, discount */
	double		derl;
} SbgMemo;

static HTAB *
sbg_memo_create(MemoryContext cxt)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(double) * 4;
	ctl.entrysize = sizeof(SbgMemo);
	ctl.hcxt = cxt;
	return hash_create("loyalty sbg_derl values", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* ln B(a, b) */
static double
sbg_lbeta(double a, double b)
{
	return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/* One subscription's log-likelihood: n periods paid, then left or not yet. */
static double
sbg_ll1(double alpha, double beta, double n, bool still_active)
{
	if (still_active)
		return sbg_lbeta(alpha, beta + n - 1) - sbg_lbeta(alpha, beta);
	return sbg_lbeta(alpha + 1, beta + n - 1) - sbg_lbeta(alpha, beta);
}

/* The log-likelihood of the whole state at p = (alpha, beta). */
static double
sbg_ll(BtydState *s, const double *p)
{
	double		ll = 0;
	int			i;

	for (i = 0; i < s->nobs; i++)
		ll += s->obs[i].n * sbg_ll1(p[0], p[1], s->obs[i].a, s->obs[i].b != 0);
	return ll;
}

/* periods paid: a whole number from 1 */
static int32
sbg_periods_arg(FunctionCallInfo fcinfo, int i)
{
	int32		n = PG_GETARG_INT32(i);

	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("periods must be at least 1 (the first period paid), got %d", n)));
	return n;
}

/* Both transition functions: one subscription, or a number of alike ones. */
static Datum
sbg_add(FunctionCallInfo fcinfo, bool weighted)
{
	MemoryContext cxt;
	BtydState  *s;
	int32		n;
	double		w = 1;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "sbg_trans called in non-aggregate context");
	s = PG_ARGISNULL(0) ? btyd_state_new(cxt) : (BtydState *) PG_GETARG_POINTER(0);
	/* like other aggregates, rows with NULLs are skipped */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || (weighted && PG_ARGISNULL(3)))
		PG_RETURN_POINTER(s);
	n = sbg_periods_arg(fcinfo, 1);
	if (weighted)
	{
		w = PG_GETARG_FLOAT8(3);
		if (isnan(w) || isinf(w) || w < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("subscriptions (the row's weight) must be a finite number, not negative, got %g", w)));
		if (w == 0)
			PG_RETURN_POINTER(s);
	}
	btyd_state_add(s, cxt, n, PG_GETARG_BOOL(2) ? 1 : 0, 0, w);
	PG_RETURN_POINTER(s);
}

/* loyalty.sbg_fit(periods, still_active) */
Datum
sbg_trans(PG_FUNCTION_ARGS)
{
	return sbg_add(fcinfo, false);
}

/* loyalty.sbg_fit(periods, still_active, subscriptions) */
Datum
sbg_trans_weighted(PG_FUNCTION_ARGS)
{
	return sbg_add(fcinfo, true);
}

/*
 * btyd.c's fit, whose LY030 for a parameter running off gets a detail and
 * hint about subscriptions instead of purchases.
 */
static double
sbg_maximise(BtydState *s, double *p)
{
	static const char *const names[] = {"alpha", "beta"};
	MemoryContext cxt = CurrentMemoryContext;
	volatile double ll = 0;

	PG_TRY();
	{
		ll = btyd_fit(sbg_ll, s, p, 2, "sBG", names);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		if (e->sqlerrcode != ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED)
			PG_RE_THROW();
		FlushErrorState();
		e->detail = pstrdup("The likelihood keeps growing towards an edge: alpha and beta both large is one renewal rate for every subscriber (churn does not fall with tenure), both small splits the subscribers into those who leave at once and those who never leave.");
		e->hint = pstrdup("Fit again when more subscriptions have been through more renewals.");
		ReThrowError(e);
	}
	PG_END_TRY();
	return ll;
}

/*
 * The fit: NULL over no rows, LY030 when the data cannot identify alpha and
 * beta apart, else (alpha, beta, loglik, subscriptions).
 */
Datum
sbg_final(PG_FUNCTION_ARGS)
{
	BtydState  *s = PG_ARGISNULL(0) ? NULL : (BtydState *) PG_GETARG_POINTER(0);
	double		churned = 0,
				renewed = 0,
				left_after_renewing = 0,
				stayed = 0,
				h,
				ll_one_rate;
	double		p[2];
	double		out[4];
	int			i;

	if (!btyd_final_state(s, "sBG", "subscriptions"))
		PG_RETURN_NULL();
	for (i = 0; i < s->nobs; i++)
	{
		const Obs  *o = &s->obs[i];

		if (o->b == 0)
			churned += o->n;
		/* renewals: one fewer than the periods paid */
		stayed += o->n * (o->a - 1);
		if (o->a >= 2)
		{
			renewed += o->n;
			if (o->b == 0)
				left_after_renewing += o->n;
		}
	}

	/*
	 * Each case drives the likelihood to an edge: no churn (theta 0 for all),
	 * no renewal (theta 1 for all), churn only at the first renewal (those
	 * who stay never leave).
	 */
	if (churned == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the data do not identify the sBG model: no subscription ended"),
				 errdetail("Without a subscriber who left, nothing shows how many will."),
				 errhint("Fit again when subscriptions have lapsed or been cancelled.")));
	if (renewed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the data do not identify the sBG model: no subscription was renewed"),
				 errdetail("Every subscription that ended did so after its first period, and none of the others has been renewed yet."),
				 errhint("Fit again when subscriptions have been through renewals.")));
	if (left_after_renewing == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the data do not identify the sBG model: no subscription ended after a renewal"),
				 errdetail("With churn only at the first renewal, the subscribers who renew look as if they never leave: how the churn rate falls with tenure is not known."),
				 errhint("Fit again when renewed subscriptions have lapsed or been cancelled.")));
	/* start at alpha = beta = 1: theta uniform */
	p[0] = 1;
	p[1] = 1;
	out[2] = sbg_maximise(s, p);

	/*
	 * The edge the checks above cannot see: churn that does not fall with
	 * tenure.  One churn rate h for all (the limit of alpha and beta large at
	 * a fixed ratio) then fits as well as any mix, and the search stops
	 * somewhere along that ridge, at numbers that mean nothing.  Its
	 * log-likelihood at its own maximum, h = churns / renewal decisions:
	 */
	h = churned / (churned + stayed);
	ll_one_rate = churned * log(h) + stayed * log1p(-h);
	if (out[2] <= ll_one_rate + 1e-9 * (1 + fabs(ll_one_rate)))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_MODEL_NOT_IDENTIFIED),
				 errmsg("the data do not identify the sBG model: churn does not fall with tenure"),
				 errdetail("One churn rate for every subscriber (%.4g a period) fits the data as well as any mix of rates: alpha and beta grow without bound together.", h),
				 errhint("Fit again when more subscriptions have been through more renewals.")));
	out[0] = p[0];
	out[1] = p[1];
	out[3] = s->total;
	PG_RETURN_DATUM(btyd_result_tuple(fcinfo, out, 4));
}

/* alpha and beta of a model: positive and finite */
static void
sbg_params_args(FunctionCallInfo fcinfo, double *alpha, double *beta)
{
	*alpha = PG_GETARG_FLOAT8(0);
	*beta = PG_GETARG_FLOAT8(1);
	if (!(*alpha > 0) || isinf(*alpha) || !(*beta > 0) || isinf(*beta))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sBG parameters must be positive and finite, got alpha = %g, beta = %g", *alpha, *beta)));
}

/* loyalty.sbg_loglik(alpha, beta, periods, still_active): one subscription's */
Datum
sbg_loglik(PG_FUNCTION_ARGS)
{
	double		alpha,
				beta;
	int32		n;

	sbg_params_args(fcinfo, &alpha, &beta);
	n = sbg_periods_arg(fcinfo, 2);
	PG_RETURN_FLOAT8(sbg_ll1(alpha, beta, n, PG_GETARG_BOOL(3)));
}

/* loyalty.sbg_survival(alpha, beta, t): S(t), the share still paying after t renewals */
Datum
sbg_survival(PG_FUNCTION_ARGS)
{
	double		alpha,
				beta;
	int32		t = PG_GETARG_INT32(2);

	sbg_params_args(fcinfo, &alpha, &beta);
	if (t < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("t (renewals) must not be negative, got %d", t)));
	PG_RETURN_FLOAT8(exp(sbg_lbeta(alpha, beta + t) - sbg_lbeta(alpha, beta)));
}

/* loyalty.sbg_renewal_probability(alpha, beta, periods): of the next renewal */
Datum
sbg_renewal_probability(PG_FUNCTION_ARGS)
{
	double		alpha,
				beta;
	int32		n;

	sbg_params_args(fcinfo, &alpha, &beta);
	n = sbg_periods_arg(fcinfo, 2);
	PG_RETURN_FLOAT8((beta + n - 1) / (alpha + beta + n - 1));
}

/*
 * loyalty.sbg_expected_remaining(alpha, beta, periods): E[T - n | T > n - 1],
 * the periods still to be paid after the n paid; NULL where that mean is
 * infinite (alpha <= 1: the sum of S(t) diverges).
 */
Datum
sbg_expected_remaining(PG_FUNCTION_ARGS)
{
	double		alpha,
				beta;
	int32		n;

	sbg_params_args(fcinfo, &alpha, &beta);
	n = sbg_periods_arg(fcinfo, 2);
	if (alpha <= 1)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8((beta + n - 1) / (alpha - 1));
}

/*
 * loyalty.sbg_derl(alpha, beta, periods, discount): the discounted expected
 * residual lifetime at the next renewal, in periods (see the top).  The
 * series of 2F1(1, b; b + alpha; z) has positive terms, each at most z times
 * the last: summed directly it loses nothing.  btyd.c's hyp2f1 is not used:
 * its continuation around z = 1 cancels terms of order (1 + d)^b for a long
 * tenure or a large beta, and loses digits near alpha = 1 or 2.
 */
Datum
sbg_derl(PG_FUNCTION_ARGS)
{
	double		alpha,
				beta,
				d,
				v;
	double		key[4];
	int32		n;
	HTAB	   *memo;
	SbgMemo    *entry;

	sbg_params_args(fcinfo, &alpha, &beta);
	n = sbg_periods_arg(fcinfo, 2);
	d = PG_GETARG_FLOAT8(3);
	if (isnan(d) || isinf(d) || d < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the discount rate per period must be a finite number, not negative, got %g", d)));
	if (d == 0)
	{
		/* undiscounted: the expected remaining periods */
		if (alpha <= 1)
			PG_RETURN_NULL();
		PG_RETURN_FLOAT8((beta + n - 1) / (alpha - 1));
	}
	key[0] = alpha;
	key[1] = beta;
	key[2] = n;
	key[3] = d;
	memo = (HTAB *) fcinfo->flinfo->fn_extra;
	if (memo == NULL)
		fcinfo->flinfo->fn_extra = memo = sbg_memo_create(fcinfo->flinfo->fn_mcxt);
	entry = (SbgMemo *) hash_search(memo, key, HASH_FIND, NULL);
	if (entry != NULL)
		PG_RETURN_FLOAT8(entry->derl);
	if (!btyd_hyp2f1_series(1, beta + n, alpha + beta + n, 1 / (1 + d), SBG_SERIES_TERMS, &v))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the discount rate per period is too small to sum the residual lifetime: %g", d),
				 errhint("Use a rate of at least 1e-6 per period, or 0 for the undiscounted expected remaining periods.")));
	v *= (beta + n - 1) / (alpha + beta + n - 1);
	if (hash_get_num_entries(memo) >= SBG_MEMO_MAX)
	{
		hash_destroy(memo);
		fcinfo->flinfo->fn_extra = memo = sbg_memo_create(fcinfo->flinfo->fn_mcxt);
	}
	entry = (SbgMemo *) hash_search(memo, key, HASH_ENTER, NULL);
	entry->derl = v;
	PG_RETURN_FLOAT8(v);
}
