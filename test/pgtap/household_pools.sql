-- Household pools: in a program that pools a share of earnings, each
-- household has a pool (an account no person owns) credited with that share
-- of every member's earn, in the same transaction, by single calls and by the
-- order trigger per statement alike; refunds take the share back; adults
-- redeem from the pool within their role's limits; leaving keeps the pool
-- with the household; dissolving splits it by contributions (keeping expiry)
-- or returns it.  Runs with either store.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(61);

SELECT loyalty.create_program('pools', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'app', 'mum') AS mum, loyalty.enroll(:p, 'app', 'dad') AS dad,
       loyalty.enroll(:p, 'app', 'kid') AS kid, loyalty.enroll(:p, 'app', 'gran') AS gran \gset

-- the setting ------------------------------------------------------------------------------
SELECT throws_ok(format('SELECT loyalty.set_household_rules(%s, pool_share => 0)', :p), '22023', NULL,
                 'a share of 0 is refused');
SELECT throws_ok(format('SELECT loyalty.set_household_rules(%s, pool_share => 1.5)', :p), '22023', NULL,
                 'so is more than the whole earn');
SELECT throws_ok(format('SELECT loyalty.set_household_rules(%s, pool_share => %L)', :p, 'NaN'), '22023', NULL,
                 'and NaN');
SELECT throws_ok(format('SELECT loyalty.set_household_rules(%s, pool_share => 0.1, pool_on_dissolve => %L)', :p, 'keep'),
                 '22023', NULL, 'an unknown dissolution policy');
SELECT is((SELECT household_pool_share FROM loyalty.programs WHERE program_id = :p), NULL, '... changing nothing');
-- a household that exists before pooling starts gets its pool then
SELECT loyalty.start_household(:gran, 'Gran''s') AS h0 \gset
SELECT is((SELECT pool_member FROM loyalty.households WHERE household_id = :h0), NULL, 'no pool without pooling');
SELECT loyalty.set_household_rules(:p, adult_monthly_points => 40, pool_share => 0.1);
SELECT isnt((SELECT pool_member FROM loyalty.households WHERE household_id = :h0), NULL,
            'setting a share gives existing households their pool');

SELECT loyalty.start_household(:mum, 'The Smiths') AS h \gset
SELECT pool_member AS pool FROM loyalty.households WHERE household_id = :h \gset
SELECT is((SELECT (m.status, a.status, a.balance::bigint)::text FROM loyalty.members m JOIN loyalty.accounts a USING (member_id)
           WHERE member_id = :pool), '(pool,pool,0)', 'a new household has an empty pool of status pool');
SELECT loyalty.add_household_member(:h, :dad);
SELECT loyalty.add_household_member(:h, :kid, 'child');

-- earning feeds the pool -------------------------------------------------------------------------
SELECT loyalty.earn(:mum, 200, reference => 'm-1'), loyalty.earn(:dad, 105, reference => 'd-1');
SELECT (SELECT entry_id FROM loyalty.ledger WHERE reference = 'm-1' AND kind = 'earn') AS m1,
       (SELECT entry_id FROM loyalty.ledger WHERE reference = 'd-1' AND kind = 'earn') AS d1 \gset
SELECT is((SELECT array_agg(balance::bigint ORDER BY member_id) FROM loyalty.accounts WHERE member_id IN (:mum, :dad, :pool)),
          ARRAY[200, 105, 30]::bigint[], 'members keep all they earn; the pool gets a tenth of each (10.5 rounded down)');
SELECT is((SELECT (kind, points::bigint, reference, source_entry, details ->> 'member')::text FROM loyalty.ledger
           WHERE member_id = :pool ORDER BY entry_id LIMIT 1),
          format('(household_share,20,m-1,%s,%s)', :m1, :mum), 'the pool''s entry names the earn it came from');
SELECT is((SELECT (s.points, s.share_entry)::text FROM loyalty.household_shares s WHERE s.member_id = :dad AND s.entry_id = :d1),
          (SELECT (10, entry_id)::text FROM loyalty.ledger WHERE member_id = :pool AND source_entry = :d1),
          'the share is recorded with the earner''s entry');
SELECT is((SELECT expires_at FROM loyalty.lots WHERE member_id = :pool AND entry_id = (SELECT share_entry FROM loyalty.household_shares WHERE entry_id = :d1)),
          (SELECT expires_at FROM loyalty.lots WHERE member_id = :dad AND entry_id = :d1),
          'the share expires with the purchase''s points');
SELECT loyalty.earn(:kid, 50, idempotency_key => 'k-1');
SELECT is(loyalty.earn(:kid, 50, idempotency_key => 'k-1'), 50::bigint, 'a replayed earn');
SELECT is((SELECT count(*) FROM loyalty.household_shares WHERE member_id = :kid), 1::bigint, '... feeds the pool once');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :pool), 35::bigint, 'a child''s earn feeds it too');
SELECT loyalty.earn(:gran, 9);
SELECT is((SELECT balance::bigint FROM loyalty.accounts a JOIN loyalty.households h ON h.pool_member = a.member_id
           WHERE h.household_id = :h0), 0::bigint, 'a share that rounds to nothing writes nothing');
SELECT is((SELECT count(*) FROM loyalty.ledger l JOIN loyalty.households h ON h.pool_member = l.member_id
           WHERE h.household_id = :h0), 0::bigint, '... not even an entry');

-- a pool is not a member -----------------------------------------------------------------------
SELECT throws_ok(format('SELECT loyalty.earn(%s, 10)', :pool), '55000', NULL, 'a pool cannot earn');
SELECT throws_ok(format('SELECT loyalty.redeem(%s, 1)', :pool), '55000', NULL, 'nor be redeemed from directly');
SELECT throws_ok(format('SELECT loyalty.award(%s, 1, %L)', :pool, 'gift'), '55000', NULL, 'nor be awarded points');
SELECT throws_ok(format('SELECT loyalty.transfer(%s, %s, 1)', :mum, :pool), '55000', NULL, 'nor receive a transfer');
SELECT throws_ok(format('SELECT loyalty.set_member_status(%s, %L)', :pool, 'active'), '55000', NULL, 'nor be made a member');
SELECT throws_ok(format('SELECT loyalty.merge_members(%s, %s)', :mum, :pool), '55000', NULL, 'nor be merged');
SELECT throws_ok(format('SELECT loyalty.erase_member(%s)', :pool), '55000', NULL, 'nor be erased');
SELECT throws_ok(format('SELECT loyalty.start_household(%s)', :pool), '55000', NULL, 'nor start a household');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :pool), 35::bigint, '... all of it changing nothing');

-- redeeming from the pool ----------------------------------------------------------------------
SELECT loyalty.household_redeem(:dad, 25, reference => 'gift', idempotency_key => 'hp-1') AS r1 \gset
SELECT is((SELECT array_agg(balance::bigint ORDER BY member_id) FROM loyalty.accounts WHERE member_id IN (:mum, :dad, :kid, :pool)),
          ARRAY[200, 105, 50, 10]::bigint[], 'an adult redeems from the pool; the members'' own points stay');
SELECT is((SELECT (member_id, points::bigint, details ->> 'redeemed_by')::text FROM loyalty.ledger WHERE entry_id = :r1),
          format('(%s,-25,%s)', :pool, :dad), 'one redeem entry of the pool, naming who redeemed');
SELECT is(loyalty.household_redeem(:dad, 25, reference => 'gift', idempotency_key => 'hp-1'), :r1::bigint, 'a replay');
SELECT is((SELECT count(*) FROM loyalty.ledger WHERE member_id = :pool AND kind = 'redeem'), 1::bigint, '... writes nothing');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 1)', :kid), 'LY061', NULL, 'children may not by default');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 11)', :mum), 'LY001', NULL, 'no more than the pool has');
SELECT throws_ok(format('SELECT loyalty.household_redeem(%s, 16)', :dad), 'LY061',
                 'household limit reached: member ' || :dad || ' (adult) has redeemed 25 of 40 points this month',
                 'an adult''s monthly limit counts what it redeemed from the pool');
SELECT lives_ok(format('SELECT loyalty.household_redeem(%s, 4)', :mum), 'another adult redeems within its own limit');
SELECT is((SELECT (pool_points, pool_liability, pool_earned, household_redemptions)::text FROM loyalty.household_summary
           WHERE household_id = :h), '(6,0.06,35,29)', 'the household''s summary shows its pool');

-- refunds take the share back ------------------------------------------------------------------
-- the pool spent mum's share first (its lots all expire together; the oldest goes first)
SELECT loyalty.refund(:mum, 'm-1', 100);
SELECT is((SELECT (points::bigint, details ->> 'requested', details ->> 'shortfall')::text FROM loyalty.ledger
           WHERE member_id = :pool AND kind = 'reverse'),
          '(-6,10,4)', 'half the purchase refunded: half the share taken back, the 4 already spent forgiven');
SELECT is((SELECT reversed FROM loyalty.household_shares WHERE member_id = :mum AND entry_id = :m1), 10::bigint,
          'the share records what was taken back');
SELECT loyalty.refund(:mum, 'm-1');
SELECT is((SELECT array_agg(points::bigint ORDER BY entry_id) FROM loyalty.ledger WHERE member_id = :pool AND kind = 'reverse'),
          ARRAY[-6, 0]::bigint[], 'the rest refunded: the rest of the share, all of it forgiven (the pool is empty)');
SELECT is((SELECT (balance::bigint, lifetime_earned::bigint)::text FROM loyalty.accounts WHERE member_id = :pool),
          '(0,15)', 'the pool''s balance and net earnings');

-- the order trigger per statement feeds and refunds the pool the same way --------------------------
CREATE TEMP TABLE orders (id bigint PRIMARY KEY, customer bigint, total numeric NOT NULL, status text NOT NULL DEFAULT 'paid');
CREATE TRIGGER loyalty_ins AFTER INSERT ON orders REFERENCING NEW TABLE AS loyalty_new
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
CREATE TRIGGER loyalty_del AFTER DELETE ON orders REFERENCING OLD TABLE AS loyalty_old
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.order_trigger('customer', 'total', 'id', 'status');
INSERT INTO orders (id, customer, total) VALUES (1, :dad, 100), (2, :kid, 30), (3, :mum, 50), (4, :gran, 70);
SELECT is((SELECT array_agg((l.points::bigint, l.reference, x.member_id)::text ORDER BY l.reference)
           FROM loyalty.ledger l JOIN loyalty.ledger x ON x.entry_id = l.source_entry
           WHERE l.member_id = :pool AND l.kind = 'household_share' AND l.reference IN ('1', '2', '3')),
          ARRAY[format('(10,1,%s)', :dad), format('(3,2,%s)', :kid), format('(5,3,%s)', :mum)],
          'one statement of orders: each earn''s share, linked to it');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :pool), 18::bigint, 'the pool has them');
SELECT is((SELECT balance::bigint FROM loyalty.accounts a JOIN loyalty.households h ON h.pool_member = a.member_id
           WHERE h.household_id = :h0), 7::bigint, 'another household''s pool in the same statement');
DELETE FROM orders WHERE id = 1;
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :pool), 8::bigint,
          'a deleted order takes its share back in the statement too');

-- leaving: points stay with who earned them, the pool with the household ----------------------------
SELECT loyalty.leave_household(:kid);
SELECT loyalty.earn(:kid, 100);
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :pool), 8::bigint,
          'who left keeps its points and no longer feeds the pool');

-- dissolving: the pool is split by contributions, keeping expiry ------------------------------------
-- what mum's and dad's earnings gave it, net of refunds: mum 0 + 5, dad 10 + 10 - 10
SELECT is((SELECT array_agg(x.s ORDER BY x.member_id) FROM (SELECT member_id, sum(points - reversed) AS s
           FROM loyalty.household_shares WHERE household_id = :h AND member_id IN (:mum, :dad) GROUP BY 1) x),
          ARRAY[5, 10]::numeric[], 'contributions');
SELECT balance::bigint AS mum_before FROM loyalty.accounts WHERE member_id = :mum \gset
SELECT balance::bigint AS dad_before FROM loyalty.accounts WHERE member_id = :dad \gset
SELECT is(loyalty.dissolve_household(:h), 2, 'the household is dissolved');
-- 8 x 5/15 = 2.67 and 8 x 10/15 = 5.33: 2 and 5, and the point left over to the larger remainder
SELECT is((SELECT array_agg(points::bigint ORDER BY member_id) FROM loyalty.ledger
           WHERE kind = 'transfer' AND details ->> 'household' = :'h' AND points::bigint > 0),
          ARRAY[3, 5]::bigint[], 'the pool split 3 : 5, by largest remainders');
SELECT is((SELECT array_agg(balance::bigint ORDER BY member_id) FROM loyalty.accounts WHERE member_id IN (:mum, :dad)),
          ARRAY[:mum_before + 3, :dad_before + 5]::bigint[], 'the members have their parts');
SELECT is((SELECT (sum(l.original::bigint), bool_and(l.expires_at = now() + interval '1 year'))::text
           FROM loyalty.lots l JOIN loyalty.ledger t ON t.member_id = l.member_id AND t.entry_id = l.entry_id
           WHERE t.kind = 'transfer' AND t.details ->> 'household' = :'h' AND t.points::bigint > 0),
          '(8,t)', 'their lots keep the pool''s expiry');
SELECT is((SELECT (m.status, a.balance::bigint)::text FROM loyalty.members m JOIN loyalty.accounts a USING (member_id)
           WHERE member_id = :pool), '(closed,0)', 'the pool is closed, empty');
SELECT is((SELECT count(*) FROM loyalty.household_summary WHERE household_id = :h), 0::bigint, 'and the household gone');
SELECT is((SELECT count(*) FROM loyalty.transfers WHERE from_member = :pool), 2::bigint, 'the parts are listed as transfers');
SELECT loyalty.set_transfer_rules(:p, receiver_monthly_points => 5);
SELECT lives_ok(format('SELECT loyalty.transfer(%s, %s, 5)', :mum, :dad),
                'the parts do not count against a receiver''s monthly transfer limit');

-- batch jobs: a pool's expiring points are announced to the household's owner; tier reviews
-- leave pools alone ----------------------------------------------------------------------------------
SELECT pool_member AS pool0 FROM loyalty.households WHERE household_id = :h0 \gset
SELECT loyalty.earn(:gran, 100, occurred_at => now() - interval '350 days');    -- the pool's 10 expire in 15 days
SELECT is(loyalty.notify_expiring(interval '30 days'), 2::bigint, 'two notices: gran''s own points and her pool''s');
SELECT is((SELECT array_agg(member_id::text || coalesce(':' || (payload ->> 'household'), '') || ':' || (payload ->> 'points') ORDER BY event_id)
           FROM loyalty.events WHERE kind = 'points.expiring'),
          ARRAY[format('%s:100', :gran), format('%s:%s:10', :gran, :h0)], 'the pool''s, to its owner, naming the household');
SELECT is(loyalty.notify_expiring(interval '30 days'), 0::bigint, 'each once');
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT loyalty.define_tier(:p, 0, 'Blue', 0);
SELECT loyalty.review_tiers_batch(:p, now(), 0, 1000);
SELECT is((SELECT array_agg(DISTINCT x.s ORDER BY x.s) FROM (SELECT a.status || ':' || coalesce(loyalty.tier_name(a.tier), '-') AS s
           FROM loyalty.accounts a WHERE a.program_id = :p) x),
          ARRAY['active:Blue', 'closed:-', 'pool:-'], 'a review gives members their tier, pools none');

-- ... or returned to the program ----------------------------------------------------------------------
SELECT loyalty.set_household_rules(:p, pool_share => 0.1, pool_on_dissolve => 'forfeit');
SELECT is(loyalty.dissolve_household(:h0), 1, 'a household dissolved under the forfeit policy');
SELECT is((SELECT (points::bigint, m.status)::text FROM loyalty.ledger l JOIN loyalty.members m USING (member_id)
           WHERE l.member_id = :pool0 AND kind = 'forfeit'), '(-17,closed)', 'its pool returned its 17 points and closed');
SELECT is((SELECT balance::bigint FROM loyalty.accounts WHERE member_id = :gran), 179::bigint, 'gran keeps her own points');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');

SELECT * FROM finish();
ROLLBACK;
