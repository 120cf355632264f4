-- The ledger core through its public API: members, earn, redeem (FEFO),
-- pending and expiry, holds, reversals, idempotency, merge, verify, roles.
BEGIN;
SET search_path = loyalty, public;
SELECT plan(99);

-- programs ------------------------------------------------------------------
SELECT throws_ok($$SELECT loyalty.create_program('')$$, '22023', NULL, 'empty program name refused');
SELECT throws_ok($$SELECT loyalty.create_program('x', currency => 'euro')$$, '22023', NULL, 'bad currency refused');
SELECT throws_ok($$SELECT loyalty.create_program('x', point_value => -1)$$, '22023', NULL, 'negative point value refused');
SELECT throws_ok($$SELECT loyalty.create_program('x', earn_rate => 'NaN')$$, '22023', NULL, 'NaN earn rate refused');
SELECT throws_ok($$SELECT loyalty.create_program('x', rounding => 'bankers')$$, '22023', NULL, 'unknown rounding refused');
SELECT throws_ok($$SELECT loyalty.create_program('x', expiry_period => '-1 day')$$, '22023', NULL, 'negative expiry refused');
SELECT throws_ok($$SELECT loyalty.create_program('x', refund_policy => 'maybe')$$, '22023', NULL, 'unknown refund policy refused');

CREATE TEMP TABLE ids (name text PRIMARY KEY, id bigint);
INSERT INTO ids VALUES ('p', loyalty.create_program('TAP', expiry_period => '1 year', pending_period => '30 days'));
INSERT INTO ids VALUES ('p_round', loyalty.create_program('TAP round', earn_rate => 1.5, rounding => 'round'));
INSERT INTO ids VALUES ('p_debt', loyalty.create_program('TAP debt', refund_policy => 'debt'));
SELECT throws_ok($$SELECT loyalty.create_program('TAP')$$, '23505', NULL, 'duplicate program name refused');
CREATE FUNCTION pg_temp.id(text) RETURNS bigint LANGUAGE sql AS $$ SELECT id FROM ids WHERE name = $1 $$;

-- members -------------------------------------------------------------------
INSERT INTO ids VALUES ('a', loyalty.enroll(pg_temp.id('p'), 'pos', 'card-1', region => 'north'));
SELECT is(loyalty.enroll(pg_temp.id('p'), 'pos', 'card-1'), pg_temp.id('a'), 'enrolling an existing identity returns the same member');
SELECT is(loyalty.member_id(pg_temp.id('p'), 'pos', 'card-1'), pg_temp.id('a'), 'member_id finds the member');
SELECT is(loyalty.member_id(pg_temp.id('p'), 'pos', 'nope'), NULL, 'member_id of an unknown identity is NULL');
SELECT is((SELECT source_channel FROM loyalty.members WHERE member_id = pg_temp.id('a')), 'pos', 'source channel defaults to the enrolling channel');
SELECT throws_ok($$SELECT loyalty.enroll(999999, 'pos', 'x')$$, 'P0002', NULL, 'unknown program refused');
SELECT throws_ok($$SELECT loyalty.enroll(1, 'pos', '  ')$$, '22023', NULL, 'empty external id refused');
SELECT is(loyalty.link_identity(pg_temp.id('a'), 'web', 'a@example.org'), true, 'link_identity adds an identity');
SELECT is(loyalty.link_identity(pg_temp.id('a'), 'web', 'a@example.org'), false, 'linking it again is a no-op');
INSERT INTO ids VALUES ('b', loyalty.enroll(pg_temp.id('p'), 'pos', 'card-2'));
SELECT throws_ok(format($$SELECT loyalty.link_identity(%s, 'web', 'a@example.org')$$, pg_temp.id('b')), '23505', NULL,
                 'another member''s identity is refused');

-- earn ----------------------------------------------------------------------
SELECT is(loyalty.earn(pg_temp.id('a'), 99.99, 'pos', 'o-1', occurred_at => now() - interval '60 days')::bigint, 99::bigint,
          'earn: floor(99.99 x 1) points');
INSERT INTO ids VALUES ('r', loyalty.enroll(pg_temp.id('p_round'), 'pos', 'r-1'));
SELECT is(loyalty.earn(pg_temp.id('r'), 1.00)::bigint, 2::bigint, 'round rule: 1.5 rounds half away from zero to 2');
SELECT is(loyalty.earn(pg_temp.id('r'), 0.10)::bigint, 0::bigint, 'a tiny purchase earns 0 points');
SELECT is((SELECT purchase_count FROM loyalty.accounts WHERE member_id = pg_temp.id('r')), 2::bigint,
          '... but still counts as a purchase');
SELECT is((SELECT purchase_days FROM loyalty.accounts WHERE member_id = pg_temp.id('r')), 1::bigint,
          'two purchases on one day are one purchase day');
SELECT is(loyalty.earn(pg_temp.id('r'), 0)::bigint, 0::bigint, 'a zero-amount purchase (a free order) earns nothing...');
SELECT is((SELECT purchase_count FROM loyalty.accounts WHERE member_id = pg_temp.id('r')), 3::bigint,
          '... but counts as a purchase');
-- purchase days, back-dated: before the first day, on it, between first and last
SELECT loyalty.earn(pg_temp.id('r'), 1, occurred_at => date_trunc('day', now(), 'UTC') - interval '10 days' + interval '1 hour');
SELECT loyalty.earn(pg_temp.id('r'), 1, occurred_at => date_trunc('day', now(), 'UTC') - interval '10 days' + interval '23 hours');
SELECT is((SELECT purchase_days FROM loyalty.accounts WHERE member_id = pg_temp.id('r')), 2::bigint,
          'a back-dated purchase day counts once');
SELECT loyalty.earn(pg_temp.id('r'), 1, occurred_at => date_trunc('day', now(), 'UTC') - interval '5 days' + interval '2 hours');
SELECT loyalty.earn(pg_temp.id('r'), 1, occurred_at => date_trunc('day', now(), 'UTC') - interval '5 days' + interval '20 hours');
SELECT is((SELECT purchase_days FROM loyalty.accounts WHERE member_id = pg_temp.id('r')), 3::bigint,
          'a day between the first and last purchase is found in the ledger, and counted once');

CREATE TEMP TABLE n AS SELECT count(*) AS c FROM loyalty.ledger;
SELECT throws_ok(format($$SELECT loyalty.reverse(%s, 1, amount => 0)$$, pg_temp.id('a')), '22023', NULL, 'a refund of zero is refused');
SELECT throws_ok(format('SELECT loyalty.earn(%s, -5)', pg_temp.id('a')), '22023', NULL, 'negative amount refused');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 'NaN')$$, pg_temp.id('a')), '22023', NULL, 'NaN amount refused');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 'Infinity')$$, pg_temp.id('a')), '22023', NULL, 'infinite amount refused');
SELECT throws_ok(format('SELECT loyalty.earn(%s, NULL)', pg_temp.id('a')), '22004', NULL, 'NULL amount refused');
SELECT throws_ok('SELECT loyalty.earn(999999, 5)', 'P0002', NULL, 'unknown member refused');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 5, occurred_at => now() + interval '1 hour')$$, pg_temp.id('a')),
                 '22023', NULL, 'occurred_at in the future refused');
SELECT is((SELECT count(*) FROM loyalty.ledger), (SELECT c FROM n), 'refused calls wrote nothing');

-- pending and spendable -----------------------------------------------------
SELECT is(loyalty.earn(pg_temp.id('a'), 50)::bigint, 50::bigint, 'a fresh purchase earns 50');
SELECT results_eq(format('SELECT available::bigint, pending::bigint, balance::bigint FROM loyalty.balance(%s)', pg_temp.id('a')),
                   $$VALUES (99::bigint, 50::bigint, 149::bigint)$$, 'fresh points are pending for 30 days, older ones available');
CREATE TEMP TABLE n2 AS SELECT (SELECT count(*) FROM loyalty.ledger) AS entries,
    (SELECT sum(remaining::bigint) FROM loyalty.lots WHERE member_id = pg_temp.id('a')) AS lots;
SELECT throws_ok(format($$SELECT loyalty.redeem(%s, '100')$$, pg_temp.id('a')), 'LY001',
                 format('insufficient points: member %s has 99 spendable, 100 requested', pg_temp.id('a')),
                 'pending points cannot be spent; the error names what is spendable');
SELECT is((SELECT (SELECT count(*) FROM loyalty.ledger) = n2.entries
              AND (SELECT sum(remaining::bigint) FROM loyalty.lots WHERE member_id = pg_temp.id('a')) = n2.lots FROM n2),
          true, 'a refused redemption leaves ledger and lots as they were');
SELECT throws_ok(format($$SELECT loyalty.redeem(%s, '150')$$, pg_temp.id('a')), 'LY001',
                 format('insufficient points: member %s has 99 spendable, 150 requested', pg_temp.id('a')),
                 'a redemption above the posted balance is refused before any write');
SELECT loyalty.set_member_status(pg_temp.id('a'), 'suspended');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 1)$$, pg_temp.id('a')), '55000', NULL, 'a suspended member cannot earn');
SELECT loyalty.set_member_status(pg_temp.id('a'), 'active');
SELECT lives_ok(format($$SELECT loyalty.release(loyalty.hold(%s, '1', '1 minute'))$$, pg_temp.id('a')),
               'a reactivated member can spend again');
SELECT is((SELECT (m.status, a.status, a.updated_at = now())::text FROM loyalty.members m JOIN loyalty.accounts a USING (member_id)
           WHERE m.member_id = pg_temp.id('a')), '(active,active,t)', 'the member and its account carry the same status');
SELECT throws_ok(format($$SELECT loyalty.set_member_status(%s, 'frozen')$$, pg_temp.id('a')), '22023',
                 'unknown member status "frozen"', 'an unknown status is refused');
SELECT throws_ok(format($$SELECT loyalty.set_member_status(%s, NULL)$$, pg_temp.id('a')), '22023',
                 'unknown member status "NULL"', '...and so is NULL');
SELECT throws_ok($$SELECT loyalty.set_member_status(-1, 'active')$$, 'P0002', NULL, 'an unknown member is refused');
-- only a purchase waits out the return window: an award or an adjustment has
-- nothing to return and is spendable at once
INSERT INTO ids VALUES ('v', loyalty.enroll(pg_temp.id('p'), 'pos', 'card-vest'));
SELECT loyalty.earn(pg_temp.id('v'), 40);
SELECT loyalty.award(pg_temp.id('v'), '500', 'welcome bonus');
SELECT loyalty.adjust(pg_temp.id('v'), '7', 'goodwill');
SELECT results_eq(format('SELECT available::bigint, pending::bigint FROM loyalty.balance(%s)', pg_temp.id('v')),
                  $$VALUES (507::bigint, 40::bigint)$$, 'awards and adjustments vest at once, purchases after pending_period');
SELECT lives_ok(format($$SELECT loyalty.hold(%s, '300', '5 minutes')$$, pg_temp.id('v')),
                'an award just made can be held at once');

-- expiry exact at read time, FEFO ------------------------------------------
SELECT loyalty.earn(pg_temp.id('b'), 10, reference => 'old', occurred_at => now() - interval '400 days');
SELECT loyalty.earn(pg_temp.id('b'), 20, reference => 'mid', occurred_at => now() - interval '300 days');
SELECT loyalty.earn(pg_temp.id('b'), 30, reference => 'new', occurred_at => now() - interval '100 days');
SELECT results_eq(format('SELECT available::bigint, expired_unposted::bigint FROM loyalty.balance(%s)', pg_temp.id('b')),
                  $$VALUES (50::bigint, 10::bigint)$$, 'expired points are not available before the expiry job runs');
SELECT throws_ok(format($$SELECT loyalty.redeem(%s, '51')$$, pg_temp.id('b')), 'LY001', NULL, 'expired points cannot be spent');
INSERT INTO ids VALUES ('red1', loyalty.redeem(pg_temp.id('b'), '25'));
SELECT results_eq(format($$SELECT l.reference, lo.remaining::bigint FROM loyalty.lots lo JOIN loyalty.ledger l
                          USING (member_id, entry_id) WHERE lo.member_id = %s ORDER BY lo.expires_at$$, pg_temp.id('b')),
                  $$VALUES ('old', 10::bigint), ('mid', 0::bigint), ('new', 25::bigint)$$,
                  'redeem consumed the first-to-expire live lot first and skipped the expired one');
SELECT is(loyalty.expire_member(pg_temp.id('b'))::bigint, 10::bigint, 'expire_member writes off the expired remainder');
SELECT is(loyalty.expire_member(pg_temp.id('b'))::bigint, 0::bigint, 'running it twice changes nothing');
SELECT results_eq(format('SELECT available::bigint, balance::bigint, lifetime_expired::bigint FROM loyalty.balance(%s)', pg_temp.id('b')),
                  $$VALUES (25::bigint, 25::bigint, 10::bigint)$$, 'balances after expiry');

-- reversals -------------------------------------------------------------------
SELECT is(loyalty.reverse(pg_temp.id('b'), pg_temp.id('red1'), '5')::bigint, 5::bigint, 'part of a redemption given back');
SELECT is((SELECT remaining::bigint FROM loyalty.lots lo JOIN loyalty.ledger l USING (member_id, entry_id)
           WHERE lo.member_id = pg_temp.id('b') AND l.reference = 'new'), 30::bigint,
          '... to the lot it came from (latest-expiring first)');
SELECT throws_ok(format($$SELECT loyalty.reverse(%s, %s, '21')$$, pg_temp.id('b'), pg_temp.id('red1')), 'LY004', NULL,
                 'giving back more than was redeemed is refused');
INSERT INTO ids SELECT 'earn_new', entry_id FROM loyalty.ledger WHERE member_id = pg_temp.id('b') AND reference = 'new';
SELECT is(loyalty.reverse(pg_temp.id('b'), pg_temp.id('earn_new'), amount => 10)::bigint, 10::bigint, 'refund of a third: a third of the points');
SELECT is(loyalty.reverse(pg_temp.id('b'), pg_temp.id('earn_new'), amount => 10)::bigint, 10::bigint, 'another third');
SELECT is(loyalty.reverse(pg_temp.id('b'), pg_temp.id('earn_new'), amount => 10)::bigint, 10::bigint, 'the last third: exactly the original in total');
SELECT throws_ok(format('SELECT loyalty.reverse(%s, %s, amount => 0.01)', pg_temp.id('b'), pg_temp.id('earn_new')), 'LY004', NULL,
                 'refunding beyond the purchase is refused');
SELECT throws_ok(format('SELECT loyalty.reverse(%s, (SELECT entry_id FROM loyalty.ledger WHERE member_id = %s AND kind = %L))',
                        pg_temp.id('b'), pg_temp.id('b'), 'expire'), '22023', NULL, 'an expire entry cannot be reversed');

-- refund of spent points: forgive vs debt ----------------------------------
INSERT INTO ids VALUES ('d', loyalty.enroll(pg_temp.id('p_debt'), 'pos', 'd-1'));
SELECT loyalty.earn(pg_temp.id('d'), 100, reference => 'big');
SELECT loyalty.redeem(pg_temp.id('d'), '80');
SELECT is(loyalty.reverse(pg_temp.id('d'), (SELECT entry_id FROM loyalty.ledger WHERE member_id = pg_temp.id('d') AND reference = 'big'))::bigint,
          100::bigint, 'full refund after spending 80');
SELECT results_eq(format('SELECT balance::bigint, debt::bigint, available::bigint FROM loyalty.balance(%s)', pg_temp.id('d')),
                  $$VALUES (-80::bigint, 80::bigint, 0::bigint)$$, 'debt policy: the member owes 80');
SELECT loyalty.earn(pg_temp.id('d'), 100);
SELECT results_eq(format('SELECT balance::bigint, debt::bigint, available::bigint FROM loyalty.balance(%s)', pg_temp.id('d')),
                  $$VALUES (20::bigint, 0::bigint, 20::bigint)$$, 'the next earn repays the debt first');
-- forgive (program p): spent points are written off
SELECT loyalty.earn(pg_temp.id('a'), 10, reference => 'f', occurred_at => now() - interval '40 days');
SELECT loyalty.redeem(pg_temp.id('a'), '109');
SELECT is(loyalty.reverse(pg_temp.id('a'), (SELECT entry_id FROM loyalty.ledger WHERE member_id = pg_temp.id('a') AND reference = 'f'))::bigint,
          10::bigint, 'forgive policy: reversal accepted');
SELECT is((SELECT (details->>'shortfall')::int FROM loyalty.ledger WHERE member_id = pg_temp.id('a') AND kind = 'reverse'), 10,
          '... the points already spent are recorded as shortfall');

-- holds -----------------------------------------------------------------------
INSERT INTO ids VALUES ('h', loyalty.enroll(pg_temp.id('p'), 'pos', 'h-1'));
SELECT loyalty.earn(pg_temp.id('h'), 100, occurred_at => now() - interval '31 days');
INSERT INTO ids VALUES ('hold1', loyalty.hold(pg_temp.id('h'), '60', '5 minutes'));
SELECT results_eq(format('SELECT available::bigint, held::bigint FROM loyalty.balance(%s)', pg_temp.id('h')),
                  $$VALUES (40::bigint, 60::bigint)$$, 'a hold moves points from available to held');
SELECT throws_ok(format($$SELECT loyalty.redeem(%s, '41')$$, pg_temp.id('h')), 'LY001', NULL, 'held points cannot be spent twice');
SELECT throws_ok(format($$SELECT loyalty.hold(%s, '1', '2 days')$$, pg_temp.id('h')), '22023', NULL, 'ttl beyond max_hold_ttl refused');
SELECT ok(loyalty.capture(pg_temp.id('hold1'), '45') > 0, 'partial capture');
SELECT results_eq(format('SELECT available::bigint, held::bigint, lifetime_redeemed::bigint FROM loyalty.balance(%s)', pg_temp.id('h')),
                  $$VALUES (55::bigint, 0::bigint, 45::bigint)$$, 'the rest of the hold came back');
SELECT throws_ok(format('SELECT loyalty.release(%s)', pg_temp.id('hold1')), 'LY003', NULL, 'a hold resolves once');
SELECT throws_ok('SELECT loyalty.capture(999999)', 'P0002', NULL, 'unknown hold refused');

-- idempotency -------------------------------------------------------------------
SELECT is(loyalty.earn(pg_temp.id('h'), 7, 'web', 'w-1', 'key-1')::bigint, 7::bigint, 'keyed earn');
SELECT is(loyalty.earn(pg_temp.id('h'), 7, 'web', 'w-1', 'key-1')::bigint, 7::bigint, 'replay returns the first result');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE member_id = pg_temp.id('h') AND idempotency_key = 'key-1'), 1::bigint,
          '... and wrote nothing');
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 8, 'web', 'w-1', 'key-1')$$, pg_temp.id('h')), 'LY002', NULL,
                 'same key, other payload refused');
SELECT throws_ok(format($$SELECT loyalty.redeem(%s, '7', idempotency_key => 'key-1')$$, pg_temp.id('h')), 'LY002', NULL,
                 'same key, other operation refused');
SELECT is(loyalty.redeem(pg_temp.id('h'), '5', idempotency_key => 'r-1'), loyalty.redeem(pg_temp.id('h'), '5', idempotency_key => 'r-1'),
          'redeem replay returns the same entry');

-- merge -----------------------------------------------------------------------
INSERT INTO ids VALUES ('m', loyalty.enroll(pg_temp.id('p'), 'app', 'dup'));
SELECT loyalty.earn(pg_temp.id('m'), 33, occurred_at => now() - interval '200 days');
SELECT is(loyalty.merge_members(pg_temp.id('h'), pg_temp.id('m'))::bigint, 33::bigint, 'merge moves the balance');
SELECT is(loyalty.member_id(pg_temp.id('p'), 'app', 'dup'), pg_temp.id('h'), 'identities move to the survivor');
SELECT is((SELECT expires_at FROM loyalty.lots WHERE member_id = pg_temp.id('h') ORDER BY lot_id DESC LIMIT 1),
          (SELECT expires_at FROM loyalty.lots WHERE member_id = pg_temp.id('m')), 'lots keep their expiry date');
SELECT throws_ok(format('SELECT loyalty.earn(%s, 1)', pg_temp.id('m')), '55000', NULL, 'the absorbed member is closed');
SELECT throws_ok(format('SELECT loyalty.merge_members(%s, %s)', pg_temp.id('h'), pg_temp.id('h')), '22023', NULL, 'self-merge refused');
SELECT throws_ok(format('SELECT loyalty.merge_members(%s, %s)', pg_temp.id('h'), pg_temp.id('r')), '22023', NULL,
                 'merging across programs refused');

-- as-of, append-only, verify ---------------------------------------------------
SELECT is(loyalty.balance_at(pg_temp.id('h'), now()), (SELECT balance::bigint FROM loyalty.accounts WHERE member_id = pg_temp.id('h')),
          'balance_at now is the posted balance');
SELECT is(loyalty.balance_at(pg_temp.id('h'), now() - interval '1 second')::bigint, 0::bigint, 'nothing was recorded before');
SELECT throws_ok('UPDATE loyalty.ledger SET points = ''1''', '42501', NULL, 'UPDATE on the ledger refused');
SELECT throws_ok('DELETE FROM loyalty.ledger', '42501', NULL, 'DELETE on the ledger refused');
SET LOCAL client_min_messages = warning;
SELECT throws_ok('TRUNCATE loyalty.ledger CASCADE', '42501', NULL, 'TRUNCATE on the ledger refused');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify(): the books are sound after all of the above');
-- verify can fail: corrupt a balance behind the API's back
SAVEPOINT corrupt;
UPDATE loyalty.accounts SET balance = (balance::bigint + 1)::loyalty.points WHERE member_id = pg_temp.id('h');
SELECT set_eq('SELECT DISTINCT invariant FROM loyalty.verify()',
              $$VALUES ('balance = sum(ledger)'), ('balance = sum(lots) - debt')$$, 'verify() reports a tampered balance');
ROLLBACK TO SAVEPOINT corrupt;

-- roles -------------------------------------------------------------------------
GRANT SELECT ON ids TO loyalty_app, loyalty_analyst, loyalty_admin;
SET LOCAL ROLE loyalty_app;
SELECT ok(loyalty.earn(pg_temp.id('a'), 1) IS NOT NULL, 'the application role can earn');
SELECT throws_ok('SELECT count(*) FROM loyalty.ledger', '42501', NULL, 'the application role cannot read tables');
SELECT throws_ok(format($$SELECT loyalty.adjust(%s, '5', 'why')$$, pg_temp.id('a')), '42501', NULL, 'the application role cannot adjust');
RESET ROLE;
SET LOCAL ROLE loyalty_analyst;
SELECT throws_ok(format('SELECT loyalty.earn(%s, 1)', pg_temp.id('a')), '42501', NULL, 'the analyst role cannot write');
RESET ROLE;
SET LOCAL ROLE loyalty_admin;
SELECT ok(loyalty.adjust(pg_temp.id('a'), '5', 'goodwill') > 0, 'the admin role can adjust');
RESET ROLE;

-- verify() catches what no constraint on the write path checks ---------------
SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books are sound before tampering');
SAVEPOINT tamper;
UPDATE loyalty.lots SET remaining = (original::bigint + 1)::loyalty.points
WHERE member_id = pg_temp.id('a') AND lot_id = (SELECT min(lot_id) FROM loyalty.lots WHERE member_id = pg_temp.id('a'));
UPDATE loyalty.allocations SET returned = (points::bigint + 1)::loyalty.points
WHERE (member_id, entry_id, lot_id) = (SELECT member_id, entry_id, lot_id FROM loyalty.allocations LIMIT 1);
UPDATE loyalty.accounts SET status = 'suspended' WHERE member_id = pg_temp.id('b');
INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points) VALUES (pg_temp.id('b'), -1, -1, '1');
INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at) VALUES (pg_temp.id('b'), -2, -2, '1', '0', now());
ALTER TABLE loyalty.ledger DISABLE TRIGGER ledger_append_only;
UPDATE loyalty.ledger SET kind = 'gift' WHERE entry_id = (SELECT min(entry_id) FROM loyalty.ledger WHERE kind = 'merge');
ALTER TABLE loyalty.ledger ENABLE TRIGGER ledger_append_only;
SELECT bag_has('SELECT invariant FROM loyalty.verify()',
               $$VALUES ('lot bounds: 0 <= reversed, remaining <= original'),
                        ('allocation bounds: 0 <= returned <= points, points > 0'),
                        ('account status = member status'),
                        ('a ledger entry has a known kind'),
                        ('an allocation names a lot of its member'),
                        ('a lot belongs to a ledger entry')$$,
               'verify() reports broken lot and allocation bounds, orphans and a stale account status');
ROLLBACK TO SAVEPOINT tamper;

SELECT * FROM finish();
ROLLBACK;
