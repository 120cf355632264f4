-- tier: text form, validation, ordering, indexes, joins, functions, aggregates, binary COPY
SET search_path = loyalty, public;
\set VERBOSITY terse
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- valid literals and canonical output
SELECT v, v::tier AS t, tier_rank(v::tier) AS rank, tier_name(v::tier) AS name
FROM (VALUES ('0:Member'), ('02:Gold'), ('1:Silver: plus'), ('3:Platinum ★'), ('32767:Top'),
             ('5:a b')) AS t(v);
-- 64-byte name is fine, 65 is not
SELECT length(tier_name(('1:' || repeat('x', 64))::tier)) AS len64;
-- rejections
SELECT v, pg_temp.err(format('SELECT %L::loyalty.tier', v))
FROM (VALUES (''), ('Gold'), (':Gold'), ('1:'), ('1Gold'), ('-1:Gold'), ('+1:Gold'), (' 1:Gold'),
             ('1: Gold'), ('1:Gold '), (E'1:Go\tld'), ('32768:Gold'), ('99999999999999999999:Gold'),
             ('1:' || repeat('x', 65))) AS t(v);
SELECT pg_temp.err('SELECT loyalty.tier(-1, ''Gold'')');
SELECT pg_temp.err('SELECT loyalty.tier(40000, ''Gold'')');
SELECT pg_temp.err('SELECT loyalty.tier(1, '''')');
SELECT tier(2, 'Gold') = '2:Gold'::tier AS constructor_matches;

-- comparisons: rank first, then name
SELECT a, b, a = b AS eq, a <> b AS ne, a < b AS lt, a <= b AS le, a > b AS gt, a >= b AS ge,
       tier_cmp(a, b) AS cmp
FROM (VALUES ('1:Silver'::tier, '2:Gold'::tier), ('2:Gold', '2:Gold'), ('10:A', '9:Z'),
             ('2:Gold', '2:Golden'), ('2:Gold', '2:Bronze')) AS t(a, b);

CREATE TABLE tt (id serial, t tier);
INSERT INTO tt (t) SELECT tier(g % 4, (ARRAY['Member', 'Silver', 'Gold', 'Platinum'])[g % 4 + 1])
FROM generate_series(1, 2000) g;
ANALYZE tt;
SELECT t, count(*) FROM tt GROUP BY t ORDER BY t;
SELECT DISTINCT t FROM tt ORDER BY t DESC;
SELECT min(t), max(t) FROM tt;
SELECT max(t) FROM tt WHERE false;

CREATE INDEX tt_btree ON tt (t);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM tt WHERE t = '2:Gold';
SELECT count(*) FROM tt WHERE t = '2:Gold';
EXPLAIN (COSTS OFF) SELECT t FROM tt WHERE t > '2:Gold' ORDER BY t LIMIT 1;
SELECT t FROM tt WHERE t > '2:Gold' ORDER BY t LIMIT 1;
DROP INDEX tt_btree;
CREATE INDEX tt_hash ON tt USING hash (t);
EXPLAIN (COSTS OFF) SELECT count(*) FROM tt WHERE t = '1:Silver';
SELECT count(*) FROM tt WHERE t = '1:Silver';
RESET enable_seqscan;
RESET enable_bitmapscan;

CREATE TABLE ladder (t tier, benefit text);
INSERT INTO ladder VALUES ('0:Member', 'none'), ('1:Silver', 'x1.25'), ('2:Gold', 'x1.5'), ('3:Platinum', 'x2');
SET enable_hashjoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT l.benefit, count(*) FROM tt JOIN ladder l USING (t) GROUP BY 1;
SELECT l.benefit, count(*) FROM tt JOIN ladder l USING (t) GROUP BY 1 ORDER BY 1;
RESET enable_hashjoin;
SET enable_mergejoin = off;
EXPLAIN (COSTS OFF) SELECT l.benefit, count(*) FROM tt JOIN ladder l USING (t) GROUP BY 1;
SELECT l.benefit, count(*) FROM tt JOIN ladder l USING (t) GROUP BY 1 ORDER BY 1;
RESET enable_mergejoin;
RESET enable_nestloop;

-- parallel min/max run the combine function
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT min(t), max(t) FROM tt;
SELECT min(t), max(t) FROM tt;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- binary form: int4 rank, then the name
SELECT tier_send('2:Gold');
COPY tt TO '/tmp/loyalty_tier_regress.bin' WITH (FORMAT binary);
CREATE TABLE tt2 (id int, t tier);
COPY tt2 FROM '/tmp/loyalty_tier_regress.bin' WITH (FORMAT binary);
SELECT (SELECT count(*) FROM (SELECT id, t FROM tt EXCEPT SELECT id, t FROM tt2) d) AS missing,
       (SELECT count(*) FROM (SELECT id, t FROM tt2 EXCEPT SELECT id, t FROM tt) d) AS extra;
-- a binary file whose rank is out of range is refused like text input
COPY (SELECT 1, '\x00009c40476f6c64'::bytea) TO '/tmp/loyalty_tier_regress_bad.bin' WITH (FORMAT binary);
SELECT pg_temp.err('COPY tt2 FROM ''/tmp/loyalty_tier_regress_bad.bin'' WITH (FORMAT binary)');
DROP TABLE tt, tt2, ladder;
