-- Segments that act: refresh_segments() stores each member's RFM segment
-- (member_rfm) and churn-risk band (churn_risk) on the account, in batches,
-- writing only what changed; earning rules target segments, bands and tags.
-- A procedure that commits, so not in pgTAP.
SET search_path = loyalty, public;
-- the programs' days are UTC days, as the session's
SET timezone = 'UTC';
\set VERBOSITY terse
-- progress notices name the program's id, which depends on the tests before
SET client_min_messages = warning;
SELECT create_program('segments') AS p \gset
-- the first 400 customers of the CDNOW sample (data/cdnow, read by psql as
-- the client), their purchases through earn; one member who never bought
CREATE TEMP TABLE raw (line text);
\copy raw FROM 'data/cdnow/CDNOW_sample.txt'
CREATE TEMP TABLE cdnow AS
SELECT split_part(t, ' ', 2)::int AS customer, to_date(split_part(t, ' ', 3), 'YYYYMMDD') AS day,
       split_part(t, ' ', 5)::numeric AS dollars, row_number() OVER () AS n
FROM (SELECT regexp_replace(btrim(line), '\s+', ' ', 'g') AS t FROM raw) r;
SELECT count(enroll(:p, 'pos', 'c' || customer)) AS enrolled FROM (SELECT DISTINCT customer FROM cdnow WHERE customer <= 400) c;
SELECT count(earn(member_id(:p, 'pos', 'c' || customer), dollars, reference => 'o' || n, occurred_at => day + time '12:00'))
       AS purchases
FROM cdnow WHERE customer <= 400 AND dollars > 0;
SELECT enroll(:p, 'pos', 'none') AS none \gset
SELECT set_member_status(member_id(:p, 'pos', 'c2'), 'closed');
SELECT count(*) FILTER (WHERE segment IS NOT NULL) AS stored_before FROM accounts WHERE program_id = :p;
-- a model, so members have a churn-risk band
SELECT (fit_models(:p, '1998-06-30', 'week')).program_id IS NOT NULL AS fitted;
SELECT risk_band, count(*) FROM churn_risk WHERE program_id = :p GROUP BY 1 ORDER BY 1;

-- batches of 100 members: every buyer gets its segment and band, stored today
CALL refresh_segments(:p, batch_size => 100);
SELECT count(*) FILTER (WHERE a.segment IS DISTINCT FROM r.segment) AS segment_differs,
       count(*) FILTER (WHERE a.risk_band IS DISTINCT FROM c.risk_band) AS band_differs,
       count(*) FILTER (WHERE a.segment IS NOT NULL) AS with_segment,
       count(*) FILTER (WHERE a.risk_band IS NOT NULL) AS with_band,
       count(*) FILTER (WHERE a.segment_since = current_date) AS since_today
FROM accounts a
LEFT JOIN member_rfm r ON r.member_id = a.member_id
LEFT JOIN churn_risk c ON c.member_id = a.member_id
WHERE a.program_id = :p AND a.status = 'active';
-- a closed member keeps neither
SELECT segment IS NULL AND risk_band IS NULL AS closed_has_none FROM accounts WHERE member_id = member_id(:p, 'pos', 'c2');
SELECT segment IS NULL AS no_segment, risk_band IS NULL AS no_band FROM member_segments WHERE member_id = :none;
SELECT count(*) AS closed_in_view FROM member_segments WHERE member_id = member_id(:p, 'pos', 'c2');
-- nothing changed: a second run writes nothing (no account row gets a new version)
SELECT md5(string_agg(xmin::text, ',' ORDER BY member_id)) AS versions FROM accounts WHERE program_id = :p \gset
CALL refresh_segments(:p);
SELECT md5(string_agg(xmin::text, ',' ORDER BY member_id)) = :'versions' AS nothing_written FROM accounts WHERE program_id = :p;

-- the day a member entered its segment is kept while only its band changes
SELECT member_id AS m1, segment AS m1_segment, risk_band AS m1_band FROM accounts
WHERE program_id = :p AND risk_band = 'high' ORDER BY member_id LIMIT 1 \gset
SELECT member_id AS m2, segment AS m2_segment FROM accounts
WHERE program_id = :p AND risk_band = 'low' ORDER BY member_id LIMIT 1 \gset
SELECT :'m1_segment' AS m1_segment, :'m2_segment' AS m2_segment;
SELECT refresh_segments_batch(:p, ARRAY[:m1, :m2], ARRAY[:'m1_segment', 'Hibernating-old'],
                              ARRAY['low', 'low'], '2026-01-01') AS changed;
SELECT member_id = :m1 AS is_m1, segment_since = current_date AS since_today, segment_since = '2026-01-01' AS since_kept FROM accounts WHERE member_id IN (:m1, :m2) ORDER BY member_id;
-- the SQL store writes the same
SET loyalty.fast_store = off;
CALL refresh_segments(:p);
RESET loyalty.fast_store;
SELECT member_id = :m1 AS is_m1, segment = CASE WHEN member_id = :m1 THEN :'m1_segment' ELSE :'m2_segment' END AS segment_back,
       segment_since = current_date AS since_today FROM accounts WHERE member_id IN (:m1, :m2) ORDER BY member_id;

-- earning rules on the stored segment, band and tags
SELECT create_earning_rule(:p, 'segment x2', 'multiply', multiplier => 2, segments => ARRAY[:'m1_segment']) > 0 AS rule;
SELECT create_earning_rule(:p, 'band +7', 'bonus', bonus_points => '7', risk_bands => ARRAY[:'m1_band']) > 0 AS rule;
SELECT create_earning_rule(:p, 'vip +100', 'bonus', bonus_points => '100', tags => '{ VIP }') > 0 AS rule;
SELECT tag_member(:none, 'vip');
SELECT earn(:m1, 10, reference => 'rule-m1') AS m1_points,
       earn(:none, 10, reference => 'rule-none') AS tagged_points;
SELECT details -> 'rules' AS m1_rules FROM ledger WHERE reference = 'rule-m1';
-- bad input is refused, naming what is wrong
SELECT create_earning_rule(:p, 'bad band', 'bonus', bonus_points => '1', risk_bands => '{severe}');
SELECT create_earning_rule(:p, 'bad tag', 'bonus', bonus_points => '1', tags => '{"no spaces"}');
SELECT refresh_segments_batch(:p, ARRAY[:m1], '{}', '{}', current_date);
CALL refresh_segments(:p, batch_size => 0);
SELECT count(*) AS violations FROM verify();
