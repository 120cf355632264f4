-- Multi-program isolation: a role bound to program A (loyalty.bind_role) can
-- neither act on nor see program B's members, ledger or views, through the
-- API, the views or (given table access) the tables' row-level security.
-- Roles without a binding, and superusers, are not restricted.
BEGIN;
SELECT plan(41);

CREATE ROLE iso_shop_a;
CREATE ROLE iso_analyst_a;
CREATE ROLE iso_admin_a;
CREATE ROLE iso_free;
GRANT loyalty_app TO iso_shop_a, iso_free;
GRANT loyalty_analyst TO iso_analyst_a;
GRANT loyalty_admin TO iso_admin_a;

SELECT loyalty.create_program('iso A') AS a \gset
SELECT loyalty.create_program('iso B') AS b \gset
SELECT loyalty.enroll(:a, 'pos', 'a1') AS ma \gset
SELECT loyalty.enroll(:b, 'pos', 'b1') AS mb \gset
SELECT loyalty.earn(:ma, 100) AS seeded_a \gset
SELECT loyalty.earn(:mb, 200) AS seeded_b \gset
SELECT loyalty.create_reward(:b, 'B-MUG', 'mug', '10') AS rb \gset

SELECT lives_ok(format($$SELECT loyalty.bind_role(%s, 'iso_shop_a')$$, :a), 'an administrator binds a role to a program');
SELECT loyalty.bind_role(:a, 'iso_analyst_a') IS NULL AS bound \gset
SELECT loyalty.bind_role(:a, 'iso_admin_a') IS NULL AS bound \gset
SELECT throws_ok(format($$SELECT loyalty.bind_role(%s, 'no_such_role_x')$$, :a), '42704', NULL,
                 'binding an unknown role is refused');
SELECT throws_ok($$SELECT loyalty.bind_role(-1, 'iso_shop_a')$$, 'P0002', NULL,
                 'binding to an unknown program is refused');

-- the bound application role: its own program works ...
SET ROLE iso_shop_a;
SELECT lives_ok(format($$SELECT loyalty.earn(%s, 10)$$, :ma), 'bound role earns for its own program');
SELECT is((SELECT balance::text FROM loyalty.balance(:ma)), '110', 'bound role reads its own member''s balance');
SELECT is(loyalty.member_id(:a, 'pos', 'a1'), :ma::bigint, 'bound role looks up its own program''s identities');
SELECT lives_ok(format($$SELECT loyalty.enroll(%s, 'pos', 'a2')$$, :a), 'bound role enrolls in its own program');
-- ... every call on the other program is refused with 42501
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 10)$$, :mb), '42501', NULL, 'earn on another program''s member refused');
SELECT throws_ok(format($$SELECT loyalty.redeem(%s, '5')$$, :mb), '42501', NULL, 'redeem refused');
SELECT throws_ok(format($$SELECT loyalty.award(%s, '5', 'gift')$$, :mb), '42501', NULL, 'award refused');
SELECT throws_ok(format($$SELECT loyalty.hold(%s, '5', interval '1 hour')$$, :mb), '42501', NULL, 'hold refused');
SELECT throws_ok(format($$SELECT * FROM loyalty.balance(%s)$$, :mb), '42501', NULL, 'balance refused');
SELECT throws_ok(format($$SELECT loyalty.balance_at(%s, now())$$, :mb), '42501', NULL, 'balance_at refused');
SELECT throws_ok(format($$SELECT * FROM loyalty.history(%s)$$, :mb), '42501', NULL, 'history refused');
SELECT throws_ok(format($$SELECT loyalty.enroll(%s, 'pos', 'b2')$$, :b), '42501', NULL, 'enroll in another program refused');
SELECT throws_ok(format($$SELECT loyalty.member_id(%s, 'pos', 'b1')$$, :b), '42501', NULL, 'identity lookup in another program refused');
SELECT throws_ok(format($$SELECT loyalty.link_identity(%s, 'web', 'x')$$, :mb), '42501', NULL, 'link_identity refused');
SELECT throws_ok(format($$SELECT loyalty.redeem_reward(%s, %s)$$, :mb, :rb), '42501', NULL, 'reward redemption refused');
SELECT throws_ok(format($$SELECT loyalty.merge_members(%s, %s)$$, :ma, :mb), '42501', NULL,
                 'merging another program''s member refused');
RESET ROLE;
SELECT is((SELECT balance::text FROM loyalty.balance(:mb)), '200', 'the refused calls changed nothing');
SELECT is((SELECT actor FROM loyalty.ledger WHERE member_id = :ma AND points::bigint = 10), 'iso_shop_a',
          'the ledger records the calling role as actor, not the extension owner');
SELECT is((SELECT count(*) FROM loyalty.members WHERE program_id = :b), 1::bigint, 'no member was enrolled in B');

-- the bound analyst sees only its program in every view
SET ROLE iso_analyst_a;
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.kpi_summary), ARRAY[:a::bigint], 'kpi_summary shows only A');
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.kpi_daily), ARRAY[:a::bigint], 'kpi_daily shows only A');
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.kpi_monthly), ARRAY[:a::bigint], 'kpi_monthly shows only A');
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.member_rfm), ARRAY[:a::bigint], 'member_rfm shows only A');
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.channel_distribution), ARRAY[:a::bigint], 'channel_distribution shows only A');
SELECT is((SELECT count(*) FROM loyalty.reward_popularity), 0::bigint, 'reward_popularity hides B''s reward');
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.cohort_retention), ARRAY[:a::bigint], 'cohort_retention shows only A');
RESET ROLE;

-- the bindings are read under search_path = pg_catalog, pg_temp, set and
-- restored by the C code (no SET clause: views call it per row)
CREATE TEMP TABLE iso_inval (x int);  -- a relcache invalidation: the bindings are read again
SET search_path = iso_nowhere, public;
SET ROLE iso_analyst_a;
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.kpi_summary), ARRAY[:a::bigint],
          'under another search_path the analyst still sees only A');
SELECT is(current_setting('search_path'), 'iso_nowhere, public', '... and its search_path is left as it was');
RESET ROLE;
RESET search_path;

-- a bound administrator cannot configure another program
SET ROLE iso_admin_a;
SELECT throws_ok(format($$SELECT loyalty.create_reward(%s, 'B-CUP', 'cup', '5')$$, :b), '42501', NULL,
                 'bound administrator cannot create rewards in another program');
SELECT throws_ok(format($$SELECT loyalty.bind_role(%s, 'iso_admin_a')$$, :b), '42501', NULL,
                 'bound administrator cannot bind itself to another program');
RESET ROLE;

-- row-level security on the tables, for a role given direct access
GRANT SELECT ON loyalty.ledger, loyalty.members, loyalty.lots TO iso_analyst_a;
SET ROLE iso_analyst_a;
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.ledger), ARRAY[:a::bigint], 'ledger rows of B are hidden by row-level security');
SELECT is((SELECT array_agg(DISTINCT program_id) FROM loyalty.members), ARRAY[:a::bigint], 'members of B are hidden');
SELECT is((SELECT count(*) FROM loyalty.lots WHERE member_id = :mb), 0::bigint, 'lots of B''s member are hidden (member_visible)');
RESET ROLE;

-- an unbound role and the superuser see everything
SET ROLE iso_free;
SELECT lives_ok(format($$SELECT loyalty.earn(%s, 1)$$, :mb), 'an unbound application role is not restricted');
RESET ROLE;
SELECT is((SELECT count(DISTINCT program_id) FROM loyalty.kpi_summary WHERE program_id IN (:a, :b)), 2::bigint,
          'the superuser sees both programs');

-- unbinding lifts the restriction at once (same transaction, next statement)
SELECT ok(loyalty.unbind_role(:a, 'iso_shop_a'), 'unbind_role reports the removed binding');
SET ROLE iso_shop_a;
SELECT lives_ok(format($$SELECT loyalty.earn(%s, 1)$$, :mb), 'after unbinding, the role is no longer restricted');
RESET ROLE;
-- and binding takes effect at once too
SELECT loyalty.bind_role(:a, 'iso_shop_a') IS NULL AS bound \gset
SET ROLE iso_shop_a;
SELECT throws_ok(format($$SELECT loyalty.earn(%s, 1)$$, :mb), '42501', NULL, 'binding again restricts at once');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
