-- The batch procedures commit as they go, so they run outside a transaction
-- block (not in pgTAP): expiry in batches with progress, safe to run twice,
-- and the sweep of expired holds.
SET search_path = loyalty, public;
\set VERBOSITY terse
SELECT create_program('batch', expiry_period => '1 year') AS p \gset
SELECT count(enroll(:p, 'pos', 'b' || g)) AS enrolled FROM generate_series(1, 5) g;
SELECT member_id(:p, 'pos', 'b1') AS m1 \gset
-- members 1-5: 10 points that expired 35 days ago, 20 fresh points each
SELECT sum(earn(member_id(:p, 'pos', 'b' || g), 10, occurred_at => now() - interval '400 days')::bigint) AS old,
       sum(earn(member_id(:p, 'pos', 'b' || g), 20)::bigint) AS fresh
FROM generate_series(1, 5) g;
SELECT sum(available::bigint) AS available, sum(expired_unposted::bigint) AS expired_unposted
FROM members m, LATERAL balance(m.member_id) b WHERE m.program_id = :p;
-- as of a future time is refused
DO $$
BEGIN
    CALL loyalty.expire_points(now() + interval '1 day');
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE 'refused with %', SQLSTATE;
END $$;
-- two members per batch: three commits, progress reported
CALL expire_points(batch_size => 2);
SELECT sum(balance::bigint) AS balance, sum(lifetime_expired::bigint) AS expired
FROM members m, LATERAL balance(m.member_id) b WHERE m.program_id = :p;
-- a second run finds nothing left to do
CALL expire_points();
SELECT count(*) AS expire_entries FROM ledger WHERE kind = 'expire' AND program_id = :p;
-- expired holds: the sweep gives the points back
SELECT hold(:m1, '15', '10 milliseconds') AS h \gset
SELECT pg_sleep(0.05);
SELECT available, held FROM balance(:m1);
CALL release_expired_holds();
SELECT status FROM holds WHERE hold_id = :h;
SELECT available, held, balance FROM balance(:m1);
CALL release_expired_holds();
SELECT count(*) AS violations FROM verify();
-- tier review: the five members spent 10 400 days ago and 20 today;
-- evaluating makes them Silver (20 >= 15 over 12 months); as of 13
-- months from now no purchase is in the window and each falls one step
SELECT set_tier_policy(:p, 'spend');
SELECT define_tier(:p, 0, 'Blue', 0), define_tier(:p, 1, 'Silver', 15);
SELECT e.tier, e.value, count(*) FROM members m, LATERAL evaluate_tier(m.member_id) e
WHERE m.program_id = :p GROUP BY 1, 2;
-- two members per batch: three commits, progress reported
CALL review_tiers(:p, now() + interval '13 months', batch_size => 2);
SELECT tier, count(*) FROM accounts WHERE program_id = :p GROUP BY tier ORDER BY tier;
-- a second run changes nothing
CALL review_tiers(:p, now() + interval '13 months');
SELECT reason, count(*) FROM tier_history h JOIN members m USING (member_id)
WHERE m.program_id = :p GROUP BY reason ORDER BY reason;
