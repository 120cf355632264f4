-- Reversals of a merged-away member's entries act on the survivor, where the
-- member's points went: refunding an order placed before a merge takes its
-- points from the survivor (debt, if any, is the survivor's), and reversing
-- a redemption gives its points to the survivor, with the expiry of the lots
-- they came from.  The absorbed account stays empty and closed.  A refund
-- by reference also finds the order through the survivor.
BEGIN;
SET search_path = public, loyalty;
SELECT plan(30);

SELECT create_program('merge reversals', expiry_period => interval '1 year', refund_policy => 'debt') AS p \gset
SELECT enroll(:p, 'pos', 'mr-a') AS a \gset
SELECT enroll(:p, 'pos', 'mr-s') AS s \gset
SELECT enroll(:p, 'pos', 'mr-t') AS t \gset
SELECT earn(:a, 100, reference => 'o-1') AS earned \gset
SELECT entry_id AS e1 FROM ledger WHERE member_id = :a AND reference = 'o-1' \gset
SELECT earn(:a, 40, reference => 'o-2');
SELECT redeem(:a, 30) AS r1 \gset
SELECT (SELECT expires_at FROM lots WHERE member_id = :a AND lot_id = :e1) AS e1_expires \gset
SELECT earn(:s, 20, reference => 's-1');
SELECT merge_members(:s, :a, 'mr-merge');

-- a refund by amount of the absorbed member's order
SELECT is(refund(:a, 'o-1', 50)::bigint, 50::bigint, 'a partial refund of an order placed before the merge');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :s), 80::bigint, 'the survivor gives the points back: 110 + 20 - 50');
SELECT is((SELECT (balance::bigint, debt::bigint)::text FROM accounts WHERE member_id = :a), '(0,0)', 'the absorbed account stays empty, with no debt');
SELECT is((SELECT member_id FROM ledger WHERE entry_id = last_entry()), :s::bigint, 'the reversal is the survivor''s entry...');
SELECT is((SELECT (source_entry, details->>'source_member')::text FROM ledger WHERE entry_id = last_entry()),
          format('(%s,%s)', :e1, :a), '...naming the absorbed member''s purchase');
SELECT is((SELECT purchase_amount FROM accounts WHERE member_id = :s), 110::numeric,
          'the survivor''s purchase statistics lose the refunded amount (100 + 40 + 20 - 50)');
SELECT throws_ok(format('SELECT refund(%s, %L, 60)', :a, 'o-1'), 'LY004', NULL, 'no more than what is left of the order');

-- a redemption given back
SELECT is(reverse(:a, :r1)::bigint, 30::bigint, 'reversing the absorbed member''s redemption');
SELECT is((SELECT balance::bigint FROM accounts WHERE member_id = :s), 110::bigint, '...credits the survivor');
SELECT is((SELECT count(*) FROM lots WHERE member_id = :s AND entry_id = last_entry() AND remaining = 30
             AND expires_at = :'e1_expires'::timestamptz), 1::bigint,
          '...in a lot of its own that keeps the expiry of the lot the points came from');
SELECT is((SELECT available FROM balance(:s)), 110::bigint, '...spendable at once');
SELECT throws_ok(format('SELECT reverse(%s, %s)', :a, :r1), 'LY004', NULL, 'a redemption is given back once');

-- a refund the survivor cannot cover becomes the survivor's debt
SELECT redeem(:s, 110);
SELECT is(refund(:a, 'o-1', idempotency_key => 'mr-refund')::bigint, 50::bigint, 'refunding the rest after the survivor spent everything');
SELECT is((SELECT (balance::bigint, debt::bigint)::text FROM accounts WHERE member_id = :s), '(-50,50)', 'the survivor owes it (refund_policy debt)');
SELECT is((SELECT (balance::bigint, debt::bigint)::text FROM accounts WHERE member_id = :a), '(0,0)', 'the absorbed member owes nothing');
CREATE TEMP TABLE n AS SELECT count(*) AS entries FROM ledger;
SELECT is(refund(:a, 'o-1', idempotency_key => 'mr-refund')::bigint, 50::bigint, 'a replay of the keyed refund...');
SELECT is((SELECT count(*) FROM ledger), (SELECT entries FROM n), '...writes nothing');

-- after a second merge, the reversal follows the survivor
SELECT merge_members(:t, :s);
SELECT is(refund(:a, 'o-2', 10)::bigint, 10::bigint, 'a refund of the first member''s order after two merges');
SELECT is((SELECT (balance::bigint, debt::bigint)::text FROM accounts WHERE member_id = :t), '(-60,60)', 'acts on the last survivor');

-- a refund by reference through the survivor: the customer quotes the order,
-- the shop knows the account it has now
SELECT enroll(:p, 'pos', 'mr-u') AS u \gset
SELECT enroll(:p, 'pos', 'mr-v') AS v \gset
SELECT earn(:u, 30, reference => 'u-1');
SELECT entry_id AS u1 FROM ledger WHERE member_id = :u AND reference = 'u-1' \gset
SELECT merge_members(:t, :u);
SELECT is(refund(:t, 'u-1', 10, idempotency_key => 'mr-through')::bigint, 10::bigint,
          'refund(survivor, reference) finds the order of a member merged into it');
SELECT is((SELECT (member_id, source_entry)::text FROM ledger WHERE entry_id = last_entry()), format('(%s,%s)', :t, :u1),
          '...and reverses that purchase on the survivor');
SELECT is((SELECT (balance::bigint, debt::bigint)::text FROM accounts WHERE member_id = :t), '(-40,70)',
          '...which owes it, being in debt: -60 + 30 moved in - 10, and a debt of 60 + 10');
CREATE TEMP TABLE n2 AS SELECT count(*) AS entries FROM ledger;
SELECT is(refund(:t, 'u-1', 10, idempotency_key => 'mr-through')::bigint, 10::bigint, 'its replay...');
SELECT is(refund(:u, 'u-1', 10, idempotency_key => 'mr-through')::bigint, 10::bigint, '...and its replay naming the absorbed member...');
SELECT is((SELECT count(*) FROM ledger), (SELECT entries FROM n2), '...write nothing');
SELECT merge_members(:v, :t);
SELECT is(refund(:v, 'u-1')::bigint, 20::bigint, 'after a further merge the order is found through the last survivor');
-- the same reference in two absorbed members is ambiguous
SELECT enroll(:p, 'pos', 'mr-w1') AS w1 \gset
SELECT enroll(:p, 'pos', 'mr-w2') AS w2 \gset
SELECT earn(:w1, 5, reference => 'same');
SELECT earn(:w2, 5, reference => 'same');
SELECT merge_members(:v, :w1);
SELECT merge_members(:v, :w2);
SELECT throws_ok(format('SELECT refund(%s, %L)', :v, 'same'), '21000', NULL,
                 'an order two absorbed members share is refused as ambiguous');
SELECT throws_ok(format('SELECT refund(%s, %L)', :v, 'none'), 'P0002', NULL, 'an unknown order is still not found');

SELECT throws_ok(format('SELECT set_member_status(%s, %L)', :a, 'active'), 'P0002',
                 format('member %s does not exist or was merged away', :a), 'a merged-away member keeps its status');
SELECT diag(v::text) FROM verify() v;
SELECT is((SELECT count(*) FROM verify()), 0::bigint, 'the books balance');

SELECT * FROM finish();
ROLLBACK;
