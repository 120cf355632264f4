-- Stored per-member predictions (loyalty.member_scores): fit_models writes
-- every member's summary and predictions with the model, member_predictions
-- and churn_risk read them, and compute at query time only the members whose
-- accounts changed since (or who first bought after the fit).  The stored
-- figures against the C formulas called directly, a refit, a purchase after
-- the fit, set_purchase_model, row-level security and privileges, and a
-- member's read by key.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(27);

-- 120 customers buying over 2021 (random() with a fixed seed), fitted on the
-- purchases up to 2021-09-30
SELECT setseed(0.31);
CREATE TEMP TABLE purchases AS
SELECT c AS customer, d AS day, 5 + (c * 7 + d - '2021-01-01'::date) % 40 AS amount
FROM generate_series(1, 120) c,
     LATERAL (SELECT DISTINCT '2021-01-01'::date + (random() * (30 + c * 2.8))::int AS d
              FROM generate_series(1, 1 + c % 9)) d;
SELECT create_program('stored predictions') AS p \gset
SELECT create_program('another program') AS q \gset
SELECT count(enroll(:p, 'pos', 'c' || customer)) AS enrolled FROM (SELECT DISTINCT customer FROM purchases) c \gset
SELECT count(earn(member_id(:p, 'pos', 'c' || customer), amount, reference => 'c' || customer || '-' || day,
                  occurred_at => (day + time '12:00') AT TIME ZONE 'UTC')) AS earned
FROM (SELECT * FROM purchases ORDER BY customer, day) o \gset
SELECT count(enroll(:q, 'pos', 'o' || customer)) AS enrolled_q FROM (SELECT DISTINCT customer FROM purchases WHERE customer <= 30) c \gset
SELECT count(earn(member_id(:q, 'pos', 'o' || customer), amount, occurred_at => (day + time '12:00') AT TIME ZONE 'UTC')) AS earned_q
FROM (SELECT * FROM purchases WHERE customer <= 30 ORDER BY customer, day) o \gset
SELECT (fit_models(:p, '2021-09-30', 'week')).fitted_at AS fitted_at \gset
SELECT (fit_models(:q, '2021-09-30', 'week', 0.1)).fitted_at AS fitted_q \gset

CREATE TEMP VIEW latest AS
SELECT DISTINCT ON (program_id) * FROM models ORDER BY program_id, fitted_at DESC;
-- what each member's row must hold, from the summary and the C functions
-- called directly (the model the program predicts with; a year of 365.25
-- days in 12 months, discounted 10% a year, whatever the model's unit)
CREATE TEMP VIEW expected_rows AS
SELECT m.program_id, s.member_id, s.x, s.t_x, s."T", s.last_purchase, m.purchase_model,
       round(f.p_alive::numeric, 4) AS p_alive, round(f.e[13]::numeric, 4) AS expected_purchases_year,
       round(g.spend::numeric, 2) AS expected_avg_spend,
       round((g.spend * (SELECT sum((f.e[k + 1] - f.e[k]) / power(1.1::float8, k / 12.0)) FROM generate_series(1, 12) k))::numeric, 2)
           AS clv_year
FROM latest m, LATERAL purchase_summary(m.program_id, m.calibration_end, m.time_unit) s,
     LATERAL (SELECT CASE WHEN m.time_unit = 'week' THEN 365.25 / 7 ELSE 365.25 END AS per_year) u,
     LATERAL (SELECT CASE WHEN m.purchase_model = 'bgnbd'
                          THEN bgnbd_p_alive((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T")
                          ELSE mbgnbd_p_alive((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, s.x, s.t_x, s."T") END AS p_alive,
                     ARRAY(SELECT CASE WHEN m.purchase_model = 'bgnbd'
                                       THEN bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T", u.per_year * k / 12)
                                       ELSE mbgnbd_expected((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, s.x, s.t_x, s."T", u.per_year * k / 12) END
                           FROM generate_series(0, 12) k ORDER BY k) AS e) f,
     LATERAL (SELECT CASE WHEN (m.gamma_gamma).q > 1
                          THEN gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, s.x, coalesce(s.m_x, 0)) END AS spend) g;

SELECT is((SELECT count(*) FROM member_scores WHERE program_id = :p AND fitted_at = :'fitted_at'),
          (SELECT count(*) FROM purchase_summary(:p, '2021-09-30', 'week')),
          'fit_models stores a row for every member with a purchase by the calibration end, in its transaction');
SELECT ok((SELECT count(*) FROM member_scores WHERE program_id = :p) > 100, '... over a hundred of them');
SELECT is_empty($$SELECT program_id, member_id, x, t_x, "T", last_purchase, purchase_model, p_alive, expected_purchases_year,
                         expected_avg_spend, clv_year FROM expected_rows
                  EXCEPT SELECT program_id, member_id, x, t_x, "T", last_purchase, purchase_model, p_alive, expected_purchases_year,
                                expected_avg_spend, clv_year FROM member_scores$$,
                'every stored row equals the summary and the C formulas called directly, both programs');
SELECT is((SELECT count(*) FROM expected_rows WHERE program_id = :p AND p_alive IS NOT NULL AND clv_year IS NOT NULL),
          (SELECT count(*) FROM member_scores WHERE program_id = :p), '... with P(alive) and CLV for every member of the first');
SELECT is_empty($$SELECT program_id, member_id, x AS repeat_purchases, round(t_x, 2), round("T", 2), p_alive, expected_purchases_year,
                         expected_avg_spend, clv_year, last_purchase, purchase_model FROM expected_rows
                  EXCEPT SELECT program_id, member_id, repeat_purchases, t_x, customer_age, p_alive, expected_purchases_year,
                                expected_avg_spend, clv_year, last_purchase, purchase_model FROM member_predictions$$,
                'member_predictions shows the same for every member');
SELECT is((SELECT count(*) FROM member_predictions), (SELECT count(*) FROM member_scores), '... and no other rows');

-- the views read the stored rows (a row changed by hand shows)
UPDATE member_scores SET p_alive = 0.0123 WHERE member_id = member_id(:p, 'pos', 'c7');
SELECT is((SELECT (p_alive, risk_band) FROM churn_risk WHERE member_id = member_id(:p, 'pos', 'c7')), (0.0123, 'high'::text),
          'member_predictions and churn_risk read the stored row');
-- a member read by key, not by summarising the program
SET LOCAL enable_seqscan = off;
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE t text; r text := '';
BEGIN
    FOR t IN EXECUTE 'EXPLAIN ' || q LOOP r := r || t || E'\n'; END LOOP;
    RETURN r;
END $$;
SELECT ok(pg_temp.plan_of(format('SELECT * FROM loyalty.churn_risk WHERE member_id = %s', member_id(:p, 'pos', 'c7')))
              NOT LIKE '%Seq Scan on %', 'one member''s churn_risk row: no table scanned, every table read by key');
SELECT ok(pg_temp.plan_of(format('SELECT * FROM loyalty.member_predictions WHERE member_id = %s', member_id(:p, 'pos', 'c7')))
              NOT LIKE '%Seq Scan on %', '... nor for member_predictions');
RESET enable_seqscan;
UPDATE member_scores s SET p_alive = e.p_alive FROM expected_rows e WHERE e.member_id = s.member_id AND s.member_id = member_id(:p, 'pos', 'c7');

-- purchase_summary over a member range: the same rows as over the program
SELECT min(member_id) + 10 AS lo, min(member_id) + 30 AS hi FROM member_scores WHERE program_id = :p \gset
SELECT set_eq(format('SELECT * FROM purchase_summary(%s, %L, %L, %s, %s)', :p, '2021-09-30', 'week', :lo, :hi),
              format('SELECT * FROM purchase_summary(%s, %L, %L) WHERE member_id BETWEEN %s AND %s', :p, '2021-09-30', 'week', :lo, :hi),
              'purchase_summary of a member range: those members'' rows of the program''s summary');
SELECT throws_ok(format('SELECT * FROM purchase_summary(%s, %L, %L)', :p, '2021-09-30', 'month'), '22023', NULL,
                 'purchase_summary: an unknown time unit is refused');

-- after the fit: a purchase of a stored member (back-dated into the
-- calibration period), a new member buying on the calibration end, one
-- buying after it, one never buying
SELECT member_id(:p, 'pos', 'c3') AS c3 \gset
SELECT earn(:c3, 33, reference => 'late', occurred_at => '2021-09-29 12:00+00') \gset
SELECT enroll(:p, 'pos', 'new') AS new_member \gset
SELECT earn(:new_member, 25, occurred_at => '2021-09-30 10:00+00') \gset
SELECT enroll(:p, 'pos', 'later') AS later_member \gset
SELECT earn(:later_member, 25, occurred_at => '2021-10-05 10:00+00') \gset
SELECT enroll(:p, 'pos', 'never') AS never_member \gset
SELECT is((SELECT count(*) FROM member_scores WHERE member_id IN (:new_member, :later_member, :never_member)), 0::bigint,
          'members who came after the fit have no stored row');
SELECT is_empty($$SELECT program_id, member_id, x AS repeat_purchases, round(t_x, 2), round("T", 2), p_alive, expected_purchases_year,
                         expected_avg_spend, clv_year, last_purchase, purchase_model FROM expected_rows
                  EXCEPT SELECT program_id, member_id, repeat_purchases, t_x, customer_age, p_alive, expected_purchases_year,
                                expected_avg_spend, clv_year, last_purchase, purchase_model FROM member_predictions$$,
                'after purchases since the fit, member_predictions still equals the live computation for every member');
SELECT is((SELECT repeat_purchases FROM member_predictions WHERE member_id = :c3),
          (SELECT x + 1 FROM member_scores WHERE member_id = :c3), '... the member who bought again: one more purchase day');
SELECT is((SELECT (repeat_purchases, customer_age, risk_band IS NOT NULL) FROM member_predictions JOIN churn_risk USING (program_id, member_id)
           WHERE member_id = :new_member), (0::bigint, 0.00, true), '... the new member who bought on the calibration end: predicted');
SELECT is((SELECT array_agg(risk_label ORDER BY member_id) FROM churn_risk WHERE member_id IN (:later_member, :never_member)),
          ARRAY['first purchase after the model', 'never bought'], '... the others labelled in churn_risk');
SELECT is((SELECT count(*) FROM member_predictions WHERE program_id = :p),
          (SELECT count(*) FROM purchase_summary(:p, '2021-09-30', 'week')), '... every member once');

-- a refit replaces the rows
SELECT (fit_models(:p, '2021-10-31', 'day')).fitted_at AS refitted_at \gset
SELECT is((SELECT (count(*), min(fitted_at), max(fitted_at)) FROM member_scores WHERE program_id = :p),
          ((SELECT count(*) FROM purchase_summary(:p, '2021-10-31', 'day')), :'refitted_at'::timestamptz, :'refitted_at'::timestamptz),
          'a refit replaces the program''s rows: one per member of the new summary, all of the new fit');
SELECT is((SELECT count(*) FROM member_scores WHERE program_id = :q AND fitted_at = :'fitted_q'), 30::bigint,
          '... and leaves the other program''s alone');
SELECT is_empty($$SELECT program_id, member_id, x, t_x, "T", last_purchase, purchase_model, p_alive, expected_purchases_year,
                         expected_avg_spend, clv_year FROM expected_rows
                  EXCEPT SELECT program_id, member_id, x, t_x, "T", last_purchase, purchase_model, p_alive, expected_purchases_year,
                                expected_avg_spend, clv_year FROM member_scores$$,
                '... with the new model''s figures (days)');

-- set_purchase_model: the stored predictions follow at once
SELECT set_purchase_model(:p, CASE WHEN (SELECT purchase_model FROM latest WHERE program_id = :p) = 'bgnbd' THEN 'mbgnbd' ELSE 'bgnbd' END)
    AS switched \gset
SELECT is((SELECT array_agg(DISTINCT purchase_model) FROM member_scores WHERE program_id = :p), ARRAY[:'switched'],
          'set_purchase_model rewrites the stored predictions with the model chosen');
SELECT is_empty($$SELECT program_id, member_id, purchase_model, p_alive, expected_purchases_year, clv_year FROM expected_rows
                  EXCEPT SELECT program_id, member_id, purchase_model, p_alive, expected_purchases_year, clv_year FROM member_scores$$,
                '... equal to that model''s formulas');

-- row-level security and privileges
CREATE ROLE ps_analyst_q;
GRANT loyalty_analyst TO ps_analyst_q;
SELECT bind_role(:q, 'ps_analyst_q') IS NULL AS bound \gset
CREATE ROLE ps_admin_q;
GRANT loyalty_admin TO ps_admin_q;
SELECT bind_role(:q, 'ps_admin_q') IS NULL AS bound \gset
SET ROLE ps_analyst_q;
SELECT is((SELECT array_agg(DISTINCT program_id) FROM member_predictions), ARRAY[:q::bigint],
          'a role bound to a program sees only its members'' predictions');
RESET ROLE;
SET ROLE ps_admin_q;
SELECT is((SELECT array_agg(DISTINCT program_id) FROM member_scores), ARRAY[:q::bigint],
          '... and an administrator bound to it only its rows of the table (row-level security)');
RESET ROLE;
SET ROLE loyalty_analyst;
SELECT throws_ok('SELECT count(*) FROM loyalty.member_scores', '42501', NULL, 'the analyst role cannot read the table');
SELECT is((SELECT count(*) FROM loyalty.churn_risk WHERE member_id IN (:c3, :new_member, :never_member)), 3::bigint,
          '... but reads the views, stored and computed rows alike');
RESET ROLE;
SET ROLE loyalty_app;
SELECT throws_ok('SELECT count(*) FROM loyalty.member_scores', '42501', NULL, 'nor can the application role');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
