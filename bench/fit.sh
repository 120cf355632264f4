#!/bin/bash
# bench/fit.sh: the model fits against scipy on the same customer summaries,
# in one run:
#   1. a program of BENCH_MEMBERS members who joined over BENCH_DAYS days and
#      buy as BG/NBD and Gamma-Gamma say, with CDNOW's published parameters
#      (bench/lib.sh generate_btyd: generate's purchases do not identify the
#      BG/NBD model); its summaries (loyalty.purchase_summary, weeks, T > 0 as
#      fit_models takes them) computed once into a table, timed on their own:
#      that is the cost of the summaries, not of the fit;
#   2. best of BENCH_RUNS: loyalty.bgnbd_fit over every row of that table,
#      loyalty.gamma_gamma_fit over its repeaters, and loyalty.fit_models end
#      to end (both summaries and both fits);
#   3. the same rows, and the distinct (x, t_x, T) with their counts, exported
#      to CSV and fitted by scipy.optimize.minimize(method='L-BFGS-B') on
#      lifetimes' BG/NBD objective (bench/bgnbd_scipy.py), best of BENCH_RUNS;
#      the parameters and log-likelihoods must agree;
#   4. the same on CDNOW (the 2,357 customers of Fader, Hardie & Lee, loaded
#      as purchases through loyalty.earn as test/scripts/cdnow_fit.sh does),
#      whose published estimates are printed beside.
# Prints `ratio loyalty bgnbd_fit / scipy L-BFGS-B (...)`: below 1 ours is
# faster.  scipy is Debian's (python3-scipy, run by /usr/bin/python3),
# installed with apt-get when missing.
#
#   pg_virtualenv -t -v 15 bench/fit.sh
#   BENCH_MEMBERS=100000 pg_virtualenv -t -v 15 bench/fit.sh   # quicker
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-1000000}
BENCH_DAYS=${BENCH_DAYS:-730}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_DB=${BENCH_DB:-loyalty_bench_fit}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CDNOW=${LOYALTY_DATA:-$HERE/../data}/cdnow   # shipped in data/; read by psql (\copy)
PY=/usr/bin/python3

BENCH_NAME=fit.sh
source "$HERE/lib.sh"
[[ -r $CDNOW/CDNOW_sample.txt ]] || die "$CDNOW/CDNOW_sample.txt not found (LOYALTY_DATA: a copy of data/)"
if ! $PY -c 'import numpy, scipy' 2>/dev/null; then
    echo "installing python3-scipy (Debian) for the reference"
    [[ $(id -u) == 0 ]] || die "python3-scipy is missing: apt-get install python3-scipy"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 python3-scipy >/dev/null
fi
bench_setup BENCH_MEMBERS BENCH_DAYS BENCH_RUNS

# seconds taken by one statement, the best of BENCH_RUNS
timed() {
    local best='' out t i
    for ((i = 0; i < BENCH_RUNS; i++)); do
        out=$(q -c '\timing on' -c "$1") || exit 1
        t=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -1)
        best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
    done
    awk -v ms="$best" 'BEGIN { printf "%.3f", ms / 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
at() { sed -n "s/^@$1 //p" <<<"$2"; }

# compare PROGRAM CALIBRATION_END LABEL: the summaries of PROGRAM into a
# table, our fits and scipy's on them; sets T_OURS, T_SCIPY, T_SCIPY_ALL
compare() {
    local program=$1 cal=$2 label=$3 t0 t_sum fitted out
    t0=$(now)
    q -o /dev/null -c "DROP TABLE IF EXISTS summary" \
      -c "CREATE TABLE summary AS SELECT x::float8 AS x, t_x::float8 AS t_x, \"T\"::float8 AS \"T\", m_x::float8 AS m_x
          FROM loyalty.purchase_summary($program, '$cal', 'week') WHERE \"T\" > 0"
    t_sum=$(secs "$t0" "$(now)")
    q -o /dev/null -c "VACUUM ANALYZE summary"
    q1 "SELECT format('  %s customers, %s repeaters, %s distinct (x, t_x, T)', count(*), count(*) FILTER (WHERE x > 0),
               (SELECT count(*) FROM (SELECT DISTINCT x, t_x, \"T\" FROM summary) d)) FROM summary"
    echo "  summaries (purchase_summary into a table, once)      ${t_sum}s"
    T_OURS=$(timed "SELECT loyalty.bgnbd_fit(x, t_x, \"T\") FROM summary")
    echo "  loyalty.bgnbd_fit over every row                      ${T_OURS}s"
    local t_gg t_fm t_scan
    t_gg=$(timed "SELECT loyalty.gamma_gamma_fit(x, m_x) FROM summary WHERE x > 0")
    echo "  loyalty.gamma_gamma_fit over the repeaters            ${t_gg}s"
    t_scan=$(timed "SELECT sum(x), sum(t_x), sum(\"T\") FROM summary")
    echo "  (a plain scan of the same rows                        ${t_scan}s)"
    t_fm=$(timed "SELECT loyalty.fit_models($program, '$cal', 'week')")
    echo "  loyalty.fit_models end to end                         ${t_fm}s"
    fitted=$(q1 "SELECT concat_ws(' ', r, alpha, a, b, loglik) FROM (SELECT (loyalty.bgnbd_fit(x, t_x, \"T\")).* FROM summary) f")
    q1 "SELECT '  Gamma-Gamma: ' || loyalty.gamma_gamma_fit(x, m_x)::text FROM summary WHERE x > 0"
    # float8 out gives the shortest text that reads back as the same double
    q -c "\\copy (SELECT x, t_x, \"T\" FROM summary) TO '$TMP/all.csv' WITH (FORMAT csv)" \
      -c "\\copy (SELECT x, t_x, \"T\", count(*) FROM summary GROUP BY 1, 2, 3) TO '$TMP/distinct.csv' WITH (FORMAT csv)" >/dev/null
    # shellcheck disable=SC2086  # the five numbers
    out=$($PY "$HERE/bgnbd_scipy.py" "$TMP/all.csv" "$TMP/distinct.csv" "$BENCH_RUNS" $fitted)
    grep -v '^@' <<<"$out"
    T_SCIPY=$(at scipy_distinct "$out")
    T_SCIPY_ALL=$(at scipy_all "$out")
    local dp dl
    dp=$(at rel_params "$out"); dl=$(at rel_ll "$out")
    [[ $(at converged "$out") == 1 ]] || die "$label: scipy did not converge"
    # the log-likelihood to 1e-6 relative; parameters as far as L-BFGS-B's
    # tolerance (1e-7 on the objective) pins them down
    awk -v p="$dp" -v l="$dl" 'BEGIN { exit !(p < 1e-2 && l < 1e-6) }' \
        || die "$label: loyalty and scipy disagree (parameters $dp, log-likelihood $dl relative)"
    echo "ratio loyalty bgnbd_fit / scipy L-BFGS-B ($label, distinct weighted rows): $(ratio "$T_OURS" "$T_SCIPY")"
    echo "ratio loyalty bgnbd_fit / scipy L-BFGS-B ($label, all rows): $(ratio "$T_OURS" "$T_SCIPY_ALL")"
}

echo "== loyalty model fit benchmark: $BENCH_MEMBERS members over $BENCH_DAYS days, best of $BENCH_RUNS =="
q1 "SELECT version()"
$PY -c 'import numpy, scipy; print("numpy", numpy.__version__, "scipy", scipy.__version__)'
q -c "CREATE EXTENSION loyalty"
t0=$(now)
generate_btyd "$BENCH_MEMBERS" "$BENCH_DAYS"
echo "  generated in $(secs "$t0" "$(now)") s: $(q1 "SELECT count(*) FROM loyalty.ledger") purchases"
CAL=$(q1 "SELECT current_date")

echo "-- drawn program: $BENCH_MEMBERS members, calibration end $CAL, weeks"
echo "  drawn from: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426; Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44"
compare "$(q1 "SELECT program_id FROM loyalty.programs WHERE name = 'btyd'")" "$CAL" "$BENCH_MEMBERS members"

# CDNOW through the API, as test/scripts/cdnow_fit.sh loads it
q -o /dev/null -v sample="$CDNOW/CDNOW_sample.txt" <<'SQL'
CREATE TEMP TABLE raw (line text);
\set copy_raw '\\copy raw FROM ' :'sample'
:copy_raw
CREATE TABLE cdnow AS
SELECT split_part(t, ' ', 2)::int AS customer, to_date(split_part(t, ' ', 3), 'YYYYMMDD') AS day,
       split_part(t, ' ', 5)::numeric AS dollars
FROM (SELECT regexp_replace(btrim(line), '\s+', ' ', 'g') AS t FROM raw) r;
SELECT loyalty.create_program('cdnow', currency => 'USD', earn_rate => 1) AS p \gset
SELECT count(loyalty.enroll(:p, 'cdnow', c::text, joined_at => '1997-01-01')) FROM (SELECT DISTINCT customer AS c FROM cdnow) s;
SELECT count(loyalty.earn(loyalty.member_id(:p, 'cdnow', customer::text), dollars,
                          occurred_at => day + time '12:00' AT TIME ZONE 'UTC'))
FROM cdnow;
SQL
echo "-- CDNOW: 2,357 customers, calibration 1997-01-01 .. 1997-09-30, weeks"
echo "  published: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4; Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44"
compare "$(q1 "SELECT program_id FROM loyalty.programs WHERE name = 'cdnow'")" 1997-09-30 CDNOW
