-- Fuzzing with generated input (seeded, so a failure can be replayed): the
-- points and tier input functions and the API functions get random bytes,
-- unicode, huge and tiny numbers, NaN and infinities, NULLs and long
-- strings.  Nothing may crash (the test would not finish), and every
-- refusal must carry one of the documented SQLSTATEs.
BEGIN;
SELECT plan(6);
SELECT setseed(0.4242);

CREATE TEMP TABLE seen (target text, sqlstate text, n bigint, PRIMARY KEY (target, sqlstate));
CREATE FUNCTION pg_temp.try(target text, sql text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE st text := '00000';
BEGIN
    BEGIN
        EXECUTE sql;
    EXCEPTION WHEN OTHERS THEN
        st := SQLSTATE;
    END;
    INSERT INTO pg_temp.seen VALUES (target, st, 1) ON CONFLICT ON CONSTRAINT seen_pkey DO UPDATE SET n = seen.n + 1;
END $$;

-- the generated strings
CREATE TEMP TABLE inputs AS
SELECT s FROM (
    SELECT unnest(ARRAY['', ' ', '0', '-0', '+1', ' 42 ', '1e3', '0x10', '1.5', '١٢٣', 'NaN', 'Infinity', '-Infinity',
                        '9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809',
                        repeat('9', 400), '1' || repeat('0', 30), '1 000', '1_000', E'1\t', '--1', '+-1',
                        '0:Gold', '32767:Max', '32768:Over', '-1:Neg', ':', '1:', '1: Gold', '1:Gold ', E'1:Go\x01ld',
                        '1:' || repeat('x', 65), '1:' || repeat('é', 33), '00001:Lead', '1:Gold:Extra', 'Gold']) AS s
    UNION ALL
    -- random printable and non-ASCII code points (no NUL, no surrogates)
    SELECT string_agg(chr(CASE WHEN random() < 0.7 THEN 32 + floor(random() * 95)::int
                               ELSE 160 + floor(random() * 50000)::int END), '')
    FROM generate_series(1, 300) g, generate_series(1, 1 + (g % 40)) k
    GROUP BY g
    UNION ALL
    -- random digit strings with signs and separators
    SELECT string_agg(substr('0123456789+- :.eE', 1 + floor(random() * 17)::int, 1), '')
    FROM generate_series(1, 300) g, generate_series(1, 1 + (g % 25)) k
    GROUP BY g
    UNION ALL
    SELECT repeat(md5(g::text), 300) FROM generate_series(1, 3) g
) x;

SELECT pg_temp.try('points_in', format('SELECT %L::loyalty.points', s)) FROM inputs;
SELECT pg_temp.try('tier_in', format('SELECT %L::loyalty.tier', s)) FROM inputs;
-- (the search path reaches the points operators, as an application's would)
SET LOCAL search_path = public, loyalty;
SELECT pg_temp.try('points arithmetic', format('SELECT %L::loyalty.points %s %s', s, o, v))
FROM (SELECT s FROM inputs WHERE s ~ '^ *[-+]?[0-9]{1,19} *$') i,
     unnest(ARRAY['2', '-1', '0.5::numeric', '1e30::numeric', '''NaN''::numeric', '''Infinity''::numeric',
                  '2147483647', '''9223372036854775807''::loyalty.points', '''-1''::loyalty.points', '''0''::loyalty.points']) v,
     unnest(ARRAY['*', '+', '-', '/']) o
WHERE (o IN ('+', '-', '/') AND v LIKE '%loyalty.points') OR (o = '*' AND v NOT LIKE '%loyalty.points');
RESET search_path;

-- the API with generated arguments
SELECT loyalty.create_program('fuzz') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'f' || g) FROM generate_series(1, 5) g;
SELECT count(loyalty.earn(loyalty.member_id(:p, 'pos', 'f' || g), 1000)) FROM generate_series(1, 5) g;
CREATE TEMP TABLE members AS SELECT member_id FROM loyalty.members WHERE program_id = :p;
-- typed generated values: members (bigint), amounts (numeric), points, ids
CREATE TEMP TABLE mv AS SELECT unnest(ARRAY['NULL', '-1', '0', '9223372036854775807', '-9223372036854775808',
    (SELECT min(member_id)::text FROM members), (SELECT max(member_id)::text FROM members)]) || '::bigint' AS v;
CREATE TEMP TABLE nv AS SELECT '(' || unnest(ARRAY['NULL', '''NaN''', '''Infinity''', '''-Infinity''', '-1', '0',
    '1e-30', '1e30', '123.456', '1e131071']) || ')::numeric' AS v;
CREATE TEMP TABLE pv AS SELECT unnest(ARRAY['NULL', '''-5''', '''0''', '''5''', '''9223372036854775807''',
    '''-9223372036854775808''']) || '::loyalty.points' AS v;
CREATE TEMP TABLE vals AS SELECT v FROM mv;   -- ids of holds and entries too
SELECT pg_temp.try('earn', format('SELECT loyalty.earn(%s, %s)', a.v, b.v)) FROM mv a, nv b;
SELECT pg_temp.try('earn lines', format('SELECT loyalty.earn(%s, NULL, lines => %L)', (SELECT min(member_id) FROM members), l))
FROM unnest(ARRAY['[]', '{}', '[1]', '[{}]', '[{"amount": "x"}]', '[{"amount": -1}]', '[{"amount": 1e400}]',
                  '[{"amount": 5, "category": 7}]', '"s"', 'null', '[{"amount": "NaN"}]']) l;
SELECT pg_temp.try('redeem', format('SELECT loyalty.redeem(%s, %s)', a.v, b.v)) FROM mv a, pv b;
SELECT pg_temp.try('award', format('SELECT loyalty.award(%s, %s, %L)', a.v, b.v, 'fuzz')) FROM mv a, pv b;
SELECT pg_temp.try('adjust', format('SELECT loyalty.adjust(%s, %s, %L)', a.v, b.v, 'fuzz')) FROM mv a, pv b;
SELECT pg_temp.try('hold', format('SELECT loyalty.hold(%s, ''5'', %L::interval)', a.v, t))
FROM vals a, unnest(ARRAY['-1 day', '0', '1 microsecond', '100 years', '1 minute', 'infinity']) t;
SELECT pg_temp.try('capture/release', format('SELECT loyalty.%s(%s)', f, v)) FROM vals, unnest(ARRAY['capture', 'release']) f;
SELECT pg_temp.try('reverse', format('SELECT loyalty.reverse(%s, %s, amount => %s)', a.v, b.v, c.v))
FROM mv a, (SELECT v FROM mv UNION ALL SELECT max(entry_id)::text || '::bigint' FROM loyalty.ledger) b, nv c;
SELECT pg_temp.try('reverse points', format('SELECT loyalty.reverse(%s, %s, points => %s)', a.v, b.v, c.v))
FROM mv a, (SELECT max(entry_id)::text || '::bigint' AS v FROM loyalty.ledger) b, pv c;
SELECT pg_temp.try('earn occurred_at', format('SELECT loyalty.earn(%s, 1, occurred_at => %L)', (SELECT min(member_id) FROM members), t))
FROM unnest(ARRAY['infinity', '-infinity', '4713-01-01 BC', '294276-12-31', '1999-01-01', 'epoch']) t;
SELECT pg_temp.try('analytics', sql) FROM unnest(ARRAY[
    'SELECT loyalty.rfm(''infinity''::timestamptz, 1)', 'SELECT loyalty.rfm(now(), ''NaN'')',
    'SELECT loyalty.bgnbd_fit(''NaN'', 1, 2)', 'SELECT loyalty.bgnbd_fit(3, 5, 4)', 'SELECT loyalty.bgnbd_fit(1.5, 1, 2)',
    'SELECT loyalty.bgnbd_expected(0.2, 4, 0.8, 2.4, 1, 2, 3, ''Infinity'')', 'SELECT loyalty.bgnbd_p_alive(-1, 4, 0.8, 2.4, 1, 2, 3)',
    'SELECT loyalty.gamma_gamma_fit(2, ''Infinity'')', 'SELECT loyalty.gamma_gamma_expected(6, 0.5, 15, 2, 10)',
    'SELECT loyalty.mbgnbd_fit(''NaN'', 1, 2)', 'SELECT loyalty.mbgnbd_fit(3, 5, 4)', 'SELECT loyalty.bgnbd_fit(1, 1, 2, ''NaN'')',
    'SELECT loyalty.mbgnbd_fit(1, 1, 2, ''-Infinity'')', 'SELECT loyalty.gamma_gamma_fit(2, 10, -1)',
    'SELECT loyalty.mbgnbd_expected(0.2, 4, 0.8, 2.4, 1, 2, 3, ''Infinity'')', 'SELECT loyalty.mbgnbd_p_alive(0.2, 4, 0.8, 2.4, 1, 4, 3)',
    'SELECT loyalty.mbgnbd_loglik(0.2, ''NaN'', 0.8, 2.4, 1, 2, 3)', 'SELECT loyalty.bgnbd_expected(0.5, 1, 0.5, 0.5, 0, 0, 10, 52)']) sql;

-- documented SQLSTATEs (README "Errors"), plus what PostgreSQL itself
-- raises before our code runs (22P02 casts, 22003 numeric range, 22008 dates,
-- 22007 interval syntax)
CREATE TEMP TABLE documented AS SELECT unnest(ARRAY['00000', '22P02', '22003', '22023', '22004', '22008', '22007',
    'P0002', '55000', 'LY001', 'LY002', 'LY003', 'LY004', 'LY030', '22021', '22P05', '54000', '22012']) AS st;

SELECT cmp_ok((SELECT sum(n) FROM seen), '>', 2000::numeric, 'thousands of generated calls ran');
SELECT is_empty($$SELECT target, sqlstate, n FROM seen WHERE sqlstate NOT IN (SELECT st FROM documented)$$,
                'every refusal carries a documented SQLSTATE');
SELECT ok((SELECT count(DISTINCT sqlstate) FROM seen WHERE target = 'points_in') >= 3, 'points input: accepted, malformed and out of range seen');
SELECT ok((SELECT count(*) FROM seen WHERE target = 'tier_in' AND sqlstate = '00000') = 1, 'tier input accepted some values');
SELECT ok((SELECT count(*) FROM seen WHERE target = 'earn' AND sqlstate = '00000') = 1, 'some generated earns succeeded');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books still balance');

SELECT * FROM finish();
ROLLBACK;
