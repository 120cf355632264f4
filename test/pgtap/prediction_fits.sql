-- Models that degrade gracefully: when the data identify the purchase model
-- (BG/NBD) but not the spend model (Gamma-Gamma: every customer always pays
-- the same), fit_models stores the purchase model with the reason the spend
-- model is missing, and the views predict purchases and give NULL spend and
-- CLV with that reason; a spend model without an expected value (q <= 1,
-- as an earlier version stored) empties those columns, not the views.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(11);

SELECT create_program('flat price') AS p \gset
-- the purchase days of the first 200 customers of the CDNOW sample (data/cdnow,
-- read by psql as the client), one purchase a day at one flat price
CREATE TEMP TABLE raw (line text);
\copy raw FROM 'data/cdnow/CDNOW_sample.txt'
CREATE TEMP TABLE cdnow AS
SELECT split_part(t, ' ', 2)::int AS customer, to_date(split_part(t, ' ', 3), 'YYYYMMDD') AS day, row_number() OVER () AS n
FROM (SELECT regexp_replace(btrim(line), '\s+', ' ', 'g') AS t FROM raw) r;
SELECT count(enroll(:p, 'pos', 'c' || customer)) FROM (SELECT DISTINCT customer FROM cdnow WHERE customer <= 200) c;
SELECT count(earn(member_id(:p, 'pos', 'c' || customer), 10, reference => 'o' || n, occurred_at => day + time '12:00'))
FROM (SELECT DISTINCT ON (customer, day) * FROM cdnow WHERE customer <= 200 ORDER BY customer, day, n) d;
SELECT count(*) AS buyers FROM (SELECT DISTINCT customer FROM cdnow WHERE customer <= 200) c \gset

SELECT lives_ok(format('SELECT loyalty.fit_models(%s, %L)', :p, '1998-06-30'), 'fit_models succeeds without a spend model');
SELECT is((SELECT (bgnbd IS NOT NULL, gamma_gamma IS NULL, gamma_gamma_failure IS NOT NULL) FROM models WHERE program_id = :p),
          (true, true, true), '... the purchase model stored, the spend model not, with the reason');
SELECT is((SELECT count(*) FROM member_predictions WHERE program_id = :p AND p_alive IS NOT NULL
                                                       AND expected_purchases_year IS NOT NULL), :buyers::bigint,
          'every customer''s purchases predicted');
SELECT is((SELECT count(*) FROM member_predictions WHERE program_id = :p AND expected_avg_spend IS NULL AND clv_year IS NULL
                                                       AND spend_model_failure = (SELECT gamma_gamma_failure FROM models WHERE program_id = :p)),
          :buyers::bigint, '... spend and CLV NULL, with the reason');
SELECT is((SELECT count(*) FROM churn_risk WHERE program_id = :p AND risk_band IS NOT NULL), :buyers::bigint,
          'churn_risk lists them in bands');
-- churn_risk is as of the model's day, and names the members it has no band for
SELECT enroll(:p, 'pos', 'never') AS never, enroll(:p, 'pos', 'late') AS late \gset
SELECT earn(:late, 10, reference => 'late-1');
SELECT is((SELECT array_agg(risk_label ORDER BY member_id) FROM churn_risk WHERE member_id IN (:never, :late)),
          ARRAY['never bought', 'first purchase after the model'], 'members without a band are listed, with why');
SELECT is((SELECT count(*) FROM churn_risk WHERE program_id = :p AND as_of = '1998-06-30' AND (last_purchase IS NULL OR last_purchase <= as_of)),
          :buyers::bigint + 2, 'every row as of the calibration end, the last purchase too');
SELECT is((SELECT count(*) FROM churn_risk WHERE program_id = :p AND risk_label = risk_band), :buyers::bigint,
          '... the label is the band where there is one');

-- a spend model stored with q <= 1 (which an earlier version did)
UPDATE models SET gamma_gamma = ROW(6.25, 0.68, 15.44, -100, 200)::gamma_gamma_params, gamma_gamma_failure = NULL
WHERE program_id = :p;
SELECT lives_ok('SELECT * FROM loyalty.churn_risk', 'with q <= 1 an unfiltered churn_risk still answers');
SELECT is((SELECT count(*) FROM member_predictions WHERE program_id = :p AND clv_year IS NULL
                                                       AND spend_model_failure LIKE 'q = 0.68%'), :buyers::bigint,
          '... CLV NULL, and why');
SELECT is((SELECT loyalty.clv(m, 2, 10, 20, 10) FROM models m WHERE m.program_id = :p), NULL::float8,
          'clv() of such a model is NULL');

SELECT * FROM finish();
ROLLBACK;
