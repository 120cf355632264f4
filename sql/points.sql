-- points: I/O, edges, arithmetic, rounding, casts, operators, indexes,
-- aggregates (serial and parallel) and binary COPY.
SET search_path = loyalty, public;
\set VERBOSITY terse
-- prints the SQLSTATE and message of a failing statement, or 'ok'
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- text input: optional sign, digits, surrounding white space; canonical output
SELECT v, v::points AS p
FROM (VALUES ('0'), ('-0'), ('+42'), ('  17  '), ('007'), ('-1'),
             ('9223372036854775807'), ('-9223372036854775808'),
             ('+0009223372036854775807')) AS t(v);

-- everything else is refused, with 22P02 or 22003
SELECT v, pg_temp.err(format('SELECT %L::loyalty.points', v))
FROM (VALUES (''), (' '), ('-'), ('+'), ('1.0'), ('1e3'), ('1,000'), ('1_000'),
             ('1 000'), ('12pts'), ('0x10'), ('--1'), ('+-1'), ('NaN'), ('Infinity'),
             (E'1\n2'), ('١٢'), ('9223372036854775808'), ('-9223372036854775809'),
             ('99999999999999999999999999')) AS t(v);

-- binary send: eight big-endian bytes
SELECT points_send('1'::points), points_send('-2'::points),
       points_send('9223372036854775807'::points);

-- addition, subtraction, negation at the int64 edges
SELECT '9223372036854775806'::points + '1'::points AS max,
       '-9223372036854775807'::points - '1'::points AS min,
       -('9223372036854775807'::points) AS neg_max,
       -('-5'::points) AS five,
       abs('-9223372036854775807'::points) AS abs_edge;
SELECT pg_temp.err('SELECT ''9223372036854775807''::loyalty.points OPERATOR(loyalty.+) ''1''::loyalty.points');
SELECT pg_temp.err('SELECT ''-9223372036854775808''::loyalty.points OPERATOR(loyalty.-) ''1''::loyalty.points');
SELECT pg_temp.err('SELECT OPERATOR(loyalty.-) ''-9223372036854775808''::loyalty.points');
SELECT pg_temp.err('SELECT loyalty.abs(''-9223372036854775808''::loyalty.points)');

-- multiplication by an integer (both orders) and its overflow
SELECT '25'::points * 4 AS a, 3 * '-7'::points AS b, '4611686018427387903'::points * 2 AS c;
SELECT pg_temp.err('SELECT ''4611686018427387904''::loyalty.points OPERATOR(loyalty.*) 2');
SELECT pg_temp.err('SELECT -1 OPERATOR(loyalty.*) ''-9223372036854775808''::loyalty.points');

-- multiplication by numeric: the * operator rounds half away from zero;
-- floor/ceil/round/trunc and points_mul(rule) make the rule explicit
SELECT f,
       '10'::points * f AS op, f * '10'::points AS op_commuted,
       points_mul_round('10', f) AS round, points_mul_floor('10', f) AS floor,
       points_mul_ceil('10', f) AS ceil, points_mul_trunc('10', f) AS trunc
FROM (VALUES (0.25), (0.35), (-0.25), (-0.35), (1.5), (0), (0.001)) AS t(f);
SELECT points_mul('3', 0.5, 'round') AS r, points_mul('3', 0.5, 'floor') AS f,
       points_mul('3', 0.5, 'ceil') AS c, points_mul('-3', 0.5, 'trunc') AS t;
SELECT pg_temp.err('SELECT loyalty.points_mul(''3'', 0.5, ''bankers'')');
SELECT pg_temp.err('SELECT ''1''::loyalty.points OPERATOR(loyalty.*) ''NaN''::numeric');
SELECT pg_temp.err('SELECT ''1''::loyalty.points OPERATOR(loyalty.*) ''Infinity''::numeric');
SELECT pg_temp.err('SELECT ''9223372036854775807''::loyalty.points OPERATOR(loyalty.*) 1.5');
SELECT '9223372036854775807'::points * 1.0 AS exact_edge,
       points_mul_floor('-9223372036854775807', 1.0000000000000000001) AS floor_edge_ok;
SELECT pg_temp.err('SELECT loyalty.points_mul_floor(''-9223372036854775808'', 1.0000000000000000001)');

-- points / points is an exact numeric ratio
SELECT '1'::points / '3'::points AS third, '-10'::points / '4'::points AS neg,
       '9223372036854775807'::points / '-9223372036854775808'::points AS edge;
SELECT pg_temp.err('SELECT ''1''::loyalty.points OPERATOR(loyalty./) ''0''::loyalty.points');

-- comparisons
SELECT a, b, a = b AS eq, a <> b AS ne, a < b AS lt, a <= b AS le, a > b AS gt, a >= b AS ge,
       points_cmp(a, b) AS cmp
FROM (VALUES ('1'::points, '2'::points), ('2', '2'), ('3', '-3'),
             ('-9223372036854775808', '9223372036854775807')) AS t(a, b);

-- casts: int4 and int8 in by assignment, numeric explicitly (whole numbers only)
CREATE TABLE pt (id serial PRIMARY KEY, p points);
INSERT INTO pt (p) VALUES (1), (2147483647), (9223372036854775807::bigint);
INSERT INTO pt (p) VALUES ('-5');
SELECT p FROM pt ORDER BY id;
SELECT 12::points AS from_int4, 5000000000::bigint::points AS from_int8,
       12.000::numeric::points AS from_numeric, (-3)::numeric::points AS neg_numeric;
SELECT v, pg_temp.err(format('SELECT %s::numeric::loyalty.points', v))
FROM (VALUES ('12.5'), ('0.0001'), ('''NaN'''), ('''Infinity'''), ('''-Infinity'''),
             ('9223372036854775808'), ('-9223372036854775809')) AS t(v);
-- out of points: int8 and numeric always, int4 when in range
SELECT '-9223372036854775808'::points::bigint AS to_int8,
       '9223372036854775807'::points::numeric AS to_numeric,
       '-2147483648'::points::integer AS to_int4;
SELECT pg_temp.err('SELECT ''2147483648''::loyalty.points::integer');
-- points never turns into a bigint implicitly; it passes where a numeric
-- does (an exact widening), and with integers it stays points
SELECT pg_typeof('1'::loyalty.points OPERATOR(pg_catalog.+) 1::bigint) AS as_numeric,
       pg_typeof('1'::loyalty.points OPERATOR(loyalty.+) 1) AS with_integer,
       '9223372036854775807'::loyalty.points OPERATOR(pg_catalog.+) 1 AS numeric_does_not_overflow;
SELECT pg_temp.err('SELECT ''9223372036854775807''::loyalty.points OPERATOR(loyalty.+) 1');
SELECT pg_temp.err('SELECT loyalty.points_pl(1::bigint, 1::bigint)');
-- ...but a value assigned into an int column converts
CREATE TEMP TABLE ints (i integer, b bigint, n numeric);
INSERT INTO ints SELECT p, p, p FROM pt WHERE p < '3';
SELECT * FROM ints ORDER BY i;
SELECT pg_temp.err('INSERT INTO ints (i) SELECT p FROM pt WHERE p > ''2147483647''');

-- monetary value of points at a rate
SELECT points_value('12345', 0.01) AS money, points_value('-200', 0.005) AS neg,
       points_value('9223372036854775807', 0.01) AS big;
SELECT pg_temp.err('SELECT loyalty.points_value(''1'', -0.01)');
SELECT pg_temp.err('SELECT loyalty.points_value(''1'', ''NaN'')');

-- indexes, ORDER BY, GROUP BY, DISTINCT, merge and hash joins
CREATE TABLE pts AS SELECT g AS id, ((g % 100) - 50)::bigint::points AS p FROM generate_series(1, 5000) g;
CREATE INDEX pts_p_btree ON pts (p);
ANALYZE pts;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM pts WHERE p = '7';
EXPLAIN (COSTS OFF) SELECT p FROM pts WHERE p > '48' ORDER BY p;
SELECT count(*) FROM pts WHERE p = '7';
SELECT p, count(*) FROM pts WHERE p > '47' GROUP BY p ORDER BY p;
DROP INDEX pts_p_btree;
CREATE INDEX pts_p_hash ON pts USING hash (p);
EXPLAIN (COSTS OFF) SELECT id FROM pts WHERE p = '7';
SELECT count(*) FROM pts WHERE p = '7';
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT DISTINCT p FROM pts WHERE p < '-47' ORDER BY p DESC;
SET enable_hashjoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pts a JOIN pt b ON a.p = b.p;
SELECT count(*) FROM pts a JOIN pt b ON a.p = b.p;
RESET enable_hashjoin;
SET enable_mergejoin = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pts a JOIN pt b ON a.p = b.p;
SELECT count(*) FROM pts a JOIN pt b ON a.p = b.p;
SET enable_hashagg = on;
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT p, count(*) FROM pts GROUP BY p;
SELECT count(*) FROM (SELECT p, count(*) FROM pts GROUP BY p) s;
RESET enable_mergejoin;
RESET enable_nestloop;
RESET enable_sort;
RESET enable_hashagg;

-- aggregates agree with int8 arithmetic on the same rows
SELECT sum(p) AS sum, min(p) AS min, max(p) AS max, avg(p) AS avg,
       sum(p::bigint) AS sum_int8, avg(p::bigint) AS avg_int8
FROM pts;
SELECT sum(p), min(p), max(p), avg(p) FROM pts WHERE false;
SELECT avg(p) FROM (VALUES ('9223372036854775807'::points), ('9223372036854775807')) t(p);
SELECT pg_temp.err('SELECT loyalty.sum(p) FROM (VALUES (''9223372036854775807''::loyalty.points), (''1'')) t(p)');
-- min/max use the btree index through SORTOP
CREATE INDEX pts_p_btree ON pts (p);
EXPLAIN (COSTS OFF) SELECT max(p) FROM pts;
SELECT max(p), min(p) FROM pts;

-- parallel plans run the combine (and avg's serialize/deserialize) functions
CREATE TABLE pbig AS SELECT g AS id, g % 3 AS k, (g % 1000)::bigint::points AS p FROM generate_series(1, 200000) g;
ANALYZE pbig;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT sum(p), min(p), max(p), avg(p) FROM pbig;
SELECT sum(p), min(p), max(p), avg(p) FROM pbig;
SELECT sum(p::bigint), min(p::bigint), max(p::bigint), avg(p::bigint) FROM pbig;
EXPLAIN (COSTS OFF) SELECT k, sum(p), avg(p) FROM pbig GROUP BY k;
SELECT k, sum(p), avg(p) FROM pbig GROUP BY k ORDER BY k;
SELECT k, sum(p::bigint), avg(p::bigint) FROM pbig GROUP BY k ORDER BY k;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- binary COPY round trip (server-side file: the test cluster runs on this host)
CREATE TABLE pcopy (p points);
INSERT INTO pcopy VALUES ('0'), ('-9223372036854775808'), ('9223372036854775807'), ('42'), (NULL);
COPY pcopy TO '/tmp/loyalty_points_regress.bin' WITH (FORMAT binary);
CREATE TABLE pcopy2 (p points);
COPY pcopy2 FROM '/tmp/loyalty_points_regress.bin' WITH (FORMAT binary);
SELECT p FROM pcopy2 ORDER BY p NULLS FIRST;
SELECT (SELECT count(*) FROM (SELECT p FROM pcopy EXCEPT ALL SELECT p FROM pcopy2) d) AS missing,
       (SELECT count(*) FROM (SELECT p FROM pcopy2 EXCEPT ALL SELECT p FROM pcopy) d) AS extra;
-- a binary file with a 4-byte field where points wants 8 is refused (22P03)
COPY (SELECT 1::integer) TO '/tmp/loyalty_points_regress_bad.bin' WITH (FORMAT binary);
SELECT pg_temp.err('COPY pcopy2 FROM ''/tmp/loyalty_points_regress_bad.bin'' WITH (FORMAT binary)');

DROP TABLE pt, pts, pbig, pcopy, pcopy2;
