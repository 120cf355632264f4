#!/usr/bin/env python3
"""Reference values for the purchase models of src/btyd.c, from first principles.

Nothing here uses the closed forms that btyd.c evaluates.  Each quantity is an
integral over a customer's purchase rate lambda ~ Gamma(r, alpha) and dropout
probability p ~ Beta(a, b), computed by numerical quadrature (mpmath 1.3,
tanh-sinh, 20 digits), of what one customer with known (lambda, p) does:

  BG/NBD   the customer is alive after the first purchase; after each repeat
           purchase drops out with probability p
  MBG/NBD  the same, and may also drop out at the first purchase (time 0)

  likelihood of (x, t_x, T):
    BG    (1-p)^x lambda^x e^(-lambda T) + [x > 0] p (1-p)^(x-1) lambda^x e^(-lambda t_x)
    MBG   (1-p)^(x+1) lambda^x e^(-lambda T) + p (1-p)^x lambda^x e^(-lambda t_x)
  the first term is the customer alive at T, so
    P(alive) = E[first term] / E[likelihood]
  an alive customer's purchases in the next t (Poisson, dropout p after each)
    E[Y(t) | lambda, p] = sum_k P(N(t) >= k) (1-p)^(k-1) = (1 - e^(-lambda p t)) / p
  so the conditional expectation is E[first term * that] / E[likelihood];
  and from the first purchase (unconditional, the tracking plot's E[X(t)])
    BG    (1 - e^(-lambda p t)) / p        MBG   (1-p) (1 - e^(-lambda p t)) / p

Prints the rows of test/pgtap/prediction_models.sql's reference table.
Run: python3 tools/btyd_reference.py   (a few minutes)
"""
import sys

import mpmath as mp

mp.mp.dps = 20


def expect(fun, r, alpha, a, b, lam_centre):
    """E[fun(lambda, p)] over lambda ~ Gamma(r, alpha) (rate alpha), p ~ Beta(a, b)."""
    lgam = r * mp.log(alpha) - mp.loggamma(r)
    lbet = -(mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b))
    c = mp.mpf(lam_centre)

    def inner(p):
        wp = mp.exp(lbet + (a - 1) * mp.log(p) + (b - 1) * mp.log1p(-p))
        f = lambda lam: fun(lam, p) * mp.exp(lgam + (r - 1) * mp.log(lam) - alpha * lam)
        return wp * mp.quad(f, [0, c / 4, c, 4 * c, mp.inf])

    return mp.quad(inner, [0, mp.mpf(1) / 2, 1])


def terms(model, x, tx, T):
    """The customer's likelihood split into alive at T and dropped out."""
    def alive(lam, p):
        k = x + 1 if model == 'mbgnbd' else x
        return (1 - p) ** k * lam ** x * mp.exp(-lam * T)

    def dead(lam, p):
        if model == 'bgnbd' and x == 0:
            return mp.mpf(0)
        k = x if model == 'mbgnbd' else x - 1
        return p * (1 - p) ** k * lam ** x * mp.exp(-lam * tx)

    return alive, dead


def centre(r, alpha, x, T):
    return (r + x) / (alpha + T)


def loglik(model, r, alpha, a, b, x, tx, T):
    alive, dead = terms(model, x, tx, T)
    return mp.log(expect(lambda l, p: alive(l, p) + dead(l, p), r, alpha, a, b, centre(r, alpha, x, T)))


def p_alive(model, r, alpha, a, b, x, tx, T):
    alive, dead = terms(model, x, tx, T)
    c = centre(r, alpha, x, T)
    num = expect(alive, r, alpha, a, b, c)
    return num / (num + expect(dead, r, alpha, a, b, c))


def conditional(model, r, alpha, a, b, x, tx, T, t):
    alive, dead = terms(model, x, tx, T)
    c = centre(r, alpha, x, T)
    num = expect(lambda l, p: alive(l, p) * -mp.expm1(-l * p * t) / p, r, alpha, a, b, c)
    return num / expect(lambda l, p: alive(l, p) + dead(l, p), r, alpha, a, b, c)


def unconditional(model, r, alpha, a, b, t):
    keep = (lambda p: 1 - p) if model == 'mbgnbd' else (lambda p: 1)
    return expect(lambda l, p: keep(p) * -mp.expm1(-l * p * t) / p, r, alpha, a, b, r / alpha)


PARAMS = {
    'cdnow': (0.525, 6.183, 0.891, 1.614),    # about MBG/NBD on CDNOW weeks: a < 1
    'a>1': (1.2, 0.5, 3.5, 1.1),
    'a<1': (0.3, 2.0, 0.5, 4.0),
}
CUSTOMERS = [    # params, x, t_x, T, t
    ('cdnow', 0, 0, 38.86, 39),
    ('cdnow', 0, 0, 77, 52),
    ('cdnow', 2, 30.43, 38.86, 39),
    ('cdnow', 7, 35, 38, 520),
    ('a>1', 0, 0, 10, 52),
    ('a>1', 3, 5, 10, 52),
    ('a<1', 0, 0, 20, 100),
    ('a<1', 12, 40, 50, 26),
]


def row(what, model, p, x, tx, T, t, value):
    r, alpha, a, b = PARAMS[p]
    return "    ('%s', '%s', %s, %s, %s, %s, %s, %s, %s, %s, %s)," % (
        what, model, r, alpha, a, b, x, tx, T, 'NULL' if t is None else t, mp.nstr(value, 17))


def main():
    out = []
    for p, x, tx, T, t in CUSTOMERS:
        r, alpha, a, b = PARAMS[p]
        for model in ('mbgnbd',):
            out.append(row('loglik', model, p, x, tx, T, None, loglik(model, r, alpha, a, b, x, tx, T)))
            out.append(row('p_alive', model, p, x, tx, T, None, p_alive(model, r, alpha, a, b, x, tx, T)))
            out.append(row('expected', model, p, x, tx, T, t, conditional(model, r, alpha, a, b, x, tx, T, t)))
        print('.', end='', file=sys.stderr, flush=True)
    # a one-time buyer grows older without buying again
    for T in (10, 30, 66, 78):
        r, alpha, a, b = PARAMS['cdnow']
        out.append(row('p_alive', 'mbgnbd', 'cdnow', 0, 0, T, None, p_alive('mbgnbd', r, alpha, a, b, 0, 0, T)))
    # from the first purchase: what model_tracking adds up
    for p, t in (('cdnow', 1), ('cdnow', 39), ('cdnow', 78), ('a>1', 52), ('a<1', 500)):
        r, alpha, a, b = PARAMS[p]
        for model in ('bgnbd', 'mbgnbd'):
            out.append(row('unconditional', model, p, 0, 0, 0, t, unconditional(model, r, alpha, a, b, t)))
        print('.', end='', file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print('\n'.join(out))


if __name__ == '__main__':
    main()
