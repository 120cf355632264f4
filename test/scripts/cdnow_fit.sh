#!/usr/bin/env bash
# The CDNOW check of the buy-till-you-die models: load CDNOW_sample.txt (the
# 2,357-customer sample of Fader, Hardie & Lee 2005) as purchases through
# loyalty.earn, compare every customer's summary (x, t_x, T, mean repeat
# spend) with the published summary file, fit the models on the calibration
# period 1997-01-01 .. 1997-09-30 in weeks, and require the published
# estimates to their printed digits:
#   BG/NBD       r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
#                (and the likelihood's maximum to 1e-6 relative)
#   MBG/NBD      r = 0.525, alpha = 6.183, a = 0.891, b = 1.614 (BTYDplus, and
#                lifetimes' test of its ModifiedBetaGeoFitter)
#   Gamma-Gamma  p = 6.25,  q = 3.74,  gamma = 15.44
# Compare both purchase models on the holdout (weeks 40-78), per period
# (model_tracking) and on the one-time buyers of a fit on all 78 weeks.
# Then show that data which cannot identify the model fail with LY030.
# Runs inside the throwaway cluster of tools/test.sh.  The data ship in the
# repository (data/cdnow; LOYALTY_DATA may point at another copy of data/)
# and psql reads them as the client (\copy), never the server.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# paths relative to the repository root, where psql runs
cd "$HERE"
DATA=${LOYALTY_DATA:-data}/cdnow
DB=loyalty_cdnow
for f in CDNOW_sample.txt cdnow_customers_summary_with_transactions.csv; do
    [[ -r $DATA/$f ]] || { echo "cdnow_fit.sh: $DATA/$f not found (LOYALTY_DATA: a copy of data/)" >&2; exit 1; }
done
trap '"$PGBIN/dropdb" --if-exists $DB' EXIT
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

"$PGBIN/createdb" $DB
# \copy takes its line as written, without psql variables: each is built
psql -d $DB -o /dev/null -v sample="$DATA/CDNOW_sample.txt" \
     -v summary="$DATA/cdnow_customers_summary_with_transactions.csv" <<'SQL'
CREATE EXTENSION loyalty;
CREATE TEMP TABLE raw (line text);
\set copy_raw '\\copy raw FROM ' :'sample'
:copy_raw
CREATE TABLE cdnow AS
SELECT split_part(t, ' ', 2)::int AS customer, to_date(split_part(t, ' ', 3), 'YYYYMMDD') AS day,
       split_part(t, ' ', 5)::numeric AS dollars
FROM (SELECT regexp_replace(btrim(line), '\s+', ' ', 'g') AS t FROM raw) r;
CREATE TABLE published (id int, x int, t_x numeric, "T" numeric, zbar numeric);
\set copy_published '\\copy published FROM ' :'summary' ' WITH (FORMAT csv, HEADER)'
:copy_published
SQL

# every transaction is a purchase through the API, dated on its day (noon UTC)
psql -d $DB -o /dev/null <<'SQL'
SELECT loyalty.create_program('cdnow', currency => 'USD', earn_rate => 1) AS p \gset
SELECT count(loyalty.enroll(:p, 'cdnow', c::text, joined_at => '1997-01-01')) FROM (SELECT DISTINCT customer AS c FROM cdnow) s;
SELECT count(loyalty.earn(loyalty.member_id(:p, 'cdnow', customer::text), dollars,
                          occurred_at => day + time '12:00' AT TIME ZONE 'UTC'))
FROM cdnow ORDER BY 1;
SQL

fail=0
check() {   # name, SQL returning one boolean, SQL describing
    local ok
    ok=$(psql -d $DB -A -t -c "$2")
    if [[ $ok == t ]]; then echo "ok   $1"; else echo "FAIL $1: $(psql -d $DB -A -t -c "$3")"; fail=1; fi
}

# the summaries, customer by customer ($0 transactions are purchases too)
psql -d $DB -o /dev/null <<'SQL'
CREATE TABLE ours AS
SELECT i.external_id::int AS id, s.x, round(s.t_x, 2) AS t_x, round(s."T", 2) AS "T", round(coalesce(s.m_x, 0), 2) AS zbar
FROM loyalty.purchase_summary(1, '1997-09-30', 'week') s JOIN loyalty.identities i ON i.member_id = s.member_id;
SQL
check "2357 customers summarised" \
    "SELECT count(*) = 2357 FROM ours" "SELECT count(*) FROM ours"
check "x, t_x, T and mean repeat spend equal the published summary for every customer" \
    "SELECT count(*) = 0 FROM ours o JOIN published p USING (id) WHERE (o.x, o.t_x, o.\"T\", o.zbar) IS DISTINCT FROM (p.x, p.t_x, p.\"T\", p.zbar)" \
    "SELECT string_agg(format('%s: %s/%s', o.id, (o.x, o.t_x, o.\"T\", o.zbar), (p.x, p.t_x, p.\"T\", p.zbar)), '; ') FROM ours o JOIN published p USING (id) WHERE (o.x, o.t_x, o.\"T\", o.zbar) IS DISTINCT FROM (p.x, p.t_x, p.\"T\", p.zbar)"

psql -d $DB -o /dev/null -c "SELECT loyalty.fit_models(1, '1997-09-30', 'week')"
check "BG/NBD r = 0.243, alpha = 4.414, a = 0.793, b = 2.426" \
    "SELECT (round((bgnbd).r::numeric, 3), round((bgnbd).alpha::numeric, 3), round((bgnbd).a::numeric, 3), round((bgnbd).b::numeric, 3)) = (0.243, 4.414, 0.793, 2.426) FROM loyalty.models" \
    "SELECT bgnbd FROM loyalty.models"
check "BG/NBD log-likelihood -9582.4" \
    "SELECT round((bgnbd).loglik::numeric, 1) = -9582.4 FROM loyalty.models" "SELECT (bgnbd).loglik FROM loyalty.models"
check "MBG/NBD r = 0.525, alpha = 6.183, a = 0.891, b = 1.614" \
    "SELECT (round((mbgnbd).r::numeric, 3), round((mbgnbd).alpha::numeric, 3), round((mbgnbd).a::numeric, 3), round((mbgnbd).b::numeric, 3)) = (0.525, 6.183, 0.891, 1.614) FROM loyalty.models" \
    "SELECT mbgnbd FROM loyalty.models"
check "no penalizer needed (0 recorded for each model)" \
    "SELECT (bgnbd_penalizer, mbgnbd_penalizer, gamma_gamma_penalizer) = (0, 0, 0) FROM loyalty.models" \
    "SELECT (bgnbd_penalizer, mbgnbd_penalizer, gamma_gamma_penalizer) FROM loyalty.models"
check "auto: the predictions use the model of the higher log-likelihood" \
    "SELECT purchase_model = CASE WHEN (mbgnbd).loglik > (bgnbd).loglik THEN 'mbgnbd' ELSE 'bgnbd' END FROM loyalty.models" \
    "SELECT (purchase_model, (bgnbd).loglik, (mbgnbd).loglik) FROM loyalty.models"
psql -d $DB -c "SELECT m.model, round(p.r::numeric, 4) AS r, round(p.alpha::numeric, 4) AS alpha, round(p.a::numeric, 4) AS a,
                       round(p.b::numeric, 4) AS b, round(p.loglik::numeric, 2) AS loglik, x.purchase_model = m.model AS chosen
                FROM loyalty.models x, LATERAL (VALUES ('bgnbd', x.bgnbd), ('mbgnbd', x.mbgnbd)) m(model, params),
                     LATERAL (SELECT (m.params).*) p ORDER BY 1"
# the maximum of the likelihood, not only its printed digits: on the published
# summary file, the values the Nelder-Mead search found to its last digits,
# which the quasi-Newton search must agree with to 1e-6 (relative)
check "BG/NBD on the summary file at the maximum to 1e-6: r = 0.2425928904, alpha = 4.413531442, a = 0.7928860697, b = 2.425753166, LL = -9582.425560567" \
    "SELECT greatest(abs(r / 0.24259289043294915 - 1), abs(alpha / 4.413531442458761 - 1), abs(a / 0.7928860697136885 - 1),
                     abs(b / 2.425753166450286 - 1), abs(loglik / -9582.42556056735 - 1)) < 1e-6
     FROM (SELECT (loyalty.bgnbd_fit(x, t_x, \"T\")).* FROM published) f" \
    "SELECT loyalty.bgnbd_fit(x, t_x, \"T\") FROM published"
check "Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44 (on the 946 repeat customers)" \
    "SELECT (round((gamma_gamma).p::numeric, 2), round((gamma_gamma).q::numeric, 2), round((gamma_gamma).gamma::numeric, 2), (gamma_gamma).customers) = (6.25, 3.74, 15.44, 946) FROM loyalty.models" \
    "SELECT gamma_gamma FROM loyalty.models"
check "the fit from the published summary file gives the same estimates" \
    "SELECT (round(r::numeric, 3), round(alpha::numeric, 3), round(a::numeric, 3), round(b::numeric, 3)) = (0.243, 4.414, 0.793, 2.426) FROM (SELECT (loyalty.bgnbd_fit(x, t_x, \"T\")).* FROM published) f" \
    "SELECT loyalty.bgnbd_fit(x, t_x, \"T\") FROM published"
check "a parallel plan (partial states combined) fits the same model" \
    "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
     SELECT round((loyalty.bgnbd_fit(x, t_x, \"T\")).r::numeric, 3) = 0.243 FROM published" "SELECT 'parallel fit differs'"
# the penalizer travels with the partial states
psql -d $DB -o /dev/null -c "CREATE TABLE serial_fit AS SELECT loyalty.mbgnbd_fit(x, t_x, \"T\", 0.01)::text AS f FROM published"
parallel="SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;"
check "a parallel plan with a penalizer fits as a serial one does (MBG/NBD, 0.01)" \
    "$parallel SELECT loyalty.mbgnbd_fit(x, t_x, \"T\", 0.01)::text = (SELECT f FROM serial_fit) FROM published" \
    "$parallel SELECT loyalty.mbgnbd_fit(x, t_x, \"T\", 0.01)::text || ' against ' || (SELECT f FROM serial_fit) FROM published"
check "... in a plan that is parallel" \
    "$parallel CREATE FUNCTION pg_temp.plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS \$\$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN ' || q; END \$\$;
     SELECT bool_or(p LIKE '%Partial Aggregate%') FROM pg_temp.plan('SELECT loyalty.mbgnbd_fit(x, t_x, \"T\", 0.01)::text = (SELECT f FROM serial_fit) FROM published') p" \
    "SELECT 'no parallel plan'"
check "predictions: P(alive) in [0, 1], expected purchases >= 0, CLV >= 0 for every customer" \
    "SELECT bool_and(p_alive >= 0 AND p_alive <= 1 AND expected_purchases_year >= 0 AND clv_year >= 0) AND count(*) = 2357 FROM loyalty.member_predictions" \
    "SELECT count(*) FROM loyalty.member_predictions"
check "conditional expectation: x = 2, t_x = 30.43, T = 38.86 expects 1.226 purchases in the next 39 weeks (the paper's example)" \
    "SELECT round(loyalty.bgnbd_expected((bgnbd).r, (bgnbd).alpha, (bgnbd).a, (bgnbd).b, 2, 30.43, 38.86, 39)::numeric, 3) = 1.226 FROM loyalty.models" \
    "SELECT loyalty.bgnbd_expected((bgnbd).r, (bgnbd).alpha, (bgnbd).a, (bgnbd).b, 2, 30.43, 38.86, 39) FROM loyalty.models"

# one calendar convention: a daily fit of the same purchases predicts the
# same year (365.25 days) and CLV as the weekly one
psql -d $DB -o /dev/null -c "CREATE TABLE weekly AS SELECT member_id, expected_purchases_year, clv_year FROM loyalty.member_predictions"
psql -d $DB -o /dev/null -c "SELECT loyalty.fit_models(1, '1997-09-30', 'day')"
check "daily and weekly fits: the same expected purchases and CLV for a year (to the rounding of the views)" \
    "SELECT max(abs(d.clv_year - w.clv_year)) <= 0.02 AND max(abs(d.expected_purchases_year - w.expected_purchases_year)) <= 0.0002 AND count(*) = 2357
     FROM loyalty.member_predictions d JOIN weekly w USING (member_id) WHERE d.time_unit = 'day'" \
    "SELECT max(abs(d.clv_year - w.clv_year)), max(abs(d.expected_purchases_year - w.expected_purchases_year)), count(*)
     FROM loyalty.member_predictions d JOIN weekly w USING (member_id) WHERE d.time_unit = 'day'"
psql -d $DB -o /dev/null -c "DELETE FROM loyalty.models WHERE time_unit = 'day'"

# validation: the calibration models' expected purchases in weeks 40-78
# against the purchase days seen there, by calibration frequency
psql -d $DB -c "SELECT * FROM loyalty.model_holdout(1, '1998-06-30')"
check "holdout: 2357 customers, 1882 purchase days seen in weeks 40-78" \
    "SELECT (customers, total_actual) = (2357, 1882) FROM loyalty.model_holdout(1, '1998-06-30') WHERE repeat_purchases = 'all' AND model = 'bgnbd'" \
    "SELECT (customers, total_actual) FROM loyalty.model_holdout(1, '1998-06-30') WHERE repeat_purchases = 'all' AND model = 'bgnbd'"
check "holdout: BG/NBD expects 1653 of them" \
    "SELECT round(total_predicted) = 1653 FROM loyalty.model_holdout(1, '1998-06-30') WHERE repeat_purchases = 'all' AND model = 'bgnbd'" \
    "SELECT total_predicted FROM loyalty.model_holdout(1, '1998-06-30') WHERE repeat_purchases = 'all' AND model = 'bgnbd'"
check "holdout: MBG/NBD expects 1577" \
    "SELECT round(total_predicted) = 1577 FROM loyalty.model_holdout(1, '1998-06-30') WHERE repeat_purchases = 'all' AND model = 'mbgnbd'" \
    "SELECT total_predicted FROM loyalty.model_holdout(1, '1998-06-30') WHERE repeat_purchases = 'all' AND model = 'mbgnbd'"
check "holdout: the buckets add up to the total, for each model" \
    "SELECT bool_and(c = 2357 AND a = 1882) AND count(*) = 2 FROM (SELECT sum(customers) FILTER (WHERE repeat_purchases <> 'all') AS c, sum(total_actual) FILTER (WHERE repeat_purchases <> 'all') AS a FROM loyalty.model_holdout(1, '1998-06-30') GROUP BY model) t" \
    "SELECT * FROM loyalty.model_holdout(1, '1998-06-30')"

# the tracking plot (the BG/NBD paper's figure 3): repeat purchases per week
# against the sum of each customer's E[X(t)] since the first purchase
psql -d $DB -c "SELECT model, chosen, period AS week, period_end, actual, expected, cumulative_actual, cumulative_expected,
                       round(100 * (cumulative_expected / cumulative_actual - 1), 2) AS cumulative_error_pct
                FROM loyalty.model_tracking(1, '1998-06-30') WHERE period IN (39, 78) ORDER BY model, period"
check "tracking: 78 weeks, 2457 repeat purchase days in weeks 1-39 and 4339 to week 78" \
    "SELECT bool_and((max_week, at39, at78) = (78, 2457, 4339)) AND count(*) = 2 FROM (SELECT model, max(period) AS max_week, max(cumulative_actual) FILTER (WHERE period = 39) AS at39, max(cumulative_actual) FILTER (WHERE period = 78) AS at78 FROM loyalty.model_tracking(1, '1998-06-30') GROUP BY model) t" \
    "SELECT model, max(period), max(cumulative_actual) FROM loyalty.model_tracking(1, '1998-06-30') GROUP BY model"
check "tracking: at the calibration end (week 39) each model's cumulative expected is within 3% of the actual" \
    "SELECT bool_and(abs(cumulative_expected / cumulative_actual - 1) < 0.03) AND count(*) = 2 FROM loyalty.model_tracking(1, '1998-06-30') WHERE period = 39 AND period_end = '1997-09-30'" \
    "SELECT model, cumulative_expected, cumulative_actual FROM loyalty.model_tracking(1, '1998-06-30') WHERE period = 39"

# the refresh procedure (what pg_cron runs): commits per program; here it
# refits on the whole 78 weeks
psql -d $DB -o /dev/null -c "CALL loyalty.refresh_models(calibration_end => '1998-06-30')"
check "refresh_models stores a second fit of the program (calibrated up to 1998-06-30)" \
    "SELECT count(*) = 2 AND max(calibration_end) = '1998-06-30' FROM loyalty.models" "SELECT count(*) FROM loyalty.models"

# the one-time buyers of that fit, all idle 66 to 78 weeks: in which churn
# band each model puts them
psql -d $DB -c "SELECT m.model, round(p.r::numeric, 4) AS r, round(p.alpha::numeric, 4) AS alpha, round(p.a::numeric, 4) AS a,
                       round(p.b::numeric, 4) AS b, round(p.loglik::numeric, 2) AS loglik, x.purchase_model = m.model AS chosen
                FROM (SELECT * FROM loyalty.models ORDER BY fitted_at DESC LIMIT 1) x,
                     LATERAL (VALUES ('bgnbd', x.bgnbd), ('mbgnbd', x.mbgnbd)) m(model, params), LATERAL (SELECT (m.params).*) p ORDER BY 1"
bands() {   # the model, then the band counts of the one-time buyers idle >= 66 weeks
    psql -d $DB -A -t -F ' ' -c "SELECT loyalty.set_purchase_model(1, '$1')" \
         -c "SELECT '$1', count(*), count(*) FILTER (WHERE c.risk_band = 'low'), count(*) FILTER (WHERE c.risk_band = 'medium'),
                    count(*) FILTER (WHERE c.risk_band = 'high')
             FROM loyalty.member_predictions p JOIN loyalty.churn_risk c USING (member_id)
             WHERE p.repeat_purchases = 0 AND p.customer_age >= 66" | tail -1
}
read -r _ n bg_low bg_medium bg_high <<<"$(bands bgnbd)"
read -r _ _ mbg_low mbg_medium mbg_high <<<"$(bands mbgnbd)"
psql -d $DB -o /dev/null -c "SELECT loyalty.set_purchase_model(1, 'auto')"
echo "one-time buyers idle >= 66 weeks: $n; BG/NBD bands low/medium/high $bg_low/$bg_medium/$bg_high; MBG/NBD $mbg_low/$mbg_medium/$mbg_high"
if [[ $n -gt 1000 && $bg_low == "$n" && $mbg_low == 0 ]]; then
    echo "ok   BG/NBD calls every one-time buyer idle 66-78 weeks low risk (P(alive) = 1); MBG/NBD none of them"
else
    echo "FAIL one-time buyers idle >= 66 weeks: $n, low under BG/NBD $bg_low, under MBG/NBD $mbg_low"; fail=1
fi

# data that cannot identify the model fail loudly
for case in "no repeat purchase:SELECT loyalty.bgnbd_fit(0, 0, 30) FROM generate_series(1, 100)" \
            "everyone repeats:SELECT loyalty.bgnbd_fit(3, 10, 30) FROM generate_series(1, 100)" \
            "too few customers:SELECT loyalty.bgnbd_fit(1, 5, 30) FROM generate_series(1, 5)" \
            "identical spend:SELECT loyalty.gamma_gamma_fit(2, 10) FROM generate_series(1, 100)"; do
    name=${case%%:*}; sql=${case#*:}
    state=$(psql -d $DB -A -t -c "DO \$\$ BEGIN PERFORM ($sql); RAISE NOTICE 'none'; EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLSTATE; END \$\$" 2>&1 | sed -n 's/.*NOTICE:  //p')
    if [[ $state == LY030 ]]; then echo "ok   unidentifiable data refused ($name): LY030"; else echo "FAIL unidentifiable data ($name): got '$state'"; fail=1; fi
done
exit $fail
