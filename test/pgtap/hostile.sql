-- The extension is unaffected by hostile objects in the caller's search_path
-- (PostgreSQL's rules for extension scripts and SECURITY DEFINER functions):
-- functions and operators in a schema searched before pg_catalog, and
-- temporary tables named like the extension's own, are never used by it.
BEGIN;
SELECT plan(12);

CREATE SCHEMA evil;
CREATE TABLE evil.hits (what text);
GRANT ALL ON SCHEMA evil TO PUBLIC;
GRANT ALL ON evil.hits TO PUBLIC;
-- every hostile object records that it ran, then returns something wrong
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.hits VALUES ('now'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.hits VALUES ('lower'); RETURN 'x'; END $$;
CREATE FUNCTION evil.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.hits VALUES ('bigint ='); RETURN true; END $$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq);
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.hits VALUES ('text ='); RETURN true; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE FUNCTION evil.numadd(numeric, numeric) RETURNS numeric LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.hits VALUES ('numeric +'); RETURN 0; END $$;
CREATE OPERATOR evil.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.numadd);
CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.hits VALUES ('nextval'); RETURN 1; END $$;
CREATE FUNCTION evil.jsonb_build_object(text, bigint) RETURNS jsonb LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.hits VALUES ('jsonb_build_object'); RETURN '{}'; END $$;
-- temporary tables named like the extension's (pg_temp comes last in its path)
CREATE TEMP TABLE accounts (member_id bigint, balance bigint);
CREATE TEMP TABLE loyalty_tier_review (member_id bigint);

SELECT loyalty.create_program('hostile', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT loyalty.define_tier(:p, 0, 'Base', 0), loyalty.define_tier(:p, 1, 'Up', 50);
SELECT loyalty.create_earning_rule(:p, 'double', 'multiply', multiplier => 2, channels => ARRAY['app']);
SELECT loyalty.create_reward(:p, 'R1', 'Reward', '10', stock => 3) AS reward \gset

-- the caller puts the hostile schema first, before pg_catalog; the results
-- are kept and checked afterwards (pgTAP itself is not immune to this path)
CREATE TEMP TABLE r (step text, val text);
SET LOCAL search_path = evil, pg_catalog, public;
SELECT loyalty.enroll(:p, 'app', 'h-1') AS m \gset
SELECT loyalty.enroll(:p, 'app', 'h-2') AS m2 \gset
INSERT INTO pg_temp.r SELECT 'earn', loyalty.earn(:m, 60, 'app')::text;
INSERT INTO pg_temp.r SELECT 'tier', tier::text FROM loyalty.accounts WHERE member_id OPERATOR(pg_catalog.=) :m;
INSERT INTO pg_temp.r SELECT 'redeem', (loyalty.redeem(:m, '20') OPERATOR(pg_catalog.>) 0)::text;
INSERT INTO pg_temp.r SELECT 'hold', loyalty.release(loyalty.hold(:m, '5', '1 minute'))::text;
INSERT INTO pg_temp.r SELECT 'reward', points::text FROM loyalty.redeem_reward(:m, :reward);
INSERT INTO pg_temp.r SELECT 'balance', available::text FROM loyalty.balance(:m);
INSERT INTO pg_temp.r SELECT 'merge', loyalty.merge_members(:m, :m2)::text;
INSERT INTO pg_temp.r SELECT 'review', loyalty.review_member_tier(:m, pg_catalog.now() OPERATOR(pg_catalog.+) interval '13 months')::text;
INSERT INTO pg_temp.r SELECT 'rfm', count(*)::text FROM loyalty.member_rfm WHERE program_id OPERATOR(pg_catalog.=) :p;
INSERT INTO pg_temp.r SELECT 'verify', count(*)::text FROM loyalty.verify();
RESET search_path;

SELECT is((SELECT val FROM r WHERE step = 'earn'), '120', 'earn (rules engine) under a hostile search_path');
SELECT is((SELECT val FROM r WHERE step = 'tier'), '1:Up', 'the tier upgrade ran');
SELECT is((SELECT val FROM r WHERE step = 'redeem'), 'true', 'redeem');
SELECT is((SELECT val FROM r WHERE step = 'hold'), '5', 'hold and release');
SELECT is((SELECT val FROM r WHERE step = 'reward'), '10', 'redeem a reward');
SELECT is((SELECT val FROM r WHERE step = 'balance'), '90', 'balance');
SELECT is((SELECT val FROM r WHERE step = 'merge'), '0', 'merge');
SELECT is((SELECT val FROM r WHERE step = 'review'), 'true', 'tier review (its old temporary table name is taken)');
SELECT is((SELECT val FROM r WHERE step = 'rfm'), '1', 'the RFM view');
SELECT is((SELECT val FROM r WHERE step = 'verify'), '0', 'verify');

SELECT is((SELECT count(*) FROM evil.hits), 0::bigint, 'no hostile function or operator ever ran');
SELECT is((SELECT count(*) FROM pg_temp.accounts), 0::bigint, 'the temporary accounts table was never written');

SELECT * FROM finish();
ROLLBACK;
