"""bench/btyd_draw.py: customers who buy as BG/NBD and Gamma-Gamma say, for
generate_btyd in bench/lib.sh.  Run with Debian's python3 (python3-numpy):

    /usr/bin/python3 bench/btyd_draw.py MEMBERS DAYS SEED MEMBERS.csv PURCHASES.csv

Each member joins with a purchase some time in the last DAYS days (uniform,
at least 5% of DAYS ago).  BG/NBD (Fader, Hardie & Lee 2005), per week:
purchase rate lambda ~ Gamma(r, alpha), dropout probability p ~ Beta(a, b);
repeat purchases follow a Poisson process of rate lambda and the member drops
out after each with probability p.  Of N ~ Poisson(lambda * age) purchases
the member would make alive, the first min(N, J) are made, J ~ Geometric(p).
Gamma-Gamma: nu ~ Gamma(q, gamma), each purchase's value ~ Gamma(p, nu)
(at least 1.00: an earn of under a point is not a purchase here).
Parameters: CDNOW's published estimates.
MEMBERS.csv: member, age in days;  PURCHASES.csv: member, k (0 = the joining
purchase), days after joining, amount.
"""
import sys

import numpy as np

R, ALPHA, A, B = 0.243, 4.414, 0.793, 2.426
P, Q, GAMMA = 6.25, 3.74, 15.44


def main():
    members, days, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    age = days * (0.05 + 0.95 * rng.random(members))
    lam = rng.gamma(R, 1 / ALPHA, members) / 7            # per day
    drop = rng.beta(A, B, members)
    n = rng.poisson(lam * age)
    x = np.minimum(n, rng.geometric(drop))
    # the first x of n uniform times in (0, age): their order statistics
    owner = np.repeat(np.arange(members), n)
    u = rng.random(owner.size)
    order = np.lexsort((u, owner))
    owner, u = owner[order], u[order]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(n) - n, n)
    keep = rank < x[owner]
    owner, t = owner[keep], u[keep] * age[owner[keep]]
    # with the joining purchases, in (member, time) order
    m = np.concatenate([np.arange(members), owner])
    at = np.concatenate([np.zeros(members), t])
    order = np.lexsort((at, m))
    m, at = m[order], at[order]
    k = np.arange(m.size) - np.repeat(np.cumsum(x + 1) - (x + 1), x + 1)
    nu = rng.gamma(Q, 1 / GAMMA, members)
    amount = np.maximum(np.round(rng.gamma(P, 1 / nu[m]), 2), 1.0)
    np.savetxt(sys.argv[4], np.column_stack([np.arange(1, members + 1), age]), fmt=["%d", "%.6f"], delimiter=",")
    np.savetxt(sys.argv[5], np.column_stack([m + 1, k, at, amount]), fmt=["%d", "%d", "%.6f", "%.2f"], delimiter=",")


main()
