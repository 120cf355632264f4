-- The shifted-beta-geometric retention model in C (src/sbg.c): the fit on
-- the data of Fader & Hardie (2007), "How to project customer retention",
-- Table 1 (of 1000 customers, those still renewing after 0..12 years; fit on
-- years 0..7 as the paper does), in serial and parallel plans; the
-- predictions against values computed with 30 digits by mpmath 1.3; input
-- checks; and the data that cannot identify the model (LY030).
BEGIN;
SELECT plan(67);

-- Table 1: "regular" and "high end" customers still renewing after 0..12 years
CREATE TEMP TABLE paper (segment text, year integer, alive integer);
INSERT INTO paper SELECT 'regular', y - 1, a
FROM unnest('{1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173}'::int[]) WITH ORDINALITY u(a, y);
INSERT INTO paper SELECT 'high end', y - 1, a
FROM unnest('{1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394}'::int[]) WITH ORDINALITY u(a, y);
-- as subscriptions, years 0..7: those who left in year t paid t periods; the
-- survivors of year 7 have paid 8 (renewed 7 times) and are still active
CREATE TEMP TABLE paper_subs AS
SELECT c.segment, c.year AS periods, false AS still_active, (p.alive - c.alive)::float8 AS n
FROM paper c JOIN paper p ON p.segment = c.segment AND p.year = c.year - 1 WHERE c.year BETWEEN 1 AND 7
UNION ALL
SELECT segment, 8, true, alive::float8 FROM paper WHERE year = 7;
CREATE TEMP TABLE fits AS
SELECT segment, (f).* FROM (SELECT segment, loyalty.sbg_fit(periods, still_active, n) AS f FROM paper_subs GROUP BY segment) x;

-- the paper's estimates ---------------------------------------------------------------------------
SELECT is((SELECT (round(alpha::numeric, 3), round(beta::numeric, 3)) FROM fits WHERE segment = 'regular'),
          (0.704, 1.182), 'regular: alpha 0.704, beta 1.182, as published');
SELECT is((SELECT (round(alpha::numeric, 3), round(beta::numeric, 3)) FROM fits WHERE segment = 'high end'),
          (0.668, 3.806), 'high end: alpha 0.668, beta 3.806, as published');
-- the maximum itself, solved with mpmath (alpha 0.7040772985, beta 1.182043026; 0.6680883511, 3.806094964)
SELECT ok((SELECT abs(alpha - 0.7040772985) < 1e-6 AND abs(beta - 1.182043026) < 1e-6 FROM fits WHERE segment = 'regular'),
          'regular: the maximum to 1e-6');
SELECT ok((SELECT abs(alpha - 0.6680883511) < 1e-6 AND abs(beta - 3.806094964) < 1e-6 FROM fits WHERE segment = 'high end'),
          'high end: the maximum to 1e-6');
SELECT ok((SELECT abs(loglik - -1680.26518846) < 1e-6 AND subscriptions = 1000 FROM fits WHERE segment = 'regular'),
          'regular: log-likelihood -1680.26518846 (mpmath) over 1000 customers');
SELECT ok((SELECT abs(loglik - -1611.15814739) < 1e-6 AND subscriptions = 1000 FROM fits WHERE segment = 'high end'),
          'high end: log-likelihood -1611.15814739 (mpmath) over 1000 customers');
SELECT ok((SELECT abs(sum(n * loyalty.sbg_loglik(f.alpha, f.beta, s.periods, s.still_active)) - f.loglik) < 1e-9
           FROM paper_subs s JOIN fits f USING (segment) WHERE segment = 'regular' GROUP BY f.loglik),
          'sbg_loglik summed over the customers is the fit''s log-likelihood');
SELECT ok(abs((SELECT sum(n * loyalty.sbg_loglik(1, 1, periods, still_active)) FROM paper_subs WHERE segment = 'regular')
              - -1741.7302621770136) < 1e-9, 'the log-likelihood at alpha = beta = 1 (mpmath: -1741.7302621770136)');

-- the projection: years 8..12 were held out; the paper's point is that the
-- sBG curve follows them (measured: regular within 0.31 points, high end
-- within 1.60 points of the survival of Table 1)
SELECT is((SELECT array_agg(round(100 * loyalty.sbg_survival(f.alpha, f.beta, p.year)::numeric, 1) ORDER BY p.year)
           FROM paper p JOIN fits f USING (segment) WHERE segment = 'regular' AND p.year BETWEEN 8 AND 12),
          '{22.0, 20.4, 19.1, 18.0, 17.0}'::numeric[], 'regular: projected survival in years 8..12 (%)');
SELECT is((SELECT array_agg(round(100 * loyalty.sbg_survival(f.alpha, f.beta, p.year)::numeric, 1) ORDER BY p.year)
           FROM paper p JOIN fits f USING (segment) WHERE segment = 'high end' AND p.year BETWEEN 8 AND 12),
          '{46.0, 43.6, 41.4, 39.5, 37.8}'::numeric[], 'high end: projected survival in years 8..12 (%)');
SELECT ok((SELECT max(abs(100 * loyalty.sbg_survival(f.alpha, f.beta, p.year) - p.alive / 10.0)) < 0.35
           FROM paper p JOIN fits f USING (segment) WHERE segment = 'regular' AND p.year BETWEEN 8 AND 12),
          'regular: within 0.35 points of the held-out years');
SELECT ok((SELECT max(abs(100 * loyalty.sbg_survival(f.alpha, f.beta, p.year) - p.alive / 10.0)) < 1.65
           FROM paper p JOIN fits f USING (segment) WHERE segment = 'high end' AND p.year BETWEEN 8 AND 12),
          'high end: within 1.65 points of the held-out years');

-- one row per customer, and the same in parallel (partial states serialized and combined)
CREATE TEMP TABLE rows_regular AS
SELECT s.periods, s.still_active FROM paper_subs s, generate_series(1, s.n::int) WHERE s.segment = 'regular';
CREATE TABLE sbg_rows (periods integer, still_active boolean);      -- not temporary: parallel workers read it
INSERT INTO sbg_rows SELECT periods, still_active FROM rows_regular, generate_series(1, 50);
ANALYZE sbg_rows;
SELECT is((SELECT (round((f).alpha::numeric, 9), round((f).beta::numeric, 9))
           FROM (SELECT loyalty.sbg_fit(periods, still_active) f FROM rows_regular) x),
          (SELECT (round(alpha::numeric, 9), round(beta::numeric, 9)) FROM fits WHERE segment = 'regular'),
          'one row per customer gives the weighted fit');
SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial AS SELECT (loyalty.sbg_fit(periods, still_active)).* FROM sbg_rows;
SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2; SET LOCAL parallel_leader_participation = off;
CREATE TEMP TABLE plan_text (line text);
DO $$
DECLARE l text;
BEGIN
    FOR l IN EXPLAIN SELECT loyalty.sbg_fit(periods, still_active) FROM sbg_rows LOOP
        INSERT INTO plan_text VALUES (l);
    END LOOP;
END $$;
SELECT ok(EXISTS (SELECT FROM plan_text WHERE line ~ 'Partial Aggregate') AND EXISTS (SELECT FROM plan_text WHERE line ~ 'Gather'),
          'the plan is parallel: partial aggregates combined');
SELECT is((SELECT (round(alpha::numeric, 9), round(beta::numeric, 9), round(loglik::numeric, 6), subscriptions)
           FROM (SELECT (loyalty.sbg_fit(periods, still_active)).* FROM sbg_rows) x),
          (SELECT (round(alpha::numeric, 9), round(beta::numeric, 9), round(loglik::numeric, 6), subscriptions) FROM serial),
          'parallel and serial fits of 50,000 rows agree');
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;
SELECT is((SELECT (round(alpha::numeric, 6), round(beta::numeric, 6)) FROM serial),
          (SELECT (round(alpha::numeric, 6), round(beta::numeric, 6)) FROM fits WHERE segment = 'regular'),
          '50 copies of the data: the same maximum (to the search''s tolerance)');

-- predictions against mpmath ---------------------------------------------------------------------
-- S(t) = B(alpha, beta + t) / B(alpha, beta)
CREATE TEMP TABLE ref_s (alpha float8, beta float8, t integer, s float8);
INSERT INTO ref_s VALUES
    (0.668, 3.806, 1, 0.85069289226642825), (0.668, 3.806, 7, 0.48894462089372571),
    (0.668, 3.806, 12, 0.37804042018209041), (0.668, 3.806, 100, 0.10689141008114909),
    (0.704, 1.182, 1, 0.62672322375397667), (0.704, 1.182, 7, 0.23905064169324442),
    (0.704, 1.182, 12, 0.17006257680605061), (0.704, 1.182, 100, 0.040226799145213511);
SELECT is((SELECT count(*) FROM ref_s WHERE abs(loyalty.sbg_survival(alpha, beta, t) / s - 1) < 1e-12), 8::bigint,
          'sbg_survival: 8 values within 1e-12 of mpmath');
SELECT is(loyalty.sbg_survival(0.668, 3.806, 0), 1::float8, 'S(0) = 1');
-- one subscription's log-likelihood (mpmath)
SELECT ok(abs(loyalty.sbg_loglik(0.668, 3.806, 3, false) - -2.5631098284477342) < 1e-12, 'ln P(T = 3)');
SELECT ok(abs(loyalty.sbg_loglik(0.668, 3.806, 8, true) - -0.71550604562657954) < 1e-12, 'ln S(7): active after 8 periods paid');
SELECT is(loyalty.sbg_loglik(0.668, 3.806, 1, true), 0::float8, 'active in its first period: ln S(0) = 0');
-- renewal: S(n) / S(n - 1) (mpmath)
SELECT ok(abs(loyalty.sbg_renewal_probability(0.668, 3.806, 1) - 0.85069289226642825) < 1e-15,
          'the first renewal: S(1)');
SELECT ok(abs(loyalty.sbg_renewal_probability(0.668, 3.806, 8) - 0.94178141886003138) < 1e-15,
          'after 8 periods paid: S(8) / S(7)');
SELECT ok(abs(loyalty.sbg_renewal_probability(0.704, 1.182, 13) - 0.94930145470257814) < 1e-15,
          'after 13 periods paid: S(13) / S(12)');
-- expected remaining periods: the sum of S(n - 1 + k) / S(n - 1), k >= 1, is
-- B(alpha - 1, beta + n) / B(alpha, beta + n - 1) = (beta + n - 1) / (alpha - 1)
-- (mpmath: partial sums of 2000 terms equal the telescoped form to 25 digits)
SELECT is(loyalty.sbg_expected_remaining(1.5, 2, 3), 8::float8, 'expected remaining periods (1.5, 2, 3 paid): 8');
SELECT ok(abs(loyalty.sbg_expected_remaining(3.7, 15, 120) - 49.629629629629626) < 1e-12, '... (3.7, 15, 120 paid): 49.6296');
SELECT is(loyalty.sbg_expected_remaining(0.704, 1.182, 8), NULL::float8, 'alpha <= 1: infinite, NULL');
SELECT is(loyalty.sbg_expected_remaining(1, 1.182, 8), NULL::float8, 'alpha = 1: infinite, NULL');
SELECT is(loyalty.sbg_derl(1.5, 2, 3, 0), 8::float8, 'DERL without discount is the expected remaining periods');
SELECT is(loyalty.sbg_derl(0.704, 1.182, 3, 0), NULL::float8, '... NULL (infinite) for alpha <= 1');
-- DERL(d | n) = sum_{k >= 0} S(n + k) / S(n - 1) / (1 + d)^k, summed directly
-- by mpmath (30 digits, until a term is below 1e-22 of the sum)
CREATE TEMP TABLE ref_derl (alpha float8, beta float8, n integer, d float8, derl float8, what text);
INSERT INTO ref_derl VALUES
    (0.668, 3.806, 8, 0.1, 7.5299495309109694, 'the paper''s high-end survivors after 7 renewals, 10%'),
    (0.704, 1.182, 8, 0.1, 6.8426171372881298, 'regular survivors after 7 renewals, 10%'),
    (0.704, 1.182, 1, 0.0079741404289037411, 9.3286588732063634, 'a new monthly subscriber, 10% a year'),
    (1.5, 2, 3, 0.1, 3.0110496222347497, 'alpha > 1'),
    (2.0, 1.182, 2, 0.1, 1.4396733303464511, 'alpha = 2 (c - a - b = 1)'),
    (1.00005, 0.1, 1, 0.0001, 0.90558583986219579, 'alpha near 1, a small discount'),
    (3.7, 15, 120, 0.5, 2.7733368759491719, 'ten years of months, a large discount'),
    (0.3, 300, 24, 0.0001, 4315.7869317457088, 'a large beta, a small discount'),
    (10, 10000, 1000, 0.0079741404289037411, 113.49321090635928, 'beta 1e4, 1000 periods'),
    (10, 0.1, 100000, 0.0079741404289037411, 124.82939077421609, '100000 periods');
SELECT ok(abs(loyalty.sbg_derl(alpha, beta, n, d) / derl - 1) < 1e-11,
          format('sbg_derl within 1e-11 of mpmath: %s (%s, reference %s)', what, loyalty.sbg_derl(alpha, beta, n, d), derl))
FROM ref_derl ORDER BY what;
-- one call site over 12,001 values (its memo of 10,000 emptied on the way),
-- each asked 2 or 3 times, against the recurrence of the sum:
-- DERL(n) = r(n) (1 + DERL(n + 1) / (1 + d)), r(n) = (beta + n - 1) / (alpha + beta + n - 1)
CREATE TEMP TABLE memo AS
SELECT g % 12001 + 1 AS n, loyalty.sbg_derl(0.704, 1.182, g % 12001 + 1, 0.1) AS derl FROM generate_series(1, 30000) g;
SELECT is((SELECT count(*) FROM (SELECT n FROM memo GROUP BY n HAVING min(derl) = max(derl)) x), 12001::bigint,
          'sbg_derl asked again for the same arguments answers the same');
SELECT ok((SELECT bool_and(abs(a.derl - loyalty.sbg_renewal_probability(0.704, 1.182, a.n) * (1 + b.derl / 1.1)) < 1e-12 * a.derl)
           FROM (SELECT DISTINCT n, derl FROM memo) a JOIN (SELECT DISTINCT n, derl FROM memo) b ON b.n = a.n + 1),
          'DERL(n) = r(n) (1 + DERL(n + 1) / (1 + d)) for n = 1 .. 12000');
-- a new subscriber's discounted expected periods, the first included:
-- 1 + DERL(d | 1) / (1 + d) = 2F1(1, beta; alpha + beta; 1 / (1 + d)) (mpmath)
SELECT ok(abs((1 + loyalty.sbg_derl(0.704, 1.182, 1, 0.0079741404289037411) / 1.0079741404289037411) / 10.254859325296698 - 1) < 1e-12
          AND abs((1 + loyalty.sbg_derl(0.668, 3.806, 1, 0.1) / 1.1) / 5.9225964076127635 - 1) < 1e-12
          AND abs((1 + loyalty.sbg_derl(2.5, 7, 1, 0.1) / 1.1) / 3.5136705342188862 - 1) < 1e-12,
          'a new subscriber''s discounted lifetime: 2F1(1, beta; alpha + beta; 1/(1 + d)) of Fader & Hardie 2010');

-- input checks ------------------------------------------------------------------------------------
SELECT throws_ok('SELECT loyalty.sbg_survival(-1, 2, 3)', '22023', NULL, 'a negative alpha');
SELECT throws_ok('SELECT loyalty.sbg_renewal_probability(1, 0, 3)', '22023', NULL, 'beta 0');
SELECT throws_ok($$SELECT loyalty.sbg_derl('NaN', 2, 3, 0.1)$$, '22023', NULL, 'alpha NaN');
SELECT throws_ok($$SELECT loyalty.sbg_expected_remaining(2, 'Infinity', 3)$$, '22023', NULL, 'beta infinite');
SELECT throws_ok('SELECT loyalty.sbg_renewal_probability(1, 2, 0)', '22023', NULL, 'periods 0 (at least the first period is paid)');
SELECT throws_ok('SELECT loyalty.sbg_loglik(1, 2, -3, true)', '22023', NULL, 'negative periods');
SELECT throws_ok('SELECT loyalty.sbg_survival(1, 2, -1)', '22023', NULL, 'negative t');
SELECT throws_ok('SELECT loyalty.sbg_derl(1, 2, 3, -0.1)', '22023', NULL, 'a negative discount');
SELECT throws_ok($$SELECT loyalty.sbg_derl(1, 2, 3, 'NaN')$$, '22023', NULL, 'a NaN discount');
SELECT throws_ok($$SELECT loyalty.sbg_derl(1, 2, 3, 'Infinity')$$, '22023', NULL, 'an infinite discount');
SELECT throws_ok('SELECT loyalty.sbg_derl(0.5, 3, 10, 1e-8)', '22003', NULL, 'a discount too small to sum: an error, not a wrong number');
SELECT is(loyalty.sbg_derl(NULL, 2, 3, 0.1), NULL::float8, 'NULL in, NULL out');
SELECT throws_ok('SELECT loyalty.sbg_fit(p, false) FROM (VALUES (0)) v(p)', '22023', NULL, 'the fit refuses periods 0');
SELECT throws_ok($$SELECT loyalty.sbg_fit(1, false, 'NaN') $$, '22023', NULL, 'the fit refuses a NaN weight');
SELECT throws_ok('SELECT loyalty.sbg_fit(1, false, -2)', '22023', NULL, 'the fit refuses a negative weight');
SELECT is((SELECT (round((f).alpha::numeric, 9), (f).subscriptions)
           FROM (SELECT loyalty.sbg_fit(p, a, n) f FROM (SELECT periods, still_active, n FROM paper_subs WHERE segment = 'regular'
                 UNION ALL VALUES (NULL, true, 5), (3, NULL, 5), (3, true, NULL), (2, true, 0)) v(p, a, n)) x),
          (SELECT (round(alpha::numeric, 9), 1000::float8) FROM fits WHERE segment = 'regular'),
          'rows with a NULL, and weights of 0, are skipped');
SELECT is((SELECT loyalty.sbg_fit(p, true) FROM generate_series(1, 0) p), NULL::loyalty.sbg_params, 'no rows: NULL');

-- data that cannot identify the model: LY030, not numbers ---------------------------------------
SELECT throws_ok('SELECT loyalty.sbg_fit(p % 5 + 1, true) FROM generate_series(1, 100) p', 'LY030',
                 'the data do not identify the sBG model: no subscription ended', 'nobody churned');
SELECT throws_ok('SELECT loyalty.sbg_fit(1, p % 2 = 0) FROM generate_series(1, 100) p', 'LY030',
                 'the data do not identify the sBG model: no subscription was renewed',
                 'everyone who left, left at period 1 (and nobody still active has renewed)');
SELECT throws_ok($$SELECT loyalty.sbg_fit(p, a, n) FROM (VALUES (1, false, 300), (3, true, 500), (6, true, 200)) v(p, a, n)$$, 'LY030',
                 'the data do not identify the sBG model: no subscription ended after a renewal',
                 'churn only at the first renewal');
SELECT throws_ok($$SELECT loyalty.sbg_fit(p, a, n) FROM (VALUES (1, false, 400), (2, false, 200), (3, false, 100), (4, true, 100)) v(p, a, n)$$,
                 'LY030', 'the data do not identify the sBG model: churn does not fall with tenure',
                 'half leave at every renewal (one rate for all fits as well as any mix)');
-- churn rising with tenure (30%, 40%, 50%): the search runs off, and the
-- shared fit's error gets a hint about subscriptions, not purchases
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text; m text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, h = PG_EXCEPTION_HINT;
    RETURN st || ': ' || m || ' / ' || h;
END $f$;
SELECT matches(pg_temp.error_of($$SELECT loyalty.sbg_fit(p, a, n) FROM (VALUES (1, false, 300), (2, false, 280), (3, false, 210), (4, true, 210)) v(p, a, n)$$),
               '^LY030: the data do not identify the sBG model: (alpha|beta) runs off to [0-9.e+]+ / Fit again when more subscriptions have been through more renewals\.$',
               'churn rising with tenure: LY030 as the search runs off, with a hint about subscriptions');
SELECT throws_ok('SELECT loyalty.sbg_fit(p, p = 2) FROM generate_series(1, 3) p', 'LY030',
                 'the sBG model needs at least 10 subscriptions, got 3', 'fewer than 10 subscriptions');
-- just identified: churn that falls with tenure, a little
SELECT ok((SELECT (f).alpha > 0 AND (f).beta > 0
           FROM (SELECT loyalty.sbg_fit(p, a, n) f FROM (VALUES (1, false, 400), (2, false, 150), (3, false, 70), (3, true, 80), (4, true, 300)) v(p, a, n)) x),
          'churn falling with tenure is fitted');

DROP TABLE sbg_rows;
SELECT * FROM finish();
ROLLBACK;
