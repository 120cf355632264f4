-- Referrals: codes, linking at enrolment, both bonuses exactly once on the
-- first qualifying purchase, refusals (LY020) that change nothing, caps.
BEGIN;
SELECT plan(17);

SELECT loyalty.create_program('ref') AS p \gset
SELECT loyalty.set_referral_rules(:p, '500', '200', min_purchase_amount => 20, max_referrals_per_referrer => 2);
SELECT loyalty.enroll(:p, 'app', 'ana') AS ana \gset
SELECT loyalty.referral_code(:ana) AS code \gset
SELECT matches(:'code'::text, '^[2-9A-HJKMNP-Z]{8}$', 'a code is 8 unambiguous characters');
SELECT is(loyalty.referral_code(:ana), :'code'::text, 'the code is stable');

SELECT loyalty.enroll(:p, 'app', 'ben', referral_code => lower(:'code')) AS ben \gset
SELECT is((SELECT referrer FROM loyalty.referrals WHERE member_id = :ben), :ana::bigint, 'enrolling with a code links the referrer (case-insensitive)');
SELECT is((SELECT referral_pending FROM loyalty.accounts WHERE member_id = :ben), true, 'the referral waits for a purchase');

SELECT loyalty.earn(:ben, 10);
SELECT is((SELECT lifetime_earned::bigint FROM loyalty.accounts WHERE member_id = :ana), 0::bigint, 'a purchase below 20 pays no bonus');
SELECT loyalty.earn(:ben, 25);
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :ana), 500::bigint, 'the first qualifying purchase pays the referrer');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :ben), 10 + 25 + 200::bigint, '... and the new member');
SELECT loyalty.earn(:ben, 50);
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'award' AND reason LIKE 'referral%'), 2::bigint, 'bonuses are paid once');
SELECT is((SELECT status FROM loyalty.referrals WHERE member_id = :ben), 'rewarded'::text, 'the referral is settled');

-- refusals
CREATE TEMP TABLE n AS SELECT count(*) AS c FROM loyalty.referrals;
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :ana, :'code'), 'LY020', NULL, 'self-referral is refused');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, 'NOPE2345')$$, :ana), 'LY020', NULL, 'an unknown code is refused');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :ben, :'code'), 'LY020', NULL, 'a second referrer (or a member who bought) is refused');
SELECT loyalty.referral_code(:ben) AS bcode \gset
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :ana, :'bcode'), 'LY020', NULL, 'a loop (ana referred by her own referee) is refused');
SELECT loyalty.enroll(:p, 'app', 'cy', referral_code => :'code') AS cy \gset
SELECT throws_ok(format($$SELECT loyalty.enroll(%s, 'app', 'dee', referral_code => '%s')$$, :p, :'code'), 'LY020', NULL,
                 'the cap of 2 referrals per referrer holds (and the enrolment fails)');
SELECT is((SELECT count(*) FROM loyalty.referrals), (SELECT c FROM n) + 1, 'refusals wrote nothing');
SELECT is(loyalty.member_id(:p, 'app', 'dee'), NULL::bigint, 'the refused enrolment left no member');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
SELECT * FROM finish();
ROLLBACK;
