-- MBG/NBD.
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
SELECT plan(40);

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

SELECT * FROM finish();
ROLLBACK;
