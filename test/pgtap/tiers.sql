-- Tiers: metrics and windows (with the boundary day), upgrade in the earn
-- transaction, review downgrades with and without grace, locks, refunds,
-- multipliers, history and tier_at.
BEGIN;
SET LOCAL search_path = public, loyalty;   -- pgTAP compares tiers with the tier operators
SELECT plan(44);

SELECT loyalty.create_program('tiers') AS p \gset
SELECT loyalty.set_tier_policy(:p, 'spend');
SELECT is(loyalty.define_tier(:p, 0, 'Blue', 0), '0:Blue'::loyalty.tier, 'define_tier returns the tier');
SELECT loyalty.define_tier(:p, 1, 'Silver', 100);
SELECT loyalty.define_tier(:p, 2, 'Gold', 500, earn_multiplier => 2, benefits => '{"lounge": true}');
SELECT loyalty.define_tier(:p, 3, 'Black', 0, invitation_only => true);

SELECT loyalty.enroll(:p, 'pos', 't-1') AS m \gset

-- rolling window and the boundary day ------------------------------------------
SELECT loyalty.earn(:m, 80, occurred_at => '2026-01-10 12:00+00');
SELECT is(loyalty.tier_metric(:m, '2026-06-01'), 80::numeric, 'spend counts inside the window');
SELECT is(loyalty.tier_metric(:m, '2027-01-10 11:59:59+00'), 80::numeric, 'one second before its 12-month anniversary the purchase still counts');
SELECT is(loyalty.tier_metric(:m, '2027-01-10 12:00+00'), 0::numeric, 'on the boundary instant it has aged out');
SELECT is(loyalty.tier_metric(:m, '2026-01-10 11:00+00'), 0::numeric, 'a purchase after as_of does not count');

-- upgrade in the earn's own transaction -----------------------------------------
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :m), '0:Blue'::loyalty.tier, 'the first earn qualified for Blue');
SAVEPOINT s;
SELECT loyalty.earn(:m, 30);
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :m), '1:Silver'::loyalty.tier, 'crossing 100 upgrades at once, in the earn');
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :m AND kind = 'tier.changed'), 2::bigint,
          'each change emits tier.changed');
ROLLBACK TO SAVEPOINT s;
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :m), '0:Blue'::loyalty.tier, 'a rolled-back earn leaves the tier as it was');

SELECT loyalty.earn(:m, 30);
SELECT results_eq(format('SELECT tier::text, qualified_tier::text, metric, value, next_tier::text, distance FROM loyalty.evaluate_tier(%s)', :m),
                  $$VALUES ('1:Silver', '1:Silver', 'spend', 110::numeric, '2:Gold', 390::numeric)$$,
                  'evaluate_tier: current tier, metric, next tier and the distance to it');
SELECT is(loyalty.earn(:m, 400)::bigint, 400::bigint, 'the earn that reaches Gold earns at the old multiplier');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :m), '2:Gold'::loyalty.tier, '... and upgrades to Gold');
SELECT is(loyalty.earn(:m, 10)::bigint, 20::bigint, 'Gold''s earn multiplier applies from the next earn');
SELECT ok((SELECT details->'rules' @> '[{"rule": "tier Gold"}]' FROM loyalty.ledger
           WHERE member_id = :m AND kind = 'earn' ORDER BY created_at DESC, entry_id DESC LIMIT 1),
          'the explanation names the tier multiplier');
SELECT is((SELECT count(*) FROM loyalty.tier_history WHERE member_id = :m), 3::bigint, 'history: Blue, Silver, Gold');

-- invitation-only tiers are never reached by qualification
SELECT is(loyalty.qualified_tier(:m), '2:Gold'::loyalty.tier, 'Black (invitation only) is not qualified for');

-- review: one step down, grace --------------------------------------------------
SELECT loyalty.enroll(:p, 'pos', 't-2') AS r \gset
SELECT loyalty.earn(:r, 600, occurred_at => '2026-02-01 10:00+00');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :r), '2:Gold'::loyalty.tier, 'r is Gold');
SELECT is(loyalty.review_member_tier(:r, '2026-12-01'), false, 'a review while qualified changes nothing');
SELECT is(loyalty.review_member_tier(:r, '2027-03-01'), true, 'after the purchase aged out a review lowers the tier');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :r), '1:Silver'::loyalty.tier, '... by one step only');
SELECT is(loyalty.review_member_tier(:r, '2027-03-02'), true, 'the next review takes the next step');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :r), '0:Blue'::loyalty.tier, '... to Blue');

UPDATE loyalty.programs SET tier_grace = interval '30 days', tier_downgrade = 'to_qualified' WHERE program_id = :p;
SELECT loyalty.enroll(:p, 'pos', 't-3') AS g \gset
SELECT loyalty.earn(:g, 600, occurred_at => '2026-02-01 10:00+00');
SELECT is(loyalty.review_member_tier(:g, '2027-03-01'), false, 'with grace, the first failing review only starts the grace period');
SELECT is((SELECT tier_grace_until FROM loyalty.accounts WHERE member_id = :g), '2027-03-31'::timestamptz, '... of 30 days');
SELECT is(loyalty.review_member_tier(:g, '2027-03-30'), false, 'inside the grace period nothing changes');
SELECT is(loyalty.review_member_tier(:g, '2027-03-31'), true, 'after it the tier falls');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :g), '0:Blue'::loyalty.tier, '... straight to the qualified tier (to_qualified)');

-- a manual assignment with an end date holds through reviews ----------------------
SELECT loyalty.assign_tier(:g, '3:Black', until => '2027-06-01', reason => 'invited');
SELECT is(loyalty.review_member_tier(:g, '2027-05-01'), false, 'an assigned tier is kept until its end date');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :g), '3:Black'::loyalty.tier, '... Black');
UPDATE loyalty.programs SET tier_grace = interval '0' WHERE program_id = :p;
SELECT is(loyalty.review_member_tier(:g, '2027-06-02'), true, 'after the end date the review applies');
SELECT throws_ok(format($$SELECT loyalty.assign_tier(%s, '5:Diamond')$$, :g), '22023', NULL, 'a tier off the ladder is refused');

-- history and tier_at --------------------------------------------------------------
SELECT is(loyalty.tier_at(:g, '2000-01-01'), NULL, 'no tier before the first change');
SELECT is(loyalty.tier_at(:g, now()), (SELECT tier FROM loyalty.accounts WHERE member_id = :g), 'tier_at(now) is the current tier');

-- refunds ---------------------------------------------------------------------------
SELECT loyalty.enroll(:p, 'pos', 't-4') AS f \gset
SELECT loyalty.earn(:f, 150) AS dummy \gset
SELECT max(entry_id) AS fe FROM loyalty.ledger WHERE member_id = :f AND kind = 'earn' \gset
SELECT loyalty.reverse(:f, :fe, amount => 100);
SELECT is(loyalty.tier_metric(:f), 50::numeric, 'a refund lowers the qualifying spend');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :f), '1:Silver'::loyalty.tier, 'without refund_demotes the tier stays until review');
UPDATE loyalty.programs SET tier_refund_demotes = true WHERE program_id = :p;
SELECT loyalty.reverse(:f, :fe, amount => 10);
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :f), '0:Blue'::loyalty.tier, 'with refund_demotes a refund demotes at once');

-- an upgrade through the channel trigger, in the sale's transaction ------------------
SELECT loyalty.enroll(:p, 'web', 't-5') AS o \gset
CREATE TEMP TABLE orders (id bigint, member bigint, total numeric, status text);
CREATE TRIGGER orders_loyalty AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION loyalty.order_trigger('member', 'total', 'id', 'status');
INSERT INTO orders VALUES (1, :o, 120, 'paid');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :o), '1:Silver'::loyalty.tier,
          'an order inserted through the channel trigger upgrades at once');

-- other metrics and windows ----------------------------------------------------------
SELECT loyalty.create_program('visits') AS v \gset
SELECT loyalty.set_tier_policy(:v, 'visits', 'calendar', 12);
SELECT loyalty.define_tier(:v, 1, 'Regular', 3);
SELECT loyalty.enroll(:v, 'pos', 'v-1', joined_at => '2026-01-01 12:00+00') AS vm \gset
SELECT loyalty.earn(:vm, 5, occurred_at => '2025-12-31 10:00+00');
SELECT loyalty.earn(:vm, 5, occurred_at => '2026-01-01 10:00+00');
SELECT loyalty.earn(:vm, 5, occurred_at => '2026-01-01 18:00+00');
SELECT loyalty.earn(:vm, 5, occurred_at => '2026-03-01 10:00+00');
SELECT is(loyalty.tier_metric(:vm, '2026-06-01'), 2::numeric, 'visits: distinct days in the calendar year (2025 not included)');
SELECT loyalty.set_tier_policy(:v, 'points', 'anniversary', 12);
SELECT is(loyalty.tier_metric(:vm, '2026-06-01'), 10::numeric, 'points earned in the current membership year (from the join date at 12:00)');
SELECT throws_ok(format($$SELECT loyalty.set_tier_policy(%s, 'spend', 'calendar', 0)$$, :v), '22023',
                 'window_months must be between 1 and 120, got 0', 'a window of 0 months is refused (22023), not divided by');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');
-- an earn reads the qualification window only when the member's lifetime
-- total could reach a higher tier ------------------------------------------------
SELECT loyalty.enroll(:p, 'pos', 't-9') AS m9 \gset
SELECT loyalty.earn(:m9, 10);
CREATE TEMP VIEW ledger_reads AS
SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.ledger'::regclass;
SELECT n AS r0 FROM ledger_reads \gset
SELECT loyalty.earn(:m9, 10);
SELECT is((SELECT n FROM ledger_reads) - :r0, 0::bigint,
          'an earn that cannot reach the next tier (lifetime spend 20 < 100) does not read the window');
SELECT n AS r1 FROM ledger_reads \gset
SELECT loyalty.earn(:m9, 85);
SELECT cmp_ok((SELECT n FROM ledger_reads) - :r1, '>', 0::bigint, 'one that can (105 >= 100) reads it');
SELECT is((SELECT tier FROM loyalty.accounts WHERE member_id = :m9), '1:Silver'::loyalty.tier, '... and upgrades');

SELECT * FROM finish();
ROLLBACK;
