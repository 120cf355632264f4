-- The account writes of enrolment, the tier rules and referrals go through
-- the C write path like the ledger's: a DBA's triggers on loyalty.accounts
-- fire for them (UPDATE OF column lists included), and a trigger that turns
-- the write into nothing is an error, never a member left without an account
-- or a tier change lost.  Runs with either store (loyalty.fast_store on and
-- off): a trigger sends the table to the SQL store, the plain table (the
-- first tests) to the fast one.
BEGIN;
SET LOCAL search_path = public, loyalty;   -- pgTAP compares tiers with the tier operators
SELECT plan(22);

SELECT loyalty.create_program('aw') AS p \gset
SELECT loyalty.set_tier_policy(:p, 'spend', grace => interval '30 days');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0), loyalty.define_tier(:p, 1, 'Silver', 100);
SELECT loyalty.set_referral_rules(:p, '50', '20');

-- the plain table ------------------------------------------------------------------
SELECT loyalty.enroll(:p, 'pos', 'aw-1') AS m \gset
SELECT is((SELECT (balance::bigint, status, referral_pending) FROM loyalty.accounts WHERE member_id = :m)::text,
          '(0,active,f)', 'enroll opens the account with its defaults');
SELECT loyalty.earn(:m, 150);
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :m), '1:Silver'::loyalty.tier, 'an earn upgrades');
SELECT is((SELECT tier_since FROM loyalty.accounts WHERE member_id = :m), now(), 'tier_since is the change''s time');
SELECT is((SELECT (from_tier::text, to_tier::text, reason) FROM loyalty.tier_history
           WHERE member_id = :m ORDER BY change_id DESC LIMIT 1)::text,
          '(,1:Silver,"qualified (earn)")', 'the change is in tier_history');
-- review a year later: below the threshold, grace starts; then a lock ends it
SELECT * FROM loyalty.review_tiers_batch(:p, now() + interval '13 months', 0, 100);
SELECT is((SELECT tier_grace_until FROM loyalty.accounts WHERE member_id = :m),
          now() + interval '13 months' + interval '30 days', 'the review starts a grace period');
SELECT loyalty.assign_tier(:m, '1:Silver', now() + interval '2 years', 'kept');
SELECT is((SELECT (tier::text, tier_locked_until = now() + interval '2 years', tier_grace_until IS NULL)
           FROM loyalty.accounts WHERE member_id = :m)::text, '(1:Silver,t,t)',
          'assigning the same tier renews the lock and ends the grace');
SELECT loyalty.assign_tier(:m, '0:Blue', now() + interval '1 day', 'demoted by hand');
SELECT is((SELECT (tier::text, tier_locked_until = now() + interval '1 day') FROM loyalty.accounts WHERE member_id = :m)::text,
          '(0:Blue,t)', 'assigning another tier changes it under a lock');
SELECT is((SELECT count(*) FROM loyalty.tier_history WHERE member_id = :m), 2::bigint,
          'two changes, two history rows (the renewal writes none)');

-- a DBA's triggers fire for these writes ---------------------------------------------
CREATE TABLE aw_seen (tg text, col text);
CREATE FUNCTION aw_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.aw_seen VALUES (TG_NAME, TG_ARGV[0]);
    RETURN NEW;
END $$;
CREATE FUNCTION aw_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.aw_seen VALUES (TG_NAME, TG_ARGV[0]);
    RETURN NULL;
END $$;
CREATE TRIGGER aw_tier AFTER UPDATE OF tier ON loyalty.accounts FOR EACH STATEMENT EXECUTE FUNCTION aw_stmt('tier');
CREATE TRIGGER aw_grace AFTER UPDATE OF tier_grace_until ON loyalty.accounts
    FOR EACH ROW EXECUTE FUNCTION aw_row('grace');
CREATE TRIGGER aw_ref BEFORE UPDATE OF referral_pending ON loyalty.accounts
    FOR EACH ROW EXECUTE FUNCTION aw_row('referral');
CREATE TRIGGER aw_ins AFTER INSERT ON loyalty.accounts FOR EACH STATEMENT EXECUTE FUNCTION aw_stmt('insert');

SELECT loyalty.enroll(:p, 'pos', 'aw-2') AS m2 \gset
SELECT is((SELECT count(*) FROM aw_seen WHERE col = 'insert'), 1::bigint, 'enroll fires a statement trigger on INSERT');
SELECT loyalty.earn(:m2, 120);
SELECT is((SELECT count(*) FROM aw_seen WHERE col = 'tier'), 1::bigint, 'a tier change fires UPDATE OF tier');
-- (a tier update names all the tier columns, as the statement does)
SELECT count(*) AS graces FROM aw_seen WHERE col = 'grace' \gset
SELECT * FROM loyalty.review_tiers_batch(:p, now() + interval '13 months', :m, 100);
SELECT is((SELECT count(*) FROM aw_seen WHERE col = 'grace'), :graces + 1::bigint, 'a grace period fires UPDATE OF tier_grace_until');
SELECT referral_code(:m) AS code \gset
SELECT loyalty.enroll(:p, 'app', 'aw-3', referral_code => :'code') AS m3 \gset
SELECT is((SELECT count(*) FROM aw_seen WHERE col = 'referral'), 1::bigint, 'a referral fires UPDATE OF referral_pending');
SELECT loyalty.earn(:m3, 10);
SELECT is((SELECT count(*) FROM aw_seen WHERE col = 'referral'), 2::bigint, 'its qualifying purchase fires it again');
SELECT is((SELECT referral_pending FROM loyalty.accounts WHERE member_id = :m3), false, 'and clears the flag');
SELECT is((SELECT count(*) FROM loyalty.verify()), 0::bigint, 'verify() is clean');

-- a trigger that turns the write into nothing is an error, and nothing is left ------
CREATE FUNCTION aw_skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER aw_no_insert BEFORE INSERT ON loyalty.accounts FOR EACH ROW EXECUTE FUNCTION aw_skip();
SELECT throws_ok($$SELECT loyalty.enroll($$ || :p || $$, 'pos', 'aw-4')$$, '09000', NULL,
                 'an account insert a trigger skipped fails the enrolment');
SELECT is((SELECT count(*) FROM loyalty.identities WHERE external_id = 'aw-4'), 0::bigint,
          'no member is left without an account');
DROP TRIGGER aw_no_insert ON loyalty.accounts;

CREATE TRIGGER aw_no_tier BEFORE UPDATE OF tier ON loyalty.accounts FOR EACH ROW
    WHEN (OLD.tier IS DISTINCT FROM NEW.tier) EXECUTE FUNCTION aw_skip();
SELECT throws_ok($$SELECT loyalty.assign_tier($$ || :m2 || $$, '0:Blue', now() + interval '1 day')$$, '09000', NULL,
                 'a tier change a trigger skipped fails');
SELECT is((SELECT count(*) FROM loyalty.tier_history WHERE member_id = :m2 AND to_tier = '0:Blue'), 0::bigint,
          'and writes no history');
DROP TRIGGER aw_no_tier ON loyalty.accounts;

CREATE TRIGGER aw_no_ref BEFORE UPDATE OF referral_pending ON loyalty.accounts FOR EACH ROW EXECUTE FUNCTION aw_skip();
SELECT loyalty.enroll(:p, 'app', 'aw-5') AS m5 \gset
SELECT throws_ok(format('SELECT loyalty.refer(%s, %L)', :m5, :'code'), '09000', NULL,
                 'a referral flag a trigger skipped fails the referral');
SELECT is((SELECT count(*) FROM loyalty.referrals WHERE member_id = :m5), 0::bigint, 'and records no referral');

-- a column a DBA added with a default is filled for a new account
ALTER TABLE loyalty.accounts ADD COLUMN aw_crm_flag text NOT NULL DEFAULT 'new';
SELECT loyalty.enroll(:p, 'pos', 'aw-dba') AS mdba \gset
SELECT is((SELECT aw_crm_flag FROM loyalty.accounts WHERE member_id = :mdba), 'new',
          'an account column added with a default gets it on enrolment');
ALTER TABLE loyalty.accounts DROP COLUMN aw_crm_flag;

SELECT * FROM finish();
ROLLBACK;
