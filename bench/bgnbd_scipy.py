"""bench/bgnbd_scipy.py: the reference of bench/fit.sh.

Fits BG/NBD with scipy.optimize.minimize(method='L-BFGS-B') as the Python
package lifetimes (BetaGeoFitter) sets the problem up: its negative
log-likelihood over the customers, divided by their number, on the logarithms
of (r, alpha, a, b), times scaled so that the largest T is 1, starting from
log-parameters 0.1 with tol=1e-7 and the exact gradient (lifetimes takes it
from autograd; here it is written out).  Run with Debian's python3 (numpy and
scipy from python3-scipy):

    /usr/bin/python3 bench/bgnbd_scipy.py ALL.csv DISTINCT.csv RUNS R ALPHA A B LL

ALL.csv: x,t_x,T per customer; DISTINCT.csv: x,t_x,T,customers.  R .. LL are
the fit of loyalty.bgnbd_fit on the same rows, compared with scipy's.  Prints
what it measured for people, and '@name value' lines for fit.sh.
"""
import sys
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln


def parts(params, x, tx, T):
    """Each customer's log-likelihood and the pieces its gradient needs."""
    r, alpha, a, b = params
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    A2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    A3 = -(r + x) * np.log(alpha + T)
    A4 = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(tx + alpha)
    m = np.where(x > 0, np.maximum(A3, A4), A3)
    e3 = np.exp(A3 - m)
    e4 = np.where(x > 0, np.exp(A4 - m), 0.0)
    s = e3 + e4
    return A1 + A2 + m + np.log(s), e3 / s, e4 / s


def loglik(params, x, tx, T, w):
    """The total log-likelihood (weighted), in the data's own time unit."""
    return float(np.dot(w, parts(params, x, tx, T)[0]))


def nll(logp, x, tx, T, w, wsum):
    """lifetimes' objective and its gradient in the log-parameters."""
    params = np.exp(logp)
    r, alpha, a, b = params
    ll, w3, w4 = parts(params, x, tx, T)
    la, lt = np.log(alpha + T), np.log(alpha + tx)
    g = np.empty(4)
    g[0] = np.dot(w, digamma(r + x) - digamma(r) + np.log(alpha) - w3 * la - w4 * lt)
    g[1] = np.dot(w, r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + tx)))
    dab = digamma(a + b) - digamma(a + b + x)
    g[2] = np.dot(w, dab + w4 / a)
    g[3] = np.dot(w, dab + digamma(b + x) - digamma(b) - w4 / (b + np.maximum(x, 1) - 1))
    return -np.dot(w, ll) / wsum, -g * params / wsum


def fit(x, tx, T, w, gradient=True):
    scale = 1.0 / T.max()
    args = (x, tx * scale, T * scale, w, w.sum())
    if gradient:
        res = minimize(nll, 0.1 * np.ones(4), args=args, jac=True, method="L-BFGS-B", tol=1e-7)
    else:
        res = minimize(lambda p, *a: nll(p, *a)[0], 0.1 * np.ones(4), args=args, method="L-BFGS-B", tol=1e-7)
    params = np.exp(res.x)
    params[1] /= scale
    return params, res


def best_of(runs, f):
    best, out = None, None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = f()
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best, out


def main():
    all_csv, distinct_csv, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ours = np.array([float(v) for v in sys.argv[4:9]])
    a = np.loadtxt(all_csv, delimiter=",", ndmin=2)
    x, tx, T = a[:, 0], a[:, 1], a[:, 2]
    ones = np.ones_like(x)
    d = np.loadtxt(distinct_csv, delimiter=",", ndmin=2)
    dx, dtx, dT, dw = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
    if dw.sum() != len(x):
        sys.exit("bgnbd_scipy.py: the distinct rows count %d customers, the rows are %d" % (dw.sum(), len(x)))

    # the gradient written out must be the objective's
    probe = np.array([0.3, -0.2, 0.5, 0.1])
    g = nll(probe, dx, dtx / dT.max(), dT / dT.max(), dw, dw.sum())[1]
    num = np.array([(nll(probe + h, dx, dtx / dT.max(), dT / dT.max(), dw, dw.sum())[0]
                     - nll(probe - h, dx, dtx / dT.max(), dT / dT.max(), dw, dw.sum())[0]) / 2e-6
                    for h in np.eye(4) * 1e-6])
    if np.max(np.abs(g - num)) > 1e-5 * (1 + np.max(np.abs(num))):
        sys.exit("bgnbd_scipy.py: analytic gradient %s differs from central differences %s" % (g, num))

    t_all, (p_all, r_all) = best_of(runs, lambda: fit(x, tx, T, ones))
    t_dis, (p_dis, r_dis) = best_of(runs, lambda: fit(dx, dtx, dT, dw))
    t_fd, (p_fd, r_fd) = best_of(runs, lambda: fit(dx, dtx, dT, dw, gradient=False))
    t_merge, _ = best_of(runs, lambda: np.unique(a, axis=0, return_counts=True))

    def show(name, p, ll, res=None):
        extra = "" if res is None else "  (%s: %d iterations, %d evaluations)" % (
            "converged" if res.success else "NOT CONVERGED: " + str(res.message), res.nit, res.nfev)
        print("    %-34s r = %.6f, alpha = %.6f, a = %.6f, b = %.6f, LL = %.4f%s" % ((name,) + tuple(p) + (ll, extra)))

    ll_all = loglik(p_all, x, tx, T, ones)
    ll_dis = loglik(p_dis, dx, dtx, dT, dw)
    ll_fd = loglik(p_fd, dx, dtx, dT, dw)
    print("  scipy L-BFGS-B, all %d rows                %.3fs" % (len(x), t_all))
    print("  scipy L-BFGS-B, %d distinct weighted rows  %.3fs" % (len(dx), t_dis))
    print("  the same without the gradient (finite differences)  %.3fs" % t_fd)
    print("  (merging the rows into distinct ones with numpy: %.3fs, not counted)" % t_merge)
    print("  fitted:")
    show("loyalty.bgnbd_fit", ours[:4], ours[4])
    show("scipy, all rows", p_all, ll_all, r_all)
    show("scipy, distinct weighted rows", p_dis, ll_dis, r_dis)
    show("scipy, distinct, no gradient", p_fd, ll_fd, r_fd)
    # the same likelihood: numpy's at loyalty's parameters is loyalty's
    ll_check = loglik(ours[:4], x, tx, T, ones)
    print("  numpy's log-likelihood at loyalty's parameters: %.4f (relative difference %.1e)"
          % (ll_check, abs(ll_check - ours[4]) / abs(ours[4])))
    refs = [(p_all, ll_all), (p_dis, ll_dis)]
    dp = max(float(np.max(np.abs(p - ours[:4]) / np.abs(ours[:4]))) for p, _ in refs)
    dl = max(abs(ll - ours[4]) / abs(ours[4]) for _, ll in refs)
    print("  max relative difference loyalty/scipy: parameters %.1e, log-likelihood %.1e" % (dp, dl))
    print("  best log-likelihood: %s" % ("loyalty" if ours[4] >= max(ll_all, ll_dis) else
                                         "scipy (by %.2e)" % (max(ll_all, ll_dis) - ours[4])))
    print("@scipy_all %.6f" % t_all)
    print("@scipy_distinct %.6f" % t_dis)
    print("@scipy_distinct_nograd %.6f" % t_fd)
    print("@rel_params %.3e" % dp)
    print("@rel_ll %.3e" % dl)
    print("@ll_formula %.3e" % (abs(ll_check - ours[4]) / abs(ours[4])))
    print("@converged %d" % (r_all.success and r_dis.success))


main()
