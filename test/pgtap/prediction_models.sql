-- MBG/NBD, the penalizer and the purchase model per program.
--
-- MBG/NBD's formulas (log-likelihood, P(alive), conditional expected
-- purchases, and E[X(t)] from the first purchase, what model_tracking adds
-- up) against values computed from the model's definition alone: by
-- tools/btyd_reference.py, which integrates what one customer with known
-- purchase rate and dropout probability does over their Gamma and Beta
-- distributions by quadrature (mpmath 1.3, 20 digits), without the closed
-- forms.  Its rows are pasted below; rerun it (a quarter of an hour) to
-- check them.  Within 1e-9, for x = 0 too, and for a < 1, where the closed
-- forms are their analytic continuation.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(83);

CREATE TEMP TABLE ref (what text, model text, r float8, alpha float8, a float8, b float8, x float8, tx float8, age float8,
                       horizon float8, value float8);
INSERT INTO ref VALUES
    ('loglik', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 38.86, NULL, -0.53983746353101475),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 38.86, NULL, 0.3897350809187629),
    ('expected', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 38.86, 39, 0.15401274667514669),
    ('loglik', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 77, NULL, -0.65335160328275415),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 77, NULL, 0.31637652137170124),
    ('expected', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 77, 52, 0.09342457131523463),
    ('loglik', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 2, 30.43, 38.86, NULL, -9.4855513145339316),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 2, 30.43, 38.86, NULL, 0.70620226511848728),
    ('expected', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 2, 30.43, 38.86, 39, 1.2629606232673657),
    ('loglik', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 7, 35, 38, NULL, -21.943352981424208),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 7, 35, 38, NULL, 0.85064675168222188),
    ('expected', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 7, 35, 38, 520, 21.381417671450765),
    ('loglik', 'mbgnbd', 1.2, 0.5, 3.5, 1.1, 0, 0, 10, NULL, -0.26518559665451483),
    ('p_alive', 'mbgnbd', 1.2, 0.5, 3.5, 1.1, 0, 0, 10, NULL, 0.0080749592824731335),
    ('expected', 'mbgnbd', 1.2, 0.5, 3.5, 1.1, 0, 0, 10, 52, 0.011319107371079544),
    ('loglik', 'mbgnbd', 1.2, 0.5, 3.5, 1.1, 3, 5, 10, NULL, -9.7257830743394436),
    ('p_alive', 'mbgnbd', 1.2, 0.5, 3.5, 1.1, 3, 5, 10, NULL, 0.071916893521372343),
    ('expected', 'mbgnbd', 1.2, 0.5, 3.5, 1.1, 3, 5, 10, 52, 0.20791483653481888),
    ('loglik', 'mbgnbd', 0.3, 2.0, 0.5, 4.0, 0, 0, 20, NULL, -0.60870849272116525),
    ('p_alive', 'mbgnbd', 0.3, 2.0, 0.5, 4.0, 0, 0, 20, NULL, 0.7957715553153893),
    ('expected', 'mbgnbd', 0.3, 2.0, 0.5, 4.0, 0, 0, 20, 100, 0.90738690562616692),
    ('loglik', 'mbgnbd', 0.3, 2.0, 0.5, 4.0, 12, 40, 50, NULL, -31.637206262330566),
    ('p_alive', 'mbgnbd', 0.3, 2.0, 0.5, 4.0, 12, 40, 50, NULL, 0.69820704227486625),
    ('expected', 'mbgnbd', 0.3, 2.0, 0.5, 4.0, 12, 40, 50, 26, 3.9496923571926768),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 10, NULL, 0.52223373278210473),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 30, NULL, 0.4174047963816149),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 66, NULL, 0.3326976575055772),
    ('p_alive', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 78, NULL, 0.31502118528639048),
    ('unconditional', 'bgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 0, 1, 0.081436561474793896),
    ('unconditional', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 0, 1, 0.053084795263701834),
    ('unconditional', 'bgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 0, 39, 1.5811017861784444),
    ('unconditional', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 0, 39, 1.1829536655971725),
    ('unconditional', 'bgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 0, 78, 2.3177797468143198),
    ('unconditional', 'mbgnbd', 0.525, 6.183, 0.891, 1.614, 0, 0, 0, 78, 1.8047575775531415),
    ('unconditional', 'bgnbd', 1.2, 0.5, 3.5, 1.1, 0, 0, 0, 52, 1.4293644804002822),
    ('unconditional', 'mbgnbd', 1.2, 0.5, 3.5, 1.1, 0, 0, 0, 52, 0.43522623667818626),
    ('unconditional', 'bgnbd', 0.3, 2.0, 0.5, 4.0, 0, 0, 0, 500, 19.109927214987975),
    ('unconditional', 'mbgnbd', 0.3, 2.0, 0.5, 4.0, 0, 0, 0, 500, 18.614866027411229);

SELECT ok(abs(CASE WHEN what = 'loglik' THEN mbgnbd_loglik(r, alpha, a, b, x, tx, age)
                   WHEN what = 'p_alive' THEN mbgnbd_p_alive(r, alpha, a, b, x, tx, age)
                   WHEN model = 'mbgnbd' THEN mbgnbd_expected(r, alpha, a, b, x, tx, age, horizon)
                   ELSE bgnbd_expected(r, alpha, a, b, x, tx, age, horizon) END / value - 1) < 1e-9,
          format('%s %s (r %s, alpha %s, a %s, b %s; x %s, t_x %s, T %s%s) within 1e-9 of %s', model, what, r, alpha, a, b,
                 x, tx, age, ', t ' || horizon, value))
FROM ref ORDER BY what, model, r, x, age, horizon;

-- the issue: a one-time buyer growing older without buying again
SELECT ok((SELECT bool_and(p < lag_p) AND max(p) < 1
           FROM (SELECT mbgnbd_p_alive(0.525, 6.183, 0.891, 1.614, 0, 0, t) AS p,
                        lag(mbgnbd_p_alive(0.525, 6.183, 0.891, 1.614, 0, 0, t), 1, 1.0::float8) OVER (ORDER BY t) AS lag_p
                 FROM generate_series(0, 78) t) s),
          'MBG/NBD: a one-time buyer''s P(alive) falls every week it does not come back (below 1 from week 0)');
SELECT is((SELECT min(bgnbd_p_alive(0.243, 4.414, 0.793, 2.426, 0, 0, t)) FROM generate_series(0, 78) t), 1::float8,
          'BG/NBD: it stays 1 (why the program may choose MBG/NBD)');

-- A program whose customers are all alike: a purchase every 20 weeks on
-- average, and after each a 50% chance of not coming back (random() with a
-- fixed seed; first purchases over four weeks from 2021-01-01, purchases to
-- the end of 2021).  Without heterogeneity the likelihood has no interior
-- maximum for MBG/NBD: it needs a penalizer.
CREATE FUNCTION pg_temp.sim_purchases(seed float8, n int, lam float8, p float8, first date, span int, until date)
RETURNS TABLE (customer int, day date) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM setseed(seed);
  RETURN QUERY
  WITH RECURSIVE u AS MATERIALIZED (SELECT i, k, random() AS u1, random() AS u2 FROM generate_series(1, n) i, generate_series(1, 80) k),
  c AS (
    SELECT i, 1 AS k, 0::float8 AS t, true AS alive FROM generate_series(1, n) i
    UNION ALL
    SELECT c.i, c.k + 1, c.t - ln(u.u1) / lam, u.u2 > p
    FROM c JOIN u ON u.i = c.i AND u.k = c.k
    WHERE c.alive AND first + (c.i % span) + ceil(c.t * 7)::int <= until
  )
  SELECT DISTINCT c.i, first + (c.i % span) + ceil(c.t * 7)::int FROM c WHERE first + (c.i % span) + ceil(c.t * 7)::int <= until;
END $$;
CREATE TEMP TABLE purchases AS SELECT * FROM pg_temp.sim_purchases(0.1, 300, 0.05, 0.5, '2021-01-01', 28, '2021-12-31');
SELECT create_program('steady buyers') AS p \gset
SELECT count(enroll(:p, 'pos', 's' || customer)) AS enrolled FROM (SELECT DISTINCT customer FROM purchases) c \gset
SELECT count(earn(member_id(:p, 'pos', 's' || customer), 10 + customer % 7, reference => 's' || customer || '-' || day,
                  occurred_at => (day + time '12:00') AT TIME ZONE 'UTC')) AS earned
FROM (SELECT * FROM purchases ORDER BY customer, day) o \gset
CREATE TEMP TABLE summary AS
SELECT x::float8 AS x, t_x::float8 AS t_x, "T"::float8 AS age FROM purchase_summary(:p, '2021-09-30', 'week') WHERE "T" > 0;

-- the aggregates' penalizer
SELECT throws_ok('SELECT mbgnbd_fit(x, t_x, age) FROM summary', 'LY030', NULL,
                 'MBG/NBD on customers all alike: not identified without a penalizer');
CREATE TEMP TABLE pen AS
SELECT pen, (mbgnbd_fit(x, t_x, age, pen)).* FROM summary, unnest(ARRAY[0.001, 0.01, 0.1]::float8[]) pen GROUP BY pen;
SELECT ok((SELECT abs(loglik - (SELECT sum(mbgnbd_loglik(f.r, f.alpha, f.a, f.b, x, t_x, age)) FROM summary)) < 1e-9 * abs(loglik)
           FROM pen f WHERE pen = 0.001),
          '... with a penalizer of 0.001 it fits, and its loglik is the log-likelihood without the penalty');
-- lifetimes' objective: -LL / customers + penalizer * (r^2 + alpha^2 + a^2 + b^2)
CREATE FUNCTION pg_temp.objective(r float8, alpha float8, a float8, b float8, pen float8) RETURNS float8 LANGUAGE sql AS $$
    SELECT -avg(loyalty.mbgnbd_loglik(r, alpha, a, b, x, t_x, age)) + pen * (r * r + alpha * alpha + a * a + b * b) FROM summary
$$;
SELECT ok((SELECT bool_and(pg_temp.objective(f.r, f.alpha, f.a, f.b, f.pen) <
                           pg_temp.objective(f.r * CASE WHEN i = 1 THEN s ELSE 1 END, f.alpha * CASE WHEN i = 2 THEN s ELSE 1 END,
                                             f.a * CASE WHEN i = 3 THEN s ELSE 1 END, f.b * CASE WHEN i = 4 THEN s ELSE 1 END, f.pen))
           FROM pen f, generate_series(1, 4) i, unnest(ARRAY[0.99, 1.01]) s WHERE f.pen = 0.001),
          '... at the minimum of lifetimes'' penalized objective (each parameter 1% off is worse)');
SELECT ok((SELECT bool_and(ss < lag_ss AND loglik < lag_ll)
           FROM (SELECT r * r + alpha * alpha + a * a + b * b AS ss, loglik,
                        lag(r * r + alpha * alpha + a * a + b * b) OVER (ORDER BY pen) AS lag_ss, lag(loglik) OVER (ORDER BY pen) AS lag_ll
                 FROM pen) s WHERE lag_ss IS NOT NULL),
          'a stronger penalizer: smaller parameters, a lower likelihood');
SELECT is((SELECT bgnbd_fit(x, t_x, age, 0)::text FROM summary), (SELECT bgnbd_fit(x, t_x, age)::text FROM summary),
          'a penalizer of 0 is none');
SELECT throws_ok('SELECT bgnbd_fit(x, t_x, age, CASE WHEN x > 2 THEN 0.1 ELSE 0.01 END) FROM summary', '22023', NULL,
                 'the penalizer is the fit''s: the same on every row');
SELECT throws_ok('SELECT mbgnbd_fit(x, t_x, age, -0.01) FROM summary', '22023', NULL, 'a negative penalizer is refused');
SELECT throws_ok('SELECT gamma_gamma_fit(x, 10 + x) FROM summary', 'LY030', NULL,
                 'Gamma-Gamma on spend that rises with the purchases alone: not identified without a penalizer');
SELECT ok((SELECT (gamma_gamma_fit(x, 10 + x, 0.001)).q > 0 FROM summary), '... it fits with one');

-- fit_models: both purchase models, each on its own, and the penalizer
SELECT is((SELECT purchase_model FROM programs WHERE program_id = :p), 'auto', 'a program predicts with the better model by default');
SELECT lives_ok(format('SELECT fit_models(%s, %L, %L, 0)', :p, '2021-09-30', 'week'), 'fit_models without a penalizer');
SELECT is((SELECT (bgnbd IS NOT NULL, mbgnbd IS NULL, mbgnbd_failure LIKE 'the data do not identify the MBG/NBD model%', purchase_model,
                   bgnbd_penalizer, mbgnbd_penalizer)
           FROM models WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1),
          (true, true, true, 'bgnbd'::text, 0::float8, NULL::float8),
          '... stores BG/NBD, predicts with it, and says why MBG/NBD is missing');
SELECT throws_ok(format('SELECT set_purchase_model(%s, %L)', :p, 'mbgnbd'), 'LY030', NULL,
                 'a program cannot choose a model its latest fit does not have');
SELECT is((SELECT purchase_model FROM programs WHERE program_id = :p), 'auto', '... and keeps its setting');
SELECT lives_ok(format('SELECT fit_models(%s, %L, %L)', :p, '2021-09-30', 'week'), 'fit_models with the automatic penalizer');
SELECT is((SELECT (bgnbd_penalizer, mbgnbd_penalizer, bgnbd IS NOT NULL, mbgnbd IS NOT NULL)
           FROM models WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1),
          (0::float8, 0.001::float8, true, true), '... MBG/NBD fitted with the least penalizer that identifies it, recorded');
SELECT is((SELECT mbgnbd::text FROM models WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1),
          (SELECT ROW(r, alpha, a, b, loglik, customers)::bgnbd_params::text FROM pen WHERE pen = 0.001),
          '... the fit of mbgnbd_fit with that penalizer');
SELECT is((SELECT purchase_model FROM models WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1),
          (SELECT CASE WHEN (mbgnbd).loglik > (bgnbd).loglik THEN 'mbgnbd' ELSE 'bgnbd' END
           FROM models WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1),
          '... and predicts with the one of the higher log-likelihood');
SELECT lives_ok(format('SELECT fit_models(%s, %L, %L, 0.01)', :p, '2021-09-30', 'week'), 'fit_models with a penalizer');
SELECT is((SELECT (bgnbd_penalizer, mbgnbd_penalizer, gamma_gamma_penalizer) FROM models WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1),
          (0.01::float8, 0.01::float8, 0.01::float8), '... used for every model');
SELECT throws_ok(format('SELECT fit_models(%s, %L, %L, -1)', :p, '2021-09-30', 'week'), '22023', NULL, 'a negative penalizer is refused');
SELECT throws_ok(format('SELECT fit_models(%s, %L, %L, %L::float8)', :p, '2021-09-30', 'week', 'NaN'), '22023', NULL, '... and NaN');
SELECT lives_ok(format('SELECT fit_models(%s, %L, %L)', :p, '2021-09-30', 'week'), 'the automatic penalizer again');

-- the choice, through one entry point for every view
CREATE TEMP VIEW latest AS SELECT * FROM models WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1;
CREATE TEMP VIEW check_predictions AS
SELECT count(*) AS members,
       count(*) FILTER (WHERE pr.purchase_model = m.purchase_model) AS by_chosen,
       count(*) FILTER (WHERE pr.p_alive = round(CASE WHEN m.purchase_model = 'bgnbd'
                                                      THEN bgnbd_p_alive((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T")
                                                      ELSE mbgnbd_p_alive((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, s.x, s.t_x, s."T") END::numeric, 4)
                          AND pr.expected_purchases_year = round(CASE WHEN m.purchase_model = 'bgnbd'
                                   THEN bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T", 365.25 / 7)
                                   ELSE mbgnbd_expected((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, s.x, s.t_x, s."T", 365.25 / 7) END::numeric, 4)) AS agree,
       count(*) FILTER (WHERE s.x = 0 AND pr.p_alive = 1) AS one_time_alive,
       count(*) FILTER (WHERE c.purchase_model = m.purchase_model AND c.p_alive = pr.p_alive) AS churn_agrees
FROM member_predictions pr JOIN purchase_summary(:p, '2021-09-30', 'week') s USING (member_id)
JOIN churn_risk c USING (member_id), latest m;
SELECT is((SELECT (members, by_chosen, agree, churn_agrees) FROM check_predictions), (300::bigint, 300::bigint, 300::bigint, 300::bigint),
          'member_predictions and churn_risk predict every member with the model chosen (auto)');
SELECT is(set_purchase_model(:p, 'bgnbd'), 'bgnbd', 'set_purchase_model: BG/NBD');
SELECT is((SELECT (by_chosen, agree, churn_agrees) FROM check_predictions), (300::bigint, 300::bigint, 300::bigint),
          '... the views follow at once');
SELECT is((SELECT one_time_alive FROM check_predictions), (SELECT count(*) FROM purchase_summary(:p, '2021-09-30', 'week') WHERE x = 0),
          '... every one-time buyer alive');
SELECT is(set_purchase_model(:p, 'mbgnbd'), 'mbgnbd', 'set_purchase_model: MBG/NBD');
SELECT is((SELECT (by_chosen, agree, churn_agrees, one_time_alive) FROM check_predictions), (300::bigint, 300::bigint, 300::bigint, 0::bigint),
          '... the views follow, and no one-time buyer is certainly alive');
SELECT ok((SELECT abs(clv(m, 2, 20, 35, 12) / (
               SELECT gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, 2, 12)
                      * sum((mbgnbd_expected((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, 2, 20, 35, k)
                             - mbgnbd_expected((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, 2, 20, 35, k - 1)) / power(1.0019, k))
               FROM generate_series(1, 52) k) - 1) < 1e-12
           FROM models m WHERE program_id = :p ORDER BY fitted_at DESC LIMIT 1),
          'clv() too');
SELECT is((SELECT array_agg(DISTINCT (model, chosen)::text) FROM model_holdout(:p, '2021-12-31') WHERE repeat_purchases = 'all'),
          ARRAY['(bgnbd,f)', '(mbgnbd,t)'], 'model_holdout: both models, the chosen one marked');
SELECT is((SELECT count(DISTINCT (customers, total_actual)) FROM model_holdout(:p, '2021-12-31') WHERE repeat_purchases = 'all'), 1::bigint,
          '... on the same customers and purchases');
SELECT is((SELECT array_agg(total_predicted ORDER BY model) FROM model_holdout(:p, '2021-12-31') WHERE repeat_purchases = 'all'),
          (SELECT ARRAY[round(sum(bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T", 92 / 7.0))::numeric, 1),
                        round(sum(mbgnbd_expected((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, s.x, s.t_x, s."T", 92 / 7.0))::numeric, 1)]
           FROM purchase_summary(:p, '2021-09-30', 'week') s, latest m),
          '... each model''s own expectations, summed');
SELECT is(set_purchase_model(:p, 'auto'), (SELECT CASE WHEN (mbgnbd).loglik > (bgnbd).loglik THEN 'mbgnbd' ELSE 'bgnbd' END FROM latest),
          'set_purchase_model: auto again');
SELECT throws_ok(format('SELECT set_purchase_model(%s, %L)', :p, 'pareto'), '22023', NULL, 'an unknown model is refused');
UPDATE programs SET purchase_model = 'mbgnbd' WHERE program_id = :p;
SELECT count(*) AS fits FROM models WHERE program_id = :p \gset
SELECT throws_ok(format('SELECT fit_models(%s, %L, %L, 0)', :p, '2021-09-30', 'week'), 'LY030', NULL,
                 'a program that asks for MBG/NBD: LY030 when it cannot be fitted');
SELECT is((SELECT count(*) FROM models WHERE program_id = :p), :fits::bigint, '... and its last fit stays the latest');
UPDATE programs SET purchase_model = 'auto' WHERE program_id = :p;

-- model_tracking: the period totals add up
SELECT is((SELECT (count(*), count(*) FILTER (WHERE chosen), max(cumulative_actual), sum(actual) FILTER (WHERE chosen), max(period)) FROM model_tracking(:p, '2021-12-31')),
          (2 * 53::bigint, 53::bigint,
           (SELECT count(*) FROM purchases p WHERE day > (SELECT min(day) FROM purchases q WHERE q.customer = p.customer)),
           (SELECT count(*) FROM purchases p WHERE day > (SELECT min(day) FROM purchases q WHERE q.customer = p.customer))::numeric, 53),
          'model_tracking: 53 weeks from the first purchase to 2021-12-31 per model, every repeat purchase day counted once');
SELECT ok((SELECT bool_and(abs(e - cumulative_expected) <= 0.01 * period) AND bool_and(expected >= 0)
           FROM (SELECT *, sum(expected) OVER (PARTITION BY model ORDER BY period) AS e FROM model_tracking(:p, '2021-12-31')) t),
          '... the expected purchases per period add up to the cumulative ones');
SELECT ok((SELECT bool_and(cumulative_expected = round((SELECT sum(CASE WHEN t.model = 'bgnbd'
                                 THEN bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, 0, 0, 0, greatest(t.period_end - s.first_purchase, 0) / 7.0)
                                 ELSE mbgnbd_expected((m.mbgnbd).r, (m.mbgnbd).alpha, (m.mbgnbd).a, (m.mbgnbd).b, 0, 0, 0, greatest(t.period_end - s.first_purchase, 0) / 7.0) END)
                              FROM purchase_summary(:p, '2021-09-30', 'week') s)::numeric, 2))
           FROM model_tracking(:p, '2021-12-31') t, latest m WHERE t.period IN (1, 20, 39, 53)),
          '... the cumulative expected: each customer''s E[X(t)] since the first purchase, summed');

-- a member a formula fails for: NULLs and the reason, never an error
UPDATE models m SET bgnbd = ROW(0.5, 1, 0.5, 0.5, -1, 300)::bgnbd_params, purchase_model = 'bgnbd'
WHERE m.program_id = :p AND m.fitted_at = (SELECT fitted_at FROM latest);
SELECT throws_ok('SELECT bgnbd_expected(0.5, 1, 0.5, 0.5, 0, 0, 10, 52)', '22003', NULL,
                 'BG/NBD with a + b = 1: no expectation for x = 0 (its hypergeometric function has c = 0)');
SELECT is((SELECT (count(*) FILTER (WHERE prediction_failure IS NOT NULL AND expected_purchases_year IS NULL AND clv_year IS NULL),
                   count(*) FILTER (WHERE prediction_failure IS NULL AND expected_purchases_year IS NOT NULL))
           FROM member_predictions WHERE program_id = :p),
          ((SELECT count(*) FROM purchase_summary(:p, '2021-09-30', 'week') WHERE x = 0),
           (SELECT count(*) FROM purchase_summary(:p, '2021-09-30', 'week') WHERE x > 0)),
          'member_predictions: those members without expected purchases and with the reason, the others predicted');
UPDATE models m SET bgnbd = ROW(0.5, 1, -0.5, 0.5, -1, 300)::bgnbd_params
WHERE m.program_id = :p AND m.fitted_at = (SELECT fitted_at FROM latest);
SELECT is((SELECT count(*) FROM churn_risk WHERE program_id = :p AND p_alive IS NULL AND risk_band IS NULL
                                               AND risk_label = 'no prediction' AND prediction_failure LIKE '%parameters%'),
          300::bigint, 'churn_risk: no band, and why, rather than an error');

SELECT * FROM finish();
ROLLBACK;
