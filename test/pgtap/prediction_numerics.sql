-- The buy-till-you-die formulas where their special functions are hard:
-- a horizon long against the customer's age (the hypergeometric argument
-- near 1), c - a - b an integer (the continuation's poles cancel), hundreds
-- of purchases (Gamma beyond double range), many purchases with the
-- argument above 1/2 (the continuation's two terms cancel: before Euler's
-- transformation, errors from 1e-5 to a factor of 139 for BG/NBD and of
-- 3,658 for MBG/NBD, or no value).  Each expected value against one computed
-- with 40 digits by mpmath 1.3:
--   lead = (a+b+x-1)/(a-1); z = t/(alpha+T+t)
--   body = 1 - ((alpha+T)/(alpha+T+t))^(r+x) * hyp2f1(r+x, b+x, a+b+x-1, z)
--   E = lead * body * P(alive)   (P(alive) = 1 when x = 0)
BEGIN;
SELECT plan(18);

CREATE TEMP TABLE ref (r float8, alpha float8, a float8, b float8, x float8, tx float8, age float8, horizon float8,
                       expected float8, what text);
INSERT INTO ref VALUES
    (0.5, 0.01, 0.5, 2, 0, 0, 0, 52, 105.280349809342, 'no history, a long horizon (z within 2e-4 of 1; c - a - b = -1)'),
    (0.5, 1e-6, 0.5, 2, 0, 0, 0, 52, 10813.6559224357, 'z within 2e-8 of 1'),
    (0.243, 4.414, 0.793, 2.426, 2, 30.43, 38.86, 39, 1.22602817476714, 'CDNOW''s parameters, the paper''s customer (z < 1/2)'),
    (0.243, 4.414, 0.793, 2.426, 0, 0, 38.86, 39, 0.195098052011263, 'CDNOW, no repeat purchase'),
    (0.243, 4.414, 0.793, 2.426, 1, 1, 77, 520, 0.40234915505314, 'CDNOW, a ten-year horizon (z = 0.86)'),
    (0.243, 4.414, 0.793, 2.426, 200, 70, 77, 52, 0.000402511755045109, '200 purchases'),
    (2, 0.001, 0.3, 5, 10, 50, 60, 1000, 96.809987286536, 'c - a - b = -12.7, z = 0.94'),
    (1.2, 0.5, 3.5, 1.1, 3, 5, 10, 52, 0.140735853872831, 'a > 1'),
    (1.5, 2, 2.5, 3, 0, 0, 10, 100, 2.37555277962417, 'c - a - b = 0'),
    (0.5, 3, 1.5, 1, 0, 0, 5, 500, 1.9508675832459, 'c - a - b = 0, z = 0.98'),
    (0.5, 3, 1.5, 0.5, 11, 40, 50, 600, 6.59177694235048, 'c - a - b = -11 with 11 purchases, z = 0.92'),
    (0.243, 4.414, 0.793, 2.426, 40, 30, 31, 52, 38.19133570227837, 'CDNOW, 40 purchases in 31 weeks: b (1 - z) = 17 (was 1.6e-5 off)'),
    (0.243, 30.898, 0.793, 2.426, 40, 8, 10, 52, 31.83716051206962, 'CDNOW in days: b (1 - z) = 19 (was 6.1e-3 off)'),
    (0.3, 2, 0.5, 4, 40, 8, 10, 13, 1.897074531805666, 'b (1 - z) = 21 (was 267 for 1.90)'),
    (0.243, 4.414, 0.793, 2.426, 40, 62.4, 78, 104, 0.4023133287988627, 'CDNOW, 40 purchases, two years ahead (was 8.4e-3 off)'),
    (0.243, 4.414, 0.793, 2.426, 400, 62.4, 78, 520, 1.672092589701242e-31, '400 purchases, ten years ahead (was no value)');

SELECT ok(abs(loyalty.bgnbd_expected(r, alpha, a, b, x, tx, age, horizon) / expected - 1) < 1e-8,
          format('bgnbd_expected within 1e-8 of the reference: %s (%s, reference %s)', what,
                 loyalty.bgnbd_expected(r, alpha, a, b, x, tx, age, horizon), expected))
FROM ref ORDER BY what;

-- MBG/NBD goes through the same function
SELECT ok(abs(loyalty.mbgnbd_expected(0.3, 2, 0.5, 4, 40, 8, 10, 13) / 1.945157971655225 - 1) < 1e-8,
          'mbgnbd_expected within 1e-8 of the reference where b (1 - z) = 21 (was 7117 for 1.95)');
SELECT ok(abs(loyalty.mbgnbd_expected(0.243, 4.414, 0.793, 2.426, 40, 62.4, 78, 104) / 0.4142861732901905 - 1) < 1e-8,
          'mbgnbd_expected: CDNOW, 40 purchases, two years ahead (was 0.548 for 0.414)');

SELECT * FROM finish();
ROLLBACK;
