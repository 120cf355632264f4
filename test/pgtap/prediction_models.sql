-- MBG/NBD and the penalizer.
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
SELECT plan(49);

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

SELECT * FROM finish();
ROLLBACK;
