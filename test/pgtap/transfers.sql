-- Point transfers: the sender's lots first-to-expire-first, the receiver's
-- lots keep their expiry dates; the program's rules and limits refuse with
-- their own SQLSTATEs and change nothing; keys replay; an administrator's
-- reversal gives the points back by the refund policy.  Runs with either
-- store (loyalty.fast_store on and off).
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(48);

SELECT loyalty.create_program('tr', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.create_program('other') AS q \gset
SELECT loyalty.enroll(:p, 'pos', 'ann', joined_at => now() - interval '100 days') AS ann,
       loyalty.enroll(:p, 'pos', 'bob', joined_at => now() - interval '2 days') AS bob,
       loyalty.enroll(:p, 'pos', 'cat') AS cat,
       loyalty.enroll(:q, 'pos', 'dan') AS dan \gset
SELECT loyalty.award(:ann, 100, 'welcome');
SELECT loyalty.award(:ann, 50, 'short-lived', expires_at => now() + interval '10 days');
SELECT loyalty.award(:bob, 40, 'welcome');

-- refused before anything is written --------------------------------------------------
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 10)', :ann, :bob), 'LY040',
                 'transfers are not enabled in program ' || :p, 'transfers are off until the program enables them');
SELECT loyalty.set_transfer_rules(:p, min_points => 5, max_points => 200, min_tenure => interval '30 days',
                                  sender_daily_count => 3);
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 4)', :ann, :bob), 'LY040', NULL, 'below the minimum per transfer');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 201)', :ann, :bob), 'LY040', NULL, 'above the maximum per transfer');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 10)', :bob, :ann), 'LY040', NULL,
                 'a member of two days may not send with a tenure of 30 days');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 10)', :ann, :ann), '22023', NULL, 'not to oneself');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 10)', :ann, :dan), '22023', NULL, 'not to another program''s member');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 0)', :ann, :bob), '22023', NULL, 'zero points refused');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, -5)', :ann, :bob), '22023', NULL, 'negative points refused');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 10.5)', :ann, :bob), '22023', NULL, 'a fraction of a point refused');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, NULL, 10)', :ann), '22004', NULL, 'a NULL receiver refused');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, NULL)', :ann, :bob), '22004', NULL, 'NULL points refused');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, -1, 10)', :ann), 'P0002', NULL, 'an unknown receiver refused');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 10, idempotency_key => %L)', :ann, :bob, ''), '22023', NULL,
                 'an empty key refused');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 151)', :ann, :cat), 'LY001', NULL, 'no more than the spendable points');
SELECT loyalty.set_member_status(:cat, 'suspended');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 10)', :ann, :cat), '55000', NULL, 'not to a suspended member');
SELECT loyalty.set_member_status(:cat, 'active');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE kind = 'transfer'), 0::bigint, 'the refusals wrote nothing');

-- a transfer -------------------------------------------------------------------------
SELECT loyalty.transfer(:ann, :cat, 70, 'a gift', 'gift-1') AS t1 \gset
SELECT is((SELECT array_agg(balance::bigint ORDER BY member_id) FROM loyalty.accounts WHERE member_id IN (:ann, :cat)),
          ARRAY[80, 70]::bigint[], 'the balances moved');
SELECT is((SELECT (kind, points::bigint, reason) FROM loyalty.ledger WHERE member_id = :ann AND entry_id = :t1)::text,
          '(transfer,-70,"a gift")', 'the sender''s entry');
SELECT is((SELECT (kind, points::bigint, source_entry = :t1) FROM loyalty.ledger WHERE member_id = :cat AND kind = 'transfer')::text,
          '(transfer,70,t)', 'the receiver''s entry names the sender''s');
-- the 50 points expiring in 10 days went first, and keep their date
SELECT is((SELECT array_agg((original::bigint, remaining::bigint, expires_at::date)::text ORDER BY expires_at)
           FROM loyalty.lots WHERE member_id = :cat),
          ARRAY[(50, 50, (now() + interval '10 days')::date)::text, (20, 20, (now() + interval '1 year')::date)::text],
          'the receiver''s lots keep the expiry of the points it got, first-to-expire-first');
SELECT is((SELECT next_expiry_at FROM loyalty.accounts WHERE member_id = :cat), now() + interval '10 days',
          'the receiver''s expiry bound follows');
SELECT is(loyalty.transfer(:ann, :cat, 70, 'a gift', 'gift-1'), :t1::bigint, 'a replay answers the first entry');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 71, %L, %L)', :ann, :cat, 'a gift', 'gift-1'), 'LY002', NULL,
                 'a replay with other points is refused');
SELECT is((SELECT (from_member, to_member, points, reason, reversed)::text FROM loyalty.transfers WHERE transfer_id = :t1),
          format('(%s,%s,70,"a gift",f)', :ann, :cat), 'the transfers view shows it');

-- limits per day and month ---------------------------------------------------------------
SELECT loyalty.set_transfer_rules(:p, sender_daily_points => 100, receiver_monthly_points => 90);
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 31)', :ann, :bob), 'LY041',
                 format('transfer limit reached: member %s has sent 70 of 100 points this day', :ann),
                 'the sender''s daily limit');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 21)', :ann, :cat), 'LY041', NULL, 'the receiver''s monthly limit');
SELECT lives_ok(format('SELECT loyalty.transfer(%s, %s, 20)', :ann, :cat), 'up to the limit passes');
SELECT loyalty.set_transfer_rules(:p, sender_daily_count => 2);
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 5)', :ann, :bob), 'LY041', NULL, 'the number of transfers per day');
SELECT loyalty.set_transfer_rules(:p, sender_monthly_points => 95);
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 6)', :ann, :bob), 'LY041', NULL, 'the sender''s monthly limit');
SELECT loyalty.set_transfer_rules(:p, enabled => false);
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 5)', :ann, :bob), 'LY040', NULL, 'disabled again');
SELECT throws_ok(format('SELECT loyalty.set_transfer_rules(%s, max_points => 1, min_points => 2)', :p), '22023', NULL,
                 'a maximum below the minimum refused');
SELECT loyalty.set_transfer_rules(:p);

-- the tier a sender needs ------------------------------------------------------------------
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0), loyalty.define_tier(:p, 1, 'Gold', 1000);
SELECT loyalty.set_transfer_rules(:p, min_tier_rank => 1);
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 5)', :ann, :bob), 'LY040', NULL, 'a sender below the tier refused');
SELECT loyalty.assign_tier(:ann, '1:Gold');
SELECT lives_ok(format('SELECT loyalty.transfer(%s, %s, 5)', :ann, :bob), 'a Gold sender passes');
SELECT loyalty.set_transfer_rules(:p);

-- a receiver's debt is repaid first ----------------------------------------------------------
UPDATE loyalty.programs SET refund_policy = 'debt' WHERE program_id = :p;
SELECT loyalty.award(:bob, 10, 'to spend') AS bob_award \gset
SELECT loyalty.redeem(:bob, 55);
SELECT loyalty.reverse(:bob, :bob_award);
SELECT is((SELECT (balance::bigint, debt::bigint) FROM loyalty.accounts WHERE member_id = :bob)::text, '(-10,10)',
          'bob owes 10 points');
SELECT loyalty.transfer(:cat, :bob, 30) AS t2 \gset
SELECT is((SELECT (balance::bigint, debt::bigint) FROM loyalty.accounts WHERE member_id = :bob)::text, '(20,0)',
          'a transfer repays the debt first');
SELECT is((SELECT sum(remaining::bigint)::bigint FROM loyalty.lots WHERE member_id = :bob AND entry_id =
             (SELECT entry_id FROM loyalty.ledger WHERE member_id = :bob AND source_entry = :t2)), 20::bigint,
          'its lots hold what is left');

-- reversal by an administrator ------------------------------------------------------------
-- cat received 70 + 20 and sent 30: spend 60 so that the reversal of the
-- first transfer (70) finds only part of it
SELECT loyalty.redeem(:cat, 50);
SELECT throws_ok(format('SELECT loyalty.reverse_transfer(%s, %s, NULL)', :ann, :t1), '22004', NULL, 'a reversal needs a reason');
SELECT throws_ok(format('SELECT loyalty.reverse_transfer(%s, %s, %L)', :cat, :t1, 'x'), 'P0002', NULL,
                 'the sender must be named');
SELECT is(loyalty.reverse_transfer(:ann, :t1, 'sent by mistake', 'undo-1'), 70::bigint, 'the reversal gives 70 back');
SELECT is((SELECT (points::bigint, details ->> 'shortfall', details ->> 'policy') FROM loyalty.ledger
           WHERE member_id = :cat AND kind = 'reverse')::text, '(-70,60,debt)',
          'the receiver gives back what it has, and owes the rest under the debt policy');
SELECT is((SELECT (balance::bigint, debt::bigint) FROM loyalty.accounts WHERE member_id = :cat)::text, '(-60,60)',
          'the receiver''s debt');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :ann), 125::bigint,
          'the sender has the points back');
SELECT is((SELECT remaining::bigint FROM loyalty.lots WHERE member_id = :ann ORDER BY expires_at LIMIT 1), 50::bigint,
          'in the lot they came from');
SELECT is(loyalty.reverse_transfer(:ann, :t1, 'sent by mistake', 'undo-1'), 70::bigint, 'a replayed reversal');
SELECT throws_ok(format('SELECT loyalty.reverse_transfer(%s, %s, %L)', :ann, :t1, 'again'), 'LY004', NULL,
                 'a transfer is reversed once');
SELECT is((SELECT reversed FROM loyalty.transfers WHERE transfer_id = :t1), true, 'the view says it was reversed');

-- who may call what --------------------------------------------------------------------------
SELECT ok(has_function_privilege('loyalty_app', 'loyalty.transfer(bigint, bigint, numeric, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.reverse_transfer(bigint, bigint, text, text)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app',
                'loyalty.set_transfer_rules(bigint, boolean, numeric, numeric, interval, integer, bigint, bigint, integer, bigint, bigint, boolean)', 'EXECUTE')
          AND has_function_privilege('loyalty_admin', 'loyalty.reverse_transfer(bigint, bigint, text, text)', 'EXECUTE')
          AND has_table_privilege('loyalty_analyst', 'loyalty.transfers', 'SELECT')
          AND NOT has_function_privilege('loyalty_analyst', 'loyalty.transfer(bigint, bigint, numeric, text, text)', 'EXECUTE'),
          'the application transfers, the administrator reverses and sets the rules, the analyst reads the view');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');

SELECT * FROM finish();
ROLLBACK;
