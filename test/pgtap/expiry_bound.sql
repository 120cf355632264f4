-- Lots and the expiry bound (1.3).  A debit that leaves a lot open updates it
-- in place (HOT: the open-lot index is partial on the generated is_open, not
-- on remaining).  The expiry job finds its members through
-- accounts.next_expiry_at, a lower bound of each member's first open expiry:
-- every write that opens a lot keeps it low, expire_member() makes it exact,
-- and verify() reports an account whose bound lies after an open lot.
BEGIN;
SELECT plan(20);

SELECT loyalty.create_program('eb', expiry_period => interval '30 days') AS p \gset
SELECT loyalty.enroll(:p, 'pos', 'eb-a') AS a \gset
CREATE FUNCTION pg_temp.bound(m bigint) RETURNS timestamptz
    LANGUAGE sql AS 'SELECT next_expiry_at FROM loyalty.accounts WHERE member_id = m';
CREATE FUNCTION pg_temp.lot_expiry(m bigint, lot bigint) RETURNS timestamptz
    LANGUAGE sql AS 'SELECT expires_at FROM loyalty.lots WHERE member_id = m AND lot_id = lot';

-- the bound follows the lots that open
SELECT is(pg_temp.bound(:a), NULL, 'a member without lots has no expiry bound');
SELECT loyalty.earn(:a, 100) AS e1 \gset
SELECT entry_id AS e1 FROM loyalty.ledger WHERE member_id = :a AND kind = 'earn' \gset
SELECT is(pg_temp.bound(:a), pg_temp.lot_expiry(:a, :e1), 'the first expiring lot sets the bound');
SELECT loyalty.earn(:a, 50);
SELECT is(pg_temp.bound(:a), pg_temp.lot_expiry(:a, :e1), 'a later-expiring lot leaves it');
SELECT loyalty.award(:a, '10', 'early', expires_at => now() + interval '5 days') AS early \gset
SELECT is(pg_temp.bound(:a), now() + interval '5 days', 'an earlier-expiring award lowers it');

-- a partial debit updates its lot in place; emptying a lot closes it
SELECT n_tup_upd AS upd0, n_tup_hot_upd AS hot0 FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.lots'::regclass \gset
SELECT loyalty.redeem(:a, '4');
SELECT results_eq(format($$SELECT n_tup_upd - %s, n_tup_hot_upd - %s FROM pg_stat_xact_user_tables
                          WHERE relid = 'loyalty.lots'::regclass$$, :upd0, :hot0),
                  'VALUES (1::bigint, 1::bigint)', 'a debit that leaves its lot open is a HOT update');
SELECT is((SELECT is_open FROM loyalty.lots WHERE member_id = :a AND lot_id = :early), true, 'the lot is still open');
SELECT loyalty.redeem(:a, '6');
SELECT is((SELECT (remaining::bigint, is_open) FROM loyalty.lots WHERE member_id = :a AND lot_id = :early),
          (0::bigint, false), 'an emptied lot is closed');
SELECT is(pg_temp.bound(:a), now() + interval '5 days', 'the bound stays low after the lot closed (a lower bound)');
SELECT is(loyalty.redeem(:a, '100') > 0, true, 'the open-lot index still finds the remaining lots');
SELECT is(loyalty.expire_member(:a)::bigint, 0::bigint, 'expire_member with nothing due expires nothing');
SELECT is(pg_temp.bound(:a), pg_temp.lot_expiry(:a, :e1), '... and makes the bound exact');

-- a refund gives points back to a lot that expires before the bound
SELECT loyalty.enroll(:p, 'pos', 'eb-c') AS c \gset
SELECT loyalty.earn(:c, 20, occurred_at => now() - interval '20 days') AS x \gset
SELECT entry_id AS old FROM loyalty.ledger WHERE member_id = :c AND kind = 'earn' \gset
SELECT loyalty.earn(:c, 30);
SELECT loyalty.redeem(:c, '20') AS r \gset
SELECT is(loyalty.expire_member(:c)::bigint, 0::bigint, 'the emptied first lot has nothing to expire');
SELECT isnt(pg_temp.bound(:c), pg_temp.lot_expiry(:c, :old), 'the exact bound skips the emptied lot');
SELECT loyalty.reverse(:c, :r);
SELECT is(pg_temp.bound(:c), pg_temp.lot_expiry(:c, :old), 'reversing the redemption reopens the lot and lowers the bound');

-- the expiry job reaches members through the bound, and stops
SELECT loyalty.enroll(:p, 'pos', 'eb-d') AS d \gset
SELECT loyalty.earn(:d, 40, occurred_at => now() - interval '40 days');
SELECT loyalty.earn(:d, 15);
SELECT results_eq('SELECT members, points::bigint FROM loyalty.expire_batch(now(), 100)',
                  'VALUES (1::bigint, 40::bigint)', 'expire_batch finds the one member with a lot due');
SELECT results_eq('SELECT members, points::bigint FROM loyalty.expire_batch(now(), 100)',
                  'VALUES (0::bigint, 0::bigint)', 'a second batch finds nobody');
SELECT cmp_ok(pg_temp.bound(:d), '>', now(), 'the member''s bound moved to its next lot');

-- a merge brings lots that may expire first
SELECT loyalty.enroll(:p, 'pos', 'eb-s') AS s \gset
SELECT loyalty.earn(:s, 10);
SELECT loyalty.enroll(:p, 'pos', 'eb-z') AS z \gset
SELECT loyalty.award(:z, '5', 'soon', expires_at => now() + interval '2 days');
SELECT loyalty.merge_members(:s, :z);
SELECT results_eq(format('SELECT next_expiry_at FROM loyalty.accounts WHERE member_id IN (%s, %s) ORDER BY member_id = %s', :s, :z, :z),
                  $$VALUES (now() + interval '2 days'), (NULL::timestamptz)$$,
                  'the survivor''s bound takes the moved lot''s expiry; the absorbed member has none');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds nothing wrong');
UPDATE loyalty.accounts SET next_expiry_at = now() + interval '1 year' WHERE member_id = :s;
SELECT is((SELECT count(*) FROM loyalty.verify()
           WHERE invariant = 'no open lot expires before the account''s expiry bound' AND member_id = :s),
          1::bigint, 'verify() reports a bound that lies after an open lot');

SELECT * FROM finish();
ROLLBACK;
