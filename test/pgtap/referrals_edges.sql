-- Referrals, the edges: each LY020 refusal of refer (unknown code, another
-- program's code, self, second referrer, direct and transitive loops, a member
-- who already bought, no rules, the cap) with proof that it wrote nothing; a
-- purchase exactly at the minimum; a rolled-back purchase; bonuses once per
-- referral down a chain; a closed referrer; argument checks; privileges.
BEGIN;
SELECT plan(44);

SELECT loyalty.create_program('refe') AS p \gset
SELECT loyalty.create_program('refe-other') AS q \gset
SELECT loyalty.create_program('refe-none') AS z \gset
SELECT loyalty.set_referral_rules(:p, '500', '200', min_purchase_amount => 20, max_referrals_per_referrer => 2);
SELECT loyalty.set_referral_rules(:q, '50', '20');

SELECT loyalty.enroll(:p, 'app', 'a') AS a \gset
SELECT loyalty.enroll(:p, 'app', 'b') AS b \gset
SELECT loyalty.enroll(:p, 'app', 'c') AS c \gset
SELECT loyalty.enroll(:p, 'app', 'd') AS d \gset
SELECT loyalty.enroll(:p, 'app', 'e') AS e \gset
SELECT loyalty.enroll(:p, 'app', 'f') AS f \gset
SELECT loyalty.enroll(:p, 'app', 'g') AS g \gset
SELECT loyalty.enroll(:q, 'app', 'x') AS x \gset
SELECT loyalty.enroll(:z, 'app', 'z1') AS z1 \gset
SELECT loyalty.enroll(:z, 'app', 'z2') AS z2 \gset
SELECT loyalty.referral_code(:a) AS ca, loyalty.referral_code(:b) AS cb, loyalty.referral_code(:c) AS cc,
       loyalty.referral_code(:d) AS cd, loyalty.referral_code(:x) AS cx, loyalty.referral_code(:z1) AS cz \gset

-- codes
SELECT is((SELECT count(DISTINCT code) FROM loyalty.referral_codes), (SELECT count(*) FROM loyalty.referral_codes),
          'every member gets a different code');
SELECT is((SELECT count(*) FROM loyalty.referral_codes WHERE member_id = :a), 1::bigint, 'one code per member');
SELECT ok((SELECT bool_and(code ~ '^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$') FROM loyalty.referral_codes),
          'all codes are 8 characters without 0, O, 1, I or L');
SELECT throws_ok('SELECT loyalty.referral_code(-1)', 'P0002', NULL, 'no code for an unknown member');

-- a chain a -> b -> c
SELECT is(loyalty.refer(:b, :'ca'), :a::bigint, 'refer returns the referrer');
SELECT is(loyalty.refer(:c, lower(:'cb')), :b::bigint, 'codes are read case-insensitively');
SELECT results_eq(format('SELECT member_id, referral_pending FROM loyalty.accounts WHERE member_id IN (%s, %s, %s) ORDER BY member_id',
                         :a, :b, :c),
                  format('VALUES (%s::bigint, false), (%s, true), (%s, true)', :a, :b, :c),
                  'the referred members wait for a purchase, the referrer does not');

-- refusals; each writes nothing
SELECT loyalty.earn(:e, 5);
CREATE TEMP VIEW st AS SELECT
    (SELECT string_agg(member_id || '<' || referrer || ':' || status, ' ' ORDER BY member_id) FROM loyalty.referrals) AS referrals,
    (SELECT string_agg(member_id::text, ' ' ORDER BY member_id) FROM loyalty.accounts WHERE referral_pending) AS pending,
    (SELECT count(*) FROM loyalty.ledger) AS entries,
    (SELECT count(*) FROM loyalty.referral_codes) AS codes;
CREATE TEMP TABLE snap AS SELECT * FROM st;

SELECT throws_ok(format($$SELECT loyalty.refer(%s, 'ZZZZZZZ9')$$, :d), 'LY020',
                 format('referral refused: no member of program %s has code "ZZZZZZZ9"', :p), 'an unknown code: LY020, says why');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :d, :'cx'), 'LY020',
                 format('referral refused: code "%s" belongs to a member of another program', :'cx'),
                 'a code of another program: LY020, says why');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :d, :'cd'), 'LY020', NULL, 'referring oneself: LY020');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :b, :'cd'), 'LY020',
                 format('referral refused: member %s was already referred', :b), 'a second referrer: LY020, says why');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :a, :'cb'), 'LY020',
                 format('referral refused: member %s is in the referral chain of member %s', :a, :b),
                 'a direct loop (a referred b, b refers a): LY020, says why');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :a, :'cc'), 'LY020',
                 format('referral refused: member %s is in the referral chain of member %s', :a, :c),
                 'a transitive loop (a -> b -> c, c refers a): LY020');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :e, :'ca'), 'LY020',
                 format('referral refused: member %s has already made a purchase', :e), 'a member who already bought: LY020, says why');
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :z2, :'cz'), 'LY020', NULL, 'a program without referral rules: LY020');
SELECT throws_ok(format($$SELECT loyalty.refer(NULL, '%s')$$, :'ca'), '22004', NULL, 'a NULL member: 22004');
SELECT throws_ok(format('SELECT loyalty.refer(%s, NULL)', :d), '22004', NULL, 'a NULL code: 22004');
SELECT throws_ok(format($$SELECT loyalty.refer(-1, '%s')$$, :'ca'), 'P0002', NULL, 'an unknown member: P0002');
SELECT is((SELECT row(st.*)::text FROM st), (SELECT row(snap.*)::text FROM snap),
          'the refusals wrote nothing: referrals, pending flags, ledger, codes as before');

-- the cap: a has referred b; d is the second, f the third
SELECT is(loyalty.refer(:d, :'ca'), :a::bigint, 'a second referral by a is allowed (cap 2)');
DELETE FROM snap; INSERT INTO snap SELECT * FROM st;
SELECT throws_ok(format($$SELECT loyalty.refer(%s, '%s')$$, :f, :'ca'), 'LY020',
                 format('referral refused: member %s has reached 2 referrals', :a), 'the third: LY020, says the cap');
SELECT is((SELECT row(st.*)::text FROM st), (SELECT row(snap.*)::text FROM snap), '... and wrote nothing');
SELECT is(loyalty.refer(:f, :'cb'), :b::bigint, 'the cap is per referrer: b may still refer f');

-- purchases: below the minimum, rolled back, exactly at the minimum, after
SELECT loyalty.earn(:b, 19.99);
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'award'), 0::bigint, '19.99 of 20: no bonus');
SELECT is((SELECT referral_pending FROM loyalty.accounts WHERE member_id = :b), true, '... the referral still waits');
SAVEPOINT sp;
SELECT loyalty.earn(:b, 100);
ROLLBACK TO SAVEPOINT sp;
SELECT results_eq(format($$SELECT status, (SELECT referral_pending FROM loyalty.accounts WHERE member_id = %s),
                                  (SELECT count(*) FROM loyalty.ledger WHERE kind = 'award')
                           FROM loyalty.referrals WHERE member_id = %s$$, :b, :b),
                  $$VALUES ('pending'::text, true, 0::bigint)$$, 'a rolled-back qualifying purchase pays nothing');
SELECT loyalty.earn(:b, 20);
SELECT results_eq($$SELECT member_id, points::bigint, reason, idempotency_key FROM loyalty.ledger WHERE kind = 'award' ORDER BY member_id$$,
                  format($$VALUES (%s::bigint, 500::bigint, 'referral: member %s bought'::text, 'referral:%s'::text),
                                  (%s, 200, 'referral: welcome', 'referral:%s')$$, :a, :b, :b, :b, :b),
                  'exactly 20: the referrer gets 500 and b 200, keyed referral:<b>');
SELECT results_eq(format($$SELECT status, rewarded_at IS NOT NULL, entry_id = (SELECT max(entry_id) FROM loyalty.ledger
                                                                                 WHERE member_id = %s AND kind = 'earn')
                           FROM loyalty.referrals WHERE member_id = %s$$, :b, :b),
                  $$VALUES ('rewarded'::text, true, true)$$, 'the referral is settled by that purchase entry');
SELECT is((SELECT referral_pending FROM loyalty.accounts WHERE member_id = :b), false, '... and no longer pending');
SELECT loyalty.earn(:b, 50);
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'award'), 2::bigint, 'a later purchase pays nothing more');

-- down the chain: c was referred by b
SELECT loyalty.earn(:c, 30);
SELECT results_eq(format($$SELECT member_id, points::bigint FROM loyalty.ledger WHERE kind = 'award' AND idempotency_key = 'referral:%s'
                           ORDER BY member_id$$, :c),
                  format($$VALUES (%s::bigint, 500::bigint), (%s, 200)$$, :b, :c),
                  'c''s purchase pays b (its referrer) and c, not a');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :a), 500::bigint, 'a was paid once, for b only');

-- a referrer who left gets nothing, and does not block the sale
SELECT loyalty.set_member_status(:a, 'closed');
SELECT lives_ok(format('SELECT loyalty.earn(%s, 25)', :d), 'd buys although its referrer is closed');
SELECT results_eq(format($$SELECT member_id, points::bigint FROM loyalty.ledger WHERE kind = 'award' AND idempotency_key = 'referral:%s'$$, :d),
                  format($$VALUES (%s::bigint, 200::bigint)$$, :d), '... d gets its bonus, the closed referrer none');
SELECT is((SELECT status FROM loyalty.referrals WHERE member_id = :d), 'rewarded'::text, '... and the referral is settled');

-- no minimum: any purchase qualifies
SELECT loyalty.enroll(:q, 'app', 'x2', referral_code => :'cx') AS x2 \gset
SELECT loyalty.earn(:x2, 1);
SELECT is((SELECT sum(points::bigint) FROM loyalty.ledger WHERE kind = 'award' AND idempotency_key = 'referral:' || :x2),
          70::numeric, 'with min_purchase_amount 0 the first purchase pays 50 + 20');

-- rules
SELECT throws_ok(format($$SELECT loyalty.set_referral_rules(%s, '-1', '10')$$, :p), '22023', NULL, 'negative bonus: 22023');
SELECT throws_ok(format($$SELECT loyalty.set_referral_rules(%s, '10', '10', -1)$$, :p), '22023', NULL, 'negative minimum: 22023');
SELECT throws_ok(format($$SELECT loyalty.set_referral_rules(%s, '10', '10', 0, 0)$$, :p), '22023', NULL, 'a cap of 0: 22023');
SELECT throws_ok(format($$SELECT loyalty.set_referral_rules(%s, NULL, '10')$$, :p), '22004', NULL, 'a NULL bonus: 22004');
SELECT throws_ok($$SELECT loyalty.set_referral_rules(-1, '10', '10')$$, 'P0002', NULL, 'an unknown program: P0002');

-- who may call what
SELECT ok(has_function_privilege('loyalty_app', 'loyalty.refer(bigint, text)', 'EXECUTE')
          AND has_function_privilege('loyalty_app', 'loyalty.referral_code(bigint)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer)', 'EXECUTE')
          AND has_function_privilege('loyalty_admin', 'loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer)', 'EXECUTE'),
          'the app refers and reads codes; only the administrator sets the rules');
SELECT is((SELECT count(*) FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
           WHERE p.oid = ANY (ARRAY['loyalty.referral_purchase(bigint, bigint, numeric)'::regprocedure,
                                    'loyalty.referral_refusal(bigint, bigint)'::regprocedure])
             AND a.grantee <> p.proowner), 0::bigint,
          'referral_purchase and referral_refusal (internal) may be called by no one but the owner');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
SELECT * FROM finish();
ROLLBACK;
