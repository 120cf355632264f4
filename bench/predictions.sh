#!/bin/bash
# bench/predictions.sh: reading the stored predictions against computing them
# at query time, in one run:
#   1. a program of BENCH_MEMBERS members who buy as BG/NBD and Gamma-Gamma
#      say (lib.sh generate_btyd), and a small one of BENCH_SMALL members in
#      the same ledger;
#   2. loyalty.fit_models on the large program (the fits and every member's
#      stored predictions), best of BENCH_RUNS, against fit_models as it was
#      before them (its text, created by this script as
#      bench_fit_models_before, each run rolled back); and the stored predictions
#      rewritten alone (an UPDATE of the fit's row: the models_rescore
#      trigger), best of BENCH_RUNS;
#   3. one member's churn_risk row (pgbench, BENCH_READS reads of random
#      members, average latency; simple protocol, and prepared) and the whole member_predictions (COPY of
#      every column to /dev/null, best of BENCH_RUNS), against the same read
#      of `live_predictions` / `live_churn_risk`: the definitions before
#      stored predictions (every member summarised from the ledger at query
#      time, the text of member_predictions and churn_risk before them),
#      created by this script;
#   4. purchase_summary of the small program, and its plan.
# Prints `ratio stored/live (...)`: below 1 the stored read is faster.
#
#   pg_virtualenv -t -v 15 bench/predictions.sh
#   BENCH_MEMBERS=1000000 pg_virtualenv -t -v 15 bench/predictions.sh
set -euo pipefail

BENCH_MEMBERS=${BENCH_MEMBERS:-100000}
BENCH_SMALL=${BENCH_SMALL:-1000}
BENCH_DAYS=${BENCH_DAYS:-730}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_READS=${BENCH_READS:-2000}
BENCH_LIVE_READS=${BENCH_LIVE_READS:-3}
BENCH_DB=${BENCH_DB:-loyalty_bench_predictions}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

BENCH_NAME=predictions.sh
source "$HERE/lib.sh"
bench_setup BENCH_MEMBERS BENCH_SMALL BENCH_DAYS BENCH_RUNS BENCH_READS BENCH_LIVE_READS

# seconds taken by one statement, the best of BENCH_RUNS (or $2 runs)
timed() {
    local best='' out t i
    for ((i = 0; i < ${2:-$BENCH_RUNS}; i++)); do
        out=$(q -c '\timing on' -c "$1") || exit 1
        t=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -1)
        best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
    done
    awk -v ms="$best" 'BEGIN { printf "%.4f", ms / 1000 }'
}
# the same, each run in a transaction rolled back
timed_tx() {
    local best='' out t i
    for ((i = 0; i < BENCH_RUNS; i++)); do
        out=$(q -c '\timing on' -c 'BEGIN' -c "$1" -c 'ROLLBACK') || exit 1
        t=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -2 | head -1)
        best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
    done
    awk -v ms="$best" 'BEGIN { printf "%.4f", ms / 1000 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }
# average latency in ms of SCRIPT run N times by pgbench (one client)
latency() {
    pgbench -n -c 1 -t "$2" -M "${3:-simple}" -f "$1" "$BENCH_DB" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}

q -q -c "CREATE EXTENSION loyalty"
echo "generating $BENCH_MEMBERS members drawn from BG/NBD and Gamma-Gamma, and $BENCH_SMALL in a second program"
t0=$(now)
generate_btyd "$BENCH_MEMBERS" "$BENCH_DAYS" 1
q -o /dev/null -c "UPDATE loyalty.programs SET name = 'btyd large'"
generate_btyd "$BENCH_SMALL" "$BENCH_DAYS" 2
echo "  generated in $(secs "$t0" "$(now)")s"
P=$(q1 "SELECT min(program_id) FROM loyalty.programs")
S=$(q1 "SELECT max(program_id) FROM loyalty.programs")
CAL=$(q1 "SELECT current_date")
q1 "SELECT format('  ledger: %s rows, %s of them the small program''s', count(*), count(*) FILTER (WHERE program_id = $S)) FROM loyalty.ledger"

# the definitions before stored predictions: every member summarised at query time
q -o /dev/null <<'SQL'
CREATE VIEW live_predictions AS
WITH m AS (
    SELECT DISTINCT ON (x.program_id) x.*,
           ARRAY(SELECT 365.25 / CASE x.time_unit WHEN 'week' THEN 7 ELSE 1 END * k / 12
                 FROM generate_series(0, 12) k)::float8[] AS months
    FROM loyalty.models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.program_id, x.fitted_at DESC
)
SELECT m.program_id, s.member_id, m.fitted_at, m.time_unit,
       s.x::bigint AS repeat_purchases, round(s.t_x, 2) AS t_x, round(s."T", 2) AS customer_age,
       round(pr.p_alive::numeric, 4) AS p_alive,
       round(pr.expected[13]::numeric, 4) AS expected_purchases_year,
       round(v.spend::numeric, 2) AS expected_avg_spend,
       round((v.spend * (SELECT sum((pr.expected[k + 1] - pr.expected[k]) / power(1.1::float8, k / 12.0))
                         FROM generate_series(1, 12) k))::numeric, 2) AS clv_year,
       CASE WHEN m.gamma_gamma IS NULL THEN coalesce(m.gamma_gamma_failure, 'no spend model')
            WHEN NOT (m.gamma_gamma).q > 1 THEN format('q = %s: no expected spend (q must exceed 1)', round((m.gamma_gamma).q::numeric, 4))
       END AS spend_model_failure,
       m.calibration_end, s.last_purchase,
       pr.model AS purchase_model, pr.failure AS prediction_failure
FROM m, LATERAL loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit) s,
     LATERAL loyalty.predict_purchases(m.purchase_model, m.bgnbd, m.mbgnbd, s.x, s.t_x, s."T", m.months) pr,
     LATERAL (SELECT CASE WHEN (m.gamma_gamma).q > 1
                          THEN loyalty.gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, s.x,
                                                            coalesce(s.m_x, 0)) END AS spend) v;
CREATE VIEW live_churn_risk AS
SELECT p.program_id, p.member_id, p.p_alive, round(1 - p.p_alive, 4) AS churn_risk,
       CASE WHEN p.p_alive < 0.3 THEN 'high' WHEN p.p_alive < 0.6 THEN 'medium' WHEN p.p_alive >= 0.6 THEN 'low' END AS risk_band,
       p.expected_purchases_year, p.clv_year, p.last_purchase, p.repeat_purchases + 1 AS purchases, p.calibration_end AS as_of
FROM live_predictions p;
SQL

# fit_models before stored predictions (1.4 as it was): the fits alone
q -o /dev/null <<'SQL'
CREATE FUNCTION bench_fit_models_before(program bigint, calibration_end date DEFAULT current_date, time_unit text DEFAULT 'week',
                                   penalizer anycompatible DEFAULT NULL)
RETURNS loyalty.models
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v loyalty.models;
    v_penalizer numeric := penalizer::numeric;
    -- the penalizers each model is fitted with, in turn, until one fits:
    -- the one given, or (NULL) none and then stronger ones
    v_tries float8[];
    v_setting text;
    v_model text;
    v_fit loyalty.bgnbd_params;
    v_pen float8;
    v_used float8;
    v_err text;
    -- the customers, read once for every fit: x, t_x, T, mean repeat spend
    v_x float8[];
    v_tx float8[];
    v_age float8[];
    v_m float8[];
BEGIN
    PERFORM loyalty.require_program(bench_fit_models_before.program);
    IF time_unit IS NULL OR time_unit NOT IN ('day', 'week') THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (v_penalizer >= 0 AND v_penalizer < 'Infinity') THEN
        RAISE EXCEPTION 'penalizer must be a finite number, not negative, not %', v_penalizer
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL: none, or the least of 0.001, 0.01 and 0.1 that fits.';
    END IF;
    SELECT p.purchase_model INTO v_setting FROM loyalty.programs p WHERE p.program_id = program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    v_tries := CASE WHEN v_penalizer IS NULL THEN ARRAY[0, 0.001, 0.01, 0.1]::float8[] ELSE ARRAY[v_penalizer::float8] END;
    v.program_id := program;
    v.fitted_at := clock_timestamp();
    v.calibration_end := coalesce(calibration_end, current_date);
    v.time_unit := time_unit;
    SELECT array_agg(s.x::float8), array_agg(s.t_x::float8), array_agg(s."T"::float8), array_agg(s.m_x::float8)
    INTO v_x, v_tx, v_age, v_m
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s."T" > 0;
    IF v_x IS NULL THEN
        RAISE EXCEPTION 'program % has no purchases before %', program, v.calibration_end
            USING ERRCODE = 'LY030';
    END IF;

    -- the purchase models, each on its own: one the data cannot identify
    -- leaves the other
    FOREACH v_model IN ARRAY ARRAY['bgnbd', 'mbgnbd'] LOOP
        v_fit := NULL;
        v_used := NULL;
        v_err := NULL;
        FOREACH v_pen IN ARRAY v_tries LOOP
            BEGIN
                IF v_model = 'bgnbd' THEN
                    v_fit := (SELECT loyalty.bgnbd_fit(u.x, u.t_x, u."T", v_pen) FROM unnest(v_x, v_tx, v_age) u(x, t_x, "T"));
                ELSE
                    v_fit := (SELECT loyalty.mbgnbd_fit(u.x, u.t_x, u."T", v_pen) FROM unnest(v_x, v_tx, v_age) u(x, t_x, "T"));
                END IF;
                v_used := v_pen;
                EXIT;
            EXCEPTION WHEN SQLSTATE 'LY030' THEN
                v_err := coalesce(v_err, SQLERRM);
            END;
        END LOOP;
        IF v_fit IS NULL AND v_penalizer IS NULL THEN
            v_err := v_err || ' (nor with a penalizer of 0.001, 0.01 or 0.1)';
        END IF;
        IF v_model = 'bgnbd' THEN
            v.bgnbd := v_fit;
            v.bgnbd_penalizer := v_used;
            v.bgnbd_failure := CASE WHEN v_fit IS NULL THEN v_err END;
        ELSE
            v.mbgnbd := v_fit;
            v.mbgnbd_penalizer := v_used;
            v.mbgnbd_failure := CASE WHEN v_fit IS NULL THEN v_err END;
        END IF;
    END LOOP;
    -- the one the program predicts with: LY030 (and nothing stored, so the
    -- program keeps its last fit) when the data identify neither or not the
    -- one the program asks for
    v.purchase_model := loyalty.purchase_model_choice(v_setting, v.bgnbd, v.mbgnbd);
    IF v.purchase_model IS NULL THEN
        RAISE EXCEPTION '%', v.bgnbd_failure
            USING ERRCODE = 'LY030', DETAIL = format('Nor MBG/NBD: %s.', v.mbgnbd_failure);
    ELSIF v.purchase_model = 'bgnbd' AND v.bgnbd IS NULL OR v.purchase_model = 'mbgnbd' AND v.mbgnbd IS NULL THEN
        RAISE EXCEPTION '%', CASE WHEN v.purchase_model = 'bgnbd' THEN v.bgnbd_failure ELSE v.mbgnbd_failure END
            USING ERRCODE = 'LY030',
                  DETAIL = format('Program %s predicts with %s (loyalty.set_purchase_model).', program, v.purchase_model),
                  HINT = 'loyalty.set_purchase_model(program, ''auto'') lets it predict with the model the data identify.';
    END IF;

    -- the spend model on its own too: when the data cannot identify it, or
    -- identify one without an expected value (q <= 1: spend too
    -- heavy-tailed), the purchase models are kept and the failure recorded
    v_err := NULL;
    FOREACH v_pen IN ARRAY v_tries LOOP
        BEGIN
            v.gamma_gamma := (SELECT loyalty.gamma_gamma_fit(u.x, u.m_x, v_pen) FROM unnest(v_x, v_m) u(x, m_x) WHERE u.x > 0);
            v.gamma_gamma_penalizer := v_pen;
            EXIT;
        EXCEPTION WHEN SQLSTATE 'LY030' THEN
            v_err := coalesce(v_err, SQLERRM);
        END;
    END LOOP;
    IF v.gamma_gamma IS NULL AND v_err IS NOT NULL THEN
        v.gamma_gamma_failure := v_err || CASE WHEN v_penalizer IS NULL THEN ' (nor with a penalizer of 0.001, 0.01 or 0.1)' ELSE '' END;
    ELSIF v.gamma_gamma IS NULL THEN
        v.gamma_gamma_failure := 'no customer with a repeat purchase';
        v.gamma_gamma_penalizer := NULL;
    ELSIF NOT (v.gamma_gamma).q > 1 THEN
        v.gamma_gamma_failure := format('q = %s: spend this heavy-tailed has no expected value (q must exceed 1)',
                                        round((v.gamma_gamma).q::numeric, 4));
        v.gamma_gamma := NULL;
        v.gamma_gamma_penalizer := NULL;
    END IF;
    INSERT INTO loyalty.models VALUES (v.*);
    RETURN v;
END $$;
SQL

echo "fit_models on $BENCH_MEMBERS members (the fits and every member's stored predictions), best of $BENCH_RUNS"
T_FIT=$(timed "SELECT loyalty.fit_models($P, '$CAL', 'week') IS NOT NULL")
echo "  loyalty.fit_models end to end                         ${T_FIT}s"
T_BEFORE=$(timed_tx "SELECT bench_fit_models_before($P, '$CAL', 'week') IS NOT NULL")
echo "  fit_models before stored predictions (the fits alone)  ${T_BEFORE}s"
T_STORE=$(timed "UPDATE loyalty.models SET purchase_model = purchase_model WHERE program_id = $P
                 AND fitted_at = (SELECT max(fitted_at) FROM loyalty.models WHERE program_id = $P)")
echo "  the stored predictions rewritten alone (models_rescore) ${T_STORE}s"
q -o /dev/null -c "SELECT loyalty.fit_models($S, '$CAL', 'week')" -c "VACUUM ANALYZE loyalty.member_scores"
q1 "SELECT format('  %s stored rows; identical to the live view: %s', (SELECT count(*) FROM loyalty.member_scores),
           NOT EXISTS (SELECT * FROM loyalty.member_predictions EXCEPT SELECT * FROM live_predictions)
           AND NOT EXISTS (SELECT * FROM live_predictions EXCEPT SELECT * FROM loyalty.member_predictions))"

echo "one member's churn_risk row"
LO=$(q1 "SELECT min(member_id) FROM loyalty.member_scores WHERE program_id = $P")
HI=$(q1 "SELECT max(member_id) FROM loyalty.member_scores WHERE program_id = $P")
printf '\\set m random(%s, %s)\nSELECT * FROM loyalty.churn_risk WHERE member_id = :m;\n' "$LO" "$HI" >"$TMP/stored.sql"
printf '\\set m random(%s, %s)\nSELECT * FROM live_churn_risk WHERE member_id = :m;\n' "$LO" "$HI" >"$TMP/live.sql"
L_STORED=$(latency "$TMP/stored.sql" "$BENCH_READS")
echo "  stored (loyalty.churn_risk), $BENCH_READS reads           ${L_STORED} ms"
L_PREP=$(latency "$TMP/stored.sql" "$BENCH_READS" prepared)
echo "  stored, prepared (planned once), $BENCH_READS reads      ${L_PREP} ms"
L_LIVE=$(latency "$TMP/live.sql" "$BENCH_LIVE_READS")
echo "  live (summarised at query time), $BENCH_LIVE_READS reads      ${L_LIVE} ms"

echo "the whole member_predictions (COPY of every column to /dev/null), best of $BENCH_RUNS"
V_STORED=$(timed "COPY (SELECT * FROM loyalty.member_predictions) TO '/dev/null'")
echo "  stored                                                ${V_STORED}s"
V_LIVE=$(timed "COPY (SELECT * FROM live_predictions) TO '/dev/null'")
echo "  live                                                  ${V_LIVE}s"
# members who bought since the fit are computed at query time: a tenth of them
q -o /dev/null -c "UPDATE loyalty.accounts SET purchase_count = purchase_count + 1 WHERE program_id = $P AND member_id % 10 = 0"
V_TENTH=$(timed "COPY (SELECT * FROM loyalty.member_predictions) TO '/dev/null'")
echo "  stored, a tenth of the members changed since the fit   ${V_TENTH}s"
q -o /dev/null -c "UPDATE loyalty.accounts SET purchase_count = purchase_count - 1 WHERE program_id = $P AND member_id % 10 = 0"

echo "purchase_summary of the small program ($BENCH_SMALL members) in the whole ledger"
T_SMALL=$(timed "SELECT count(*) FROM loyalty.purchase_summary($S, '$CAL', 'week')")
echo "  ${T_SMALL}s; plan:"
q1 "EXPLAIN (COSTS OFF)
    WITH days AS (SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
                  FROM loyalty.programs p JOIN loyalty.members mb ON mb.program_id = p.program_id
                  JOIN loyalty.ledger l ON l.member_id = mb.member_id
                  WHERE p.program_id = $S AND l.program_id = $S AND l.kind = 'earn'
                    AND mb.member_id >= -9223372036854775808 AND mb.member_id <= 9223372036854775807
                    AND l.member_id >= -9223372036854775808 AND l.member_id <= 9223372036854775807
                    AND (l.occurred_at AT TIME ZONE p.time_zone)::date <= '$CAL' GROUP BY 1, 2)
    SELECT count(*) FROM days" | sed 's/^/    /'

echo "ratio stored/live (one member's churn_risk row): $(ratio "$L_STORED" "$L_LIVE")"
echo "ratio stored prepared/live (one member's churn_risk row): $(ratio "$L_PREP" "$L_LIVE")"
echo "ratio stored/live (whole member_predictions): $(ratio "$V_STORED" "$V_LIVE")"
echo "ratio fit_models with stored predictions/before (time): $(ratio "$T_FIT" "$T_BEFORE")"
