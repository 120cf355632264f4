-- What drivers send reaches the API: points arguments take integers of every
-- width, whole decimals and strings (psycopg2 renders ints as literals,
-- psycopg 3 binds int2/int4/int8 or numeric, node-postgres sends text,
-- JDBC setLong an int8); fractions are refused; points values still pass;
-- and with loyalty on the search path, points and integer arithmetic and
-- comparisons resolve without ambiguity.
BEGIN;
SET search_path = public, loyalty;
SELECT plan(23);

SELECT create_program('drivers', expiry_period => interval '1 year') AS p \gset
SELECT enroll(:p, 'pos', 'drv-1') AS m \gset

-- as each driver binds its parameters
PREPARE award_int2(bigint, smallint) AS SELECT award($1, $2, 'int2');
PREPARE award_int4(bigint, integer) AS SELECT award($1, $2, 'int4');
PREPARE award_int8(bigint, bigint) AS SELECT award($1, $2, 'int8');
PREPARE award_numeric(bigint, numeric) AS SELECT award($1, $2, 'numeric');
PREPARE award_untyped(bigint, unknown) AS SELECT award($1, $2, 'text');
SELECT lives_ok(format('EXECUTE award_int2(%s, 10)', :m), 'a smallint parameter (psycopg 3, small ints)');
SELECT lives_ok(format('EXECUTE award_int4(%s, 20)', :m), 'an integer parameter (psycopg 3, node-postgres typed)');
SELECT lives_ok(format('EXECUTE award_int8(%s, 30)', :m), 'a bigint parameter (JDBC setLong, psycopg 3 large ints)');
SELECT lives_ok(format('EXECUTE award_numeric(%s, 40)', :m), 'a numeric parameter of a whole value (Decimal, BigDecimal)');
SELECT lives_ok(format('EXECUTE award_untyped(%s, %L)', :m, '50'), 'an untyped text parameter (node-postgres)');
SELECT lives_ok(format('SELECT award(%s, 60, %L)', :m, 'literal'), 'an integer literal (psycopg2, psql)');
SELECT lives_ok(format('SELECT award(%s, %L::loyalty.points, %L)', :m, '70', 'points'), 'a points value still passes');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :m), 280::bigint, 'every one of them credited');

SELECT throws_ok(format('SELECT award(%s, 1.5, %L)', :m, 'x'), '22023', NULL, 'a fraction of a point is refused');
SELECT throws_ok(format('SELECT award(%s, %L::numeric, %L)', :m, 'NaN', 'x'), '22023', NULL, 'NaN points are refused');
SELECT throws_ok(format('SELECT award(%s, 9223372036854775808, %L)', :m, 'x'), '22003', NULL,
                 'points beyond the type are out of range');
SELECT lives_ok(format('SELECT adjust(%s, -5, %L)', :m, 'correction'), 'a negative integer adjustment (psycopg2 renders -5)');
SELECT lives_ok(format('SELECT redeem(%s, 5), capture(hold(%s, 10)), release(hold(%s, 3))', :m, :m, :m),
                'redeem, hold and capture take integers');
SELECT lives_ok(format('SELECT reverse(%s, (SELECT max(entry_id) FROM loyalty.ledger WHERE member_id = %s AND kind = %L), points => 1)',
                       :m, :m, 'award'), 'reverse takes integer points');
SELECT is((SELECT count(*) FROM verify()), 0::bigint, 'the books balance');

-- a key replayed with the same points sent as another type is the same request
SELECT award(:m, 7, 'keyed', idempotency_key => 'k-int') AS first \gset
SELECT is(award(:m, '7'::numeric, 'keyed', idempotency_key => 'k-int'), :first::bigint,
          'a replay with the points as numeric returns the first entry');
SELECT throws_ok(format('SELECT award(%s, 8, %L, idempotency_key => %L)', :m, 'keyed', 'k-int'), 'LY002', NULL,
                 'with other points it is another request');

-- the "not given" of expires_at is no value a caller can send
SELECT throws_ok(format('SELECT award(%s, 1, %L, expires_at => %L)', :m, 'past', '2000-01-01 00:00:00+00'),
                 '22023', 'expires_at must lie in the future', 'expires_at at the epoch of timestamps is refused as past');

-- points arithmetic and comparisons with integers stay points, without ambiguity
SELECT is(pg_typeof('5'::points + 1)::text, 'points', 'points + 1 is points');
SELECT is(('5'::points - 1)::bigint, 4::bigint, 'points - 1');
SELECT ok('5'::points = 5 AND 5 < '6'::points AND '5'::points <> 6::smallint, 'points compare with integers');
SELECT is((SELECT pg_typeof(sum(balance))::text FROM accounts), 'points', 'sum(points) is points');
SELECT is(2.5 * 2, 5.0, 'numeric * integer still resolves with loyalty on the search path');

SELECT * FROM finish();
ROLLBACK;
