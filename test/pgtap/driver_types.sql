-- What drivers send reaches the API: points arguments take integers of every
-- width, whole decimals and strings (psycopg2 renders ints as literals,
-- psycopg 3 binds int2/int4/int8 or numeric, node-postgres sends text,
-- JDBC setLong an int8); fractions are refused; points values still pass;
-- and with loyalty on the search path, points and integer arithmetic and
-- comparisons resolve without ambiguity.  Amounts take double precision
-- (psycopg 3's float, JDBC's setDouble) as well as numeric, and order lines
-- take jsonb, json, text and arrays of lines (typed, or the array literal
-- node-postgres makes of a JS array).
BEGIN;
SET search_path = public, loyalty;
SELECT plan(104);

-- the points a prepared statement returns (EXECUTE cannot be a subquery)
CREATE FUNCTION pg_temp.execute_points(stmt text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
    EXECUTE stmt INTO r;
    RETURN r;
END $$;

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

-- amounts: numeric as before, and floats as psycopg 3 and JDBC bind them
PREPARE earn_float8(bigint, double precision, text) AS SELECT earn($1, $2, reference => $3);
PREPARE earn_numeric(bigint, numeric, text) AS SELECT earn($1, $2, reference => $3);
PREPARE earn_untyped(bigint, unknown, unknown) AS SELECT earn($1, $2, reference => $3);
PREPARE earn_int4(integer, integer, unknown) AS SELECT earn($1, $2, reference => $3);
SELECT is(pg_temp.execute_points(format('EXECUTE earn_float8(%s, 19.99, %L)', :m, 'f-1')), 19::bigint, 'a double precision amount (psycopg 3 float, JDBC setDouble)');
SELECT is((SELECT amount FROM ledger WHERE member_id = :m AND reference = 'f-1'), 19.99, '...recorded as 19.99, the float''s 15 significant digits');
SELECT is(pg_temp.execute_points(format('EXECUTE earn_float8(%s, %s, %L)', :m, (0.1::float8 + 0.2::float8) * 100, 'f-2')), 30::bigint, '(0.1 + 0.2) * 100 as a float');
SELECT is((SELECT amount FROM ledger WHERE member_id = :m AND reference = 'f-2'), 30::numeric, '...counts as 30, not 30.000000000000004');
SELECT is(pg_temp.execute_points(format('EXECUTE earn_numeric(%s, 12.345, %L)', :m, 'n-1')), 12::bigint, 'a numeric amount');
SELECT is((SELECT amount FROM ledger WHERE member_id = :m AND reference = 'n-1'), 12.345, '...kept exactly');
SELECT is(pg_temp.execute_points(format('EXECUTE earn_untyped(%s, %L, %L)', :m, '7.50', 'u-1')), 7::bigint, 'an untyped amount (node-postgres)');
SELECT is(pg_temp.execute_points(format('EXECUTE earn_int4(%s, 8, %L)', :m, 'i-1')), 8::bigint, 'an integer amount');
SELECT throws_ok(format('SELECT earn(%s, %L::float8)', :m, 'NaN'), '22023', NULL, 'a NaN float amount is refused');
SELECT throws_ok(format('SELECT earn(%s, %L::float8)', :m, '-Infinity'), '22023', NULL, 'an infinite float amount is refused');
SELECT is(preview_earn(:m, 10.5::float8)->>'earn_base', '10.5', 'preview_earn takes a float amount');
SELECT is(refund(:m, 'f-1', 9.99::float8)::bigint, 9::bigint, 'refund takes a float amount');
SELECT is(refund(:m, 'f-1')::bigint, 10::bigint, '...and, with none, refunds the rest');
-- reverse's amount is anycompatible: every number type a driver binds, and strings
SELECT earn(:m, 100, reference => 'rv-1');
SELECT entry_id AS rv1 FROM ledger WHERE member_id = :m AND reference = 'rv-1' \gset
SELECT is(reverse(:m, :rv1, amount => 10.5::float8)::bigint, 10::bigint, 'reverse takes a float amount (psycopg 3, setDouble)');
SELECT is((SELECT reversed_amount FROM lots WHERE member_id = :m AND lot_id = :rv1), 10.5::numeric, '...read as 10.5');
SELECT is(reverse(:m, :rv1, amount => 10::int4)::bigint, 10::bigint, 'an integer amount');
SELECT is(reverse(:m, :rv1, amount => '9.50')::bigint, 10::bigint, 'an untyped string (node-postgres): 30 of 100 refunded so far, 30 points');
SELECT is(reverse(:m, :rv1, amount => 20.25)::bigint, 20::bigint, 'a numeric');
SELECT is(reverse(:m, :rv1, 5)::bigint, 5::bigint, 'positional points stay points');
SELECT throws_ok(format('SELECT reverse(%s, %s, amount => true)', :m, :rv1), '42804', 'amount must be a number, not boolean',
                 'an amount of another type is refused');
SELECT throws_ok(format('SELECT reverse(%s, %s, amount => %L)', :m, :rv1, 'ten'), '22P02', NULL, 'a string that is no number is refused');
SELECT throws_ok(format('SELECT reverse(%s, %s, amount => %L::float8)', :m, :rv1, 'NaN'), '22023', NULL, 'a NaN amount is refused');

-- order lines: jsonb, json (psycopg's Json(), JDBC's PGobject "json") and text (setString, node-postgres)
SELECT is(earn(:m, NULL, reference => 'l-jsonb', lines => '[{"category": "books", "product": "B-1", "quantity": 1, "amount": 10}]'::jsonb)::bigint,
          10::bigint, 'lines as jsonb');
SELECT is(earn(:m, NULL, reference => 'l-json', lines => '[{"category": "books", "product": "B-1", "quantity": 1, "amount": 10}]'::json)::bigint,
          10::bigint, 'lines as json');
PREPARE earn_lines_text(bigint, text, varchar) AS SELECT earn($1, NULL, reference => $2, lines => $3);
SELECT is(pg_temp.execute_points(format('EXECUTE earn_lines_text(%s, %L, %L)', :m, 'l-text', '[{"category": "books", "product": "B-1", "quantity": 1, "amount": 10}]')),
          10::bigint, 'lines as varchar (JDBC setString)');
-- node-postgres sends a JS array of objects as an array literal of JSON texts
SELECT is(earn(:m, NULL, reference => 'l-literal',
               lines => '{"{\"category\":\"books\",\"product\":\"B-1\",\"quantity\":1,\"amount\":10}","{\"category\":\"food\",\"product\":\"F-1\",\"quantity\":2,\"amount\":2.5}"}')::bigint,
          12::bigint, 'lines as an array literal of JSON objects (node-postgres, a JS array)');
SELECT is((SELECT jsonb_array_length(details->'lines') FROM ledger WHERE reference = 'l-literal'), 2,
          '...which are read as two lines');
SELECT is(earn(:m, NULL, reference => 'l-jsonb-array',
               lines => ARRAY['{"category": "books", "product": "B-1", "quantity": 1, "amount": 10}'::jsonb,
                              '{"category": "books", "product": "B-2", "quantity": 1, "amount": 3}'::jsonb])::bigint,
          13::bigint, 'lines as jsonb[] (psycopg 3, a list of Jsonb; JDBC createArrayOf)');
PREPARE earn_lines_array(bigint, text, text[]) AS SELECT earn($1, NULL, reference => $2, lines => $3);
SELECT is(pg_temp.execute_points(format('EXECUTE earn_lines_array(%s, %L, %L)', :m, 'l-text-array',
                                        ARRAY['{"category": "books", "product": "B-3", "quantity": 1, "amount": 4}'])),
          4::bigint, 'lines as text[]');
SELECT throws_ok(format('SELECT earn(%s, NULL, lines => %L)', :m, '{"category": "books", "amount": 1}'), '22023',
                 'order lines must be a JSON array of objects', 'a JSON object in text is read as JSON, and refused');
SELECT throws_ok(format('SELECT earn(%s, NULL, lines => ARRAY[NULL::jsonb])', :m), '22004', 'order line 1 is NULL',
                 'a NULL line is refused');
SELECT throws_ok(format('SELECT earn(%s, NULL, lines => %L)', :m, '{x}'), '22P02', NULL,
                 'an array literal of something else than JSON is refused');
SELECT throws_ok(format('SELECT earn(%s, NULL, lines => 5)', :m), '42804', 'lines must be json, jsonb, text or an array of them, not integer',
                 'lines of another type are refused');
SELECT is((SELECT count(*) FROM verify()), 0::bigint, 'the books balance');

-- the engagement API as drivers bind it: a float goal and share (psycopg 3, JDBC
-- setDouble), whole points as int8 (JDBC setLong, psycopg 3)
PREPARE challenge_drv(bigint, float8, bigint, float8) AS
    SELECT create_challenge($1, 'drv', 'driver challenge', 'spend', $2, 'month', reward_points => $3, min_amount => $4);
SELECT lives_ok(format('EXECUTE challenge_drv(%s, 99.5, 10, 2.5)', :p), 'create_challenge: a float goal and amount, int8 points');
SELECT is((SELECT (goal, min_amount, reward_points::bigint)::text FROM challenges WHERE code = 'drv'), '(99.5,2.5,10)',
          '... stored as numeric and points');
PREPARE control_drv(bigint, float8) AS SELECT set_control_group('challenge', $1, $2);
SELECT lives_ok(format('EXECUTE control_drv(%s, 0.25)', (SELECT challenge_id FROM challenges WHERE code = 'drv')),
                'set_control_group: a float share');
PREPARE survey_drv(bigint, bigint) AS SELECT create_survey($1, 'drv', 'driver survey', reward_points => $2);
SELECT lives_ok(format('EXECUTE survey_drv(%s, 5)', :p), 'create_survey: int8 points');
SELECT throws_ok(format('SELECT loyalty.create_survey(%s, %L, %L, reward_points => 1.5)', :p, 'drv2', 'x'), '22023', NULL,
                 '... a fraction of a point is refused');

PREPARE coupon_drv(bigint, float8, float8, float8) AS
    SELECT create_coupon_campaign($1, 'drv', 'amount_off', $2, min_basket => $3, budget => $4);
SELECT lives_ok(format('EXECUTE coupon_drv(%s, 7.5, 20, 100)', :p), 'create_coupon_campaign: float value, basket and budget');
SELECT is((SELECT (value, min_basket, budget)::text FROM coupon_campaigns WHERE name = 'drv'), '(7.5,20,100)',
          '... stored as numeric');
PREPARE coupon_untyped(bigint, unknown) AS SELECT create_coupon_campaign($1, 'drv-text', 'amount_off', $2);
SELECT lives_ok(format('EXECUTE coupon_untyped(%s, %L)', :p, '7.5'), 'create_coupon_campaign: an untyped value alone (node-postgres)');

-- the configuration API and redeem_for_discount as drivers bind them: money,
-- rates, shares and multipliers as double precision (psycopg 3's float, JDBC's
-- setDouble), read as numeric; NaN and infinities refused as other bad values
CREATE FUNCTION pg_temp.execute_numeric(stmt text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE r numeric;
BEGIN
    EXECUTE stmt INTO r;
    RETURN r;
END $$;
PREPARE program_drv(text, float8, float8) AS SELECT create_program($1, point_value => $2, earn_rate => $3);
SELECT pg_temp.execute_points(format('EXECUTE program_drv(%L, 0.05, 2.5)', 'drivers-float')) AS fp \gset
SELECT is((SELECT (point_value, earn_rate)::text FROM programs WHERE program_id = :fp), '(0.05,2.5)',
          'create_program: a float point_value and earn_rate, stored as numeric');
PREPARE program_untyped(text, unknown) AS SELECT create_program($1, point_value => $2);
SELECT pg_temp.execute_points(format('EXECUTE program_untyped(%L, %L)', 'drivers-text', '0.02')) AS tp \gset
SELECT is((SELECT (point_value, earn_rate)::text FROM programs WHERE program_id = :tp), '(0.02,1)',
          '... an untyped point_value (node-postgres) beside the default earn_rate');
SELECT throws_ok(format('SELECT create_program(%L, point_value => %L::float8)', 'nan', 'NaN'), '22023', NULL,
                 '... a NaN point_value is refused');
SELECT throws_ok(format('SELECT create_program(%L, earn_rate => %L::float8)', 'inf', 'Infinity'), '22023', NULL,
                 '... an infinite earn_rate is refused');

PREPARE tier_drv(bigint, integer, text, float8, float8) AS SELECT define_tier($1, $2, $3, $4, earn_multiplier => $5);
SELECT lives_ok(format('EXECUTE tier_drv(%s, 0, %L, 0, 1)', :fp, 'Blue'), 'define_tier: float threshold and multiplier');
SELECT lives_ok(format('EXECUTE tier_drv(%s, 1, %L, 150.5, 1.5)', :fp, 'Silver'), '... (another rung)');
SELECT is((SELECT (threshold, earn_multiplier)::text FROM tiers WHERE program_id = :fp AND rank = 1), '(150.5,1.5)',
          '... stored as numeric');
PREPARE tier_untyped(bigint, unknown) AS SELECT define_tier($1, 2, 'Gold', $2);
SELECT lives_ok(format('EXECUTE tier_untyped(%s, %L)', :fp, '999.5'), '... an untyped threshold beside the default multiplier');
SELECT is((SELECT (threshold, earn_multiplier)::text FROM tiers WHERE program_id = :fp AND rank = 2), '(999.5,1)',
          '... stored as numeric');
SELECT throws_ok(format('SELECT define_tier(%s, 3, %L, %L::float8)', :fp, 'Nan', 'NaN'), '22023', NULL,
                 '... a NaN threshold is refused');
SELECT throws_ok(format('SELECT define_tier(%s, 3, %L, 10, earn_multiplier => %L::float8)', :fp, 'Inf', 'Infinity'), '22023', NULL,
                 '... an infinite earn_multiplier is refused');

PREPARE rule_drv(bigint, text, float8, float8) AS
    SELECT create_earning_rule($1, $2, 'multiply', multiplier => $3, min_amount => $4);
SELECT lives_ok(format('EXECUTE rule_drv(%s, %L, 1.5, 10.25)', :fp, 'drv x1.5'), 'create_earning_rule: a float multiplier and min_amount');
SELECT is((SELECT (multiplier, min_amount)::text FROM earning_rules WHERE program_id = :fp AND name = 'drv x1.5'), '(1.5,10.25)',
          '... stored as numeric');
SELECT throws_ok(format('EXECUTE rule_drv(%s, %L, %L, NULL)', :fp, 'nan', 'NaN'), '22023', NULL, '... a NaN multiplier is refused');
SELECT throws_ok(format('EXECUTE rule_drv(%s, %L, 2, %L)', :fp, 'nan', 'NaN'), '22023', NULL, '... a NaN min_amount is refused');
SELECT throws_ok(format('EXECUTE rule_drv(%s, %L, 2, %L)', :fp, 'inf', 'Infinity'), '22023', NULL, '... an infinite min_amount is refused');

PREPARE stacking_drv(bigint, float8, float8) AS SELECT set_stacking_rules($1, $2, $3);
SELECT lives_ok(format('EXECUTE stacking_drv(%s, 3.5, 0.25)', :fp), 'set_stacking_rules: a float multiplier and share');
SELECT is((SELECT (max_earn_multiplier, max_coupon_share)::text FROM programs WHERE program_id = :fp), '(3.5,0.25)',
          '... stored as numeric');
SELECT throws_ok(format('EXECUTE stacking_drv(%s, %L, NULL)', :fp, 'Infinity'), '22023', NULL, '... an infinite multiplier is refused');
SELECT throws_ok(format('EXECUTE stacking_drv(%s, NULL, %L)', :fp, 'NaN'), '22023', NULL, '... a NaN share is refused');

PREPARE plan_drv(bigint, float8, float8, float8) AS
    SELECT create_plan($1, 'DRV', 'driver plan', $2, 'month', earn_multiplier => $3, reward_discount => $4);
SELECT lives_ok(format('EXECUTE plan_drv(%s, 4.99, 1.5, 0.1)', :fp), 'create_plan: a float fee, multiplier and discount');
SELECT is((SELECT (fee, reward_discount)::text FROM membership_plans WHERE program_id = :fp AND code = 'DRV'), '(4.99,0.1)',
          '... stored as numeric');
SELECT is((SELECT multiplier FROM earning_rules WHERE program_id = :fp AND name = 'plan DRV'), 1.5,
          '... and its earn multiplier, an earning rule');
PREPARE plan_untyped(bigint, unknown) AS SELECT create_plan($1, 'TXT', 'text plan', $2, 'month');
SELECT lives_ok(format('EXECUTE plan_untyped(%s, %L)', :fp, '4.99'), '... an untyped fee (node-postgres) beside the default discount');
SELECT throws_ok(format('SELECT create_plan(%s, %L, %L, %L::float8, %L)', :fp, 'NAN', 'x', 'NaN', 'month'), '22023', NULL,
                 '... a NaN fee is refused');
SELECT throws_ok(format('SELECT create_plan(%s, %L, %L, 5, %L, reward_discount => %L::float8)', :fp, 'NAN', 'x', 'month', 'NaN'),
                 '22023', NULL, '... a NaN discount is refused');

PREPARE household_drv(bigint, float8) AS SELECT set_household_rules($1, pool_share => $2);
SELECT lives_ok(format('EXECUTE household_drv(%s, 0.1)', :fp), 'set_household_rules: a float pool_share');
SELECT is((SELECT household_pool_share FROM programs WHERE program_id = :fp), 0.1, '... stored as numeric');
SELECT throws_ok(format('EXECUTE household_drv(%s, %L)', :fp, 'NaN'), '22023', NULL, '... a NaN pool_share is refused');

PREPARE redemption_drv(bigint, float8) AS SELECT set_redemption_rules($1, max_share_of_order => $2);
SELECT lives_ok(format('EXECUTE redemption_drv(%s, 0.5)', :fp), 'set_redemption_rules: a float max_share_of_order');
SELECT is((SELECT max_share_of_order FROM redemption_rules WHERE program_id = :fp), 0.5, '... stored as numeric');
SELECT throws_ok(format('EXECUTE redemption_drv(%s, %L)', :fp, 'NaN'), '22023', NULL, '... a NaN share is refused');

PREPARE referral_drv(bigint, float8) AS SELECT set_referral_rules($1, '100', '50', $2);
SELECT lives_ok(format('EXECUTE referral_drv(%s, 12.5)', :fp), 'set_referral_rules: a float min_purchase_amount');
SELECT is((SELECT min_purchase_amount FROM referral_rules WHERE program_id = :fp), 12.5, '... stored as numeric');
SELECT throws_ok(format('EXECUTE referral_drv(%s, %L)', :fp, 'NaN'), '22023', NULL, '... a NaN amount is refused');
SELECT throws_ok(format('EXECUTE referral_drv(%s, %L)', :fp, 'Infinity'), '22023', NULL, '... an infinite amount is refused');

-- at checkout: the order's amount as the application binds it
PREPARE discount_drv(bigint, float8, bigint) AS SELECT redeem_for_discount($1, $2, $3);
SELECT is(pg_temp.execute_numeric(format('EXECUTE discount_drv(%s, 20.5, 10)', :m)), 0.10,
          'redeem_for_discount: a float order_amount, int8 points');
SELECT throws_ok(format('EXECUTE discount_drv(%s, %L, 10)', :m, 'NaN'), '22023', NULL, '... a NaN order_amount is refused');
SELECT throws_ok(format('EXECUTE discount_drv(%s, %L, 10)', :m, 'Infinity'), '22023', NULL, '... an infinite order_amount is refused');

-- points arithmetic and comparisons with integers stay points, without ambiguity
SELECT is(pg_typeof('5'::points + 1)::text, 'points', 'points + 1 is points');
SELECT is(('5'::points - 1)::bigint, 4::bigint, 'points - 1');
SELECT ok('5'::points = 5 AND 5 < '6'::points AND '5'::points <> 6::smallint, 'points compare with integers');
SELECT is((SELECT pg_typeof(sum(balance))::text FROM accounts), 'points', 'sum(points) is points');
SELECT is(2.5 * 2, 5.0, 'numeric * integer still resolves with loyalty on the search path');

SELECT * FROM finish();
ROLLBACK;
