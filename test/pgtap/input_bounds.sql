-- Every entry point bounds what it takes: each case below fails with the
-- documented SQLSTATE and writes nothing, or works, and the BI views never
-- overflow whatever the balances.
BEGIN;
SET search_path = public, loyalty;
SELECT plan(16);

SELECT create_program('bounds') AS p \gset
SELECT enroll(:p, 'pos', 'b-1') AS m \gset
CREATE TEMP TABLE n AS SELECT count(*) AS entries FROM ledger;

-- business time: neither year 1 nor 4713 BC, nor any time further back than
-- loyalty.max_past_days (a backfill raises it)
SELECT throws_ok(format('SELECT earn(%s, 10, occurred_at => %L)', :m, '0001-01-01 00:00+00'), '22023', NULL,
                 'occurred_at in year 1 is refused');
SELECT throws_ok(format('SELECT earn(%s, 10, occurred_at => %L)', :m, '4713-01-01 00:00+00 BC'), '22023', NULL,
                 'occurred_at in 4713 BC is refused');
SELECT throws_ok(format('SELECT award(%s, 10, %L, occurred_at => %L)', :m, 'x', '1970-01-01 00:00+00'), '22023', NULL,
                 'the epoch, a common "no date", is too far back by default');
SET LOCAL loyalty.max_past_days = 36600;
SELECT lives_ok(format('SELECT earn(%s, 10, occurred_at => %L)', :m, '1997-03-01 12:00+00'),
                'a backfill of old sales raises loyalty.max_past_days');
RESET loyalty.max_past_days;

-- keys, channels, identities, birthdays
SELECT throws_ok(format('SELECT earn(%s, 10, idempotency_key => %L)', :m, ''), '22023', 'idempotency_key must not be empty',
                 'an empty idempotency key is refused as such, not as a check violation');
SELECT throws_ok(format('SELECT enroll(%s, %L, %L)', :p, E'\t', 'b-2'), '22023', NULL, 'a channel of a tab is blank');
SELECT throws_ok(format('SELECT enroll(%s, %L, %L)', :p, 'pos', E'\n'), '22023', NULL, 'an external id of a newline is blank');
SELECT throws_ok(format('SELECT link_identity(%s, %L, %L)', :m, E' \r\n', 'b-2'), '22023', NULL, 'link_identity too');
SELECT throws_ok(format('SELECT enroll(%s, %L, repeat(%L, 1000000))', :p, 'pos', 'x'), '22001',
                 'external_id is 1000000 characters long; at most 256 are allowed', 'a 1 MB identifier gets a clear limit');
SELECT throws_ok(format('SELECT enroll(%s, %L, %L, birthday => %L)', :p, 'pos', 'b-3', 'infinity'), '22023', NULL,
                 'an infinite birthday is refused');
SELECT throws_ok(format('SELECT enroll(%s, %L, %L, birthday => %L)', :p, 'pos', 'b-3', '9999-12-31'), '22023', NULL,
                 'a birthday in the future is refused');
SELECT lives_ok(format('SELECT enroll(%s, %L, %L, birthday => %L)', :p, 'pos', 'b-3', '1980-02-29'), 'a real birthday is taken');
SELECT is((SELECT count(*) FROM ledger), (SELECT entries FROM n) + 1, 'only the backfill wrote');

-- the BI views sum in numeric: two maximal balances do not overflow them
SELECT enroll(:p, 'pos', 'big-1') AS b1 \gset
SELECT enroll(:p, 'pos', 'big-2') AS b2 \gset
SELECT award(:b1, 9223372036854775807, 'max'), award(:b2, 9223372036854775807, 'max');
SELECT is((SELECT points_outstanding FROM kpi_summary WHERE program_id = :p), 18446744073709551624::numeric,
          'kpi_summary sums beyond 64 bits');
SELECT is((SELECT sum(points_issued) FROM kpi_daily WHERE program_id = :p), 18446744073709551624::numeric,
          'kpi_daily too');
SELECT is((SELECT sum(points_issued) FROM kpi_monthly WHERE program_id = :p), 18446744073709551624::numeric,
          'and kpi_monthly');

SELECT * FROM finish();
ROLLBACK;
