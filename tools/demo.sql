-- The loyalty demo (run by tools/demo.sh in a throwaway cluster).
\pset footer off
\set ON_ERROR_STOP 1
CREATE EXTENSION loyalty;
SET search_path = loyalty, public;

\echo
\echo '== points: exact, overflow-checked counts'
SELECT '1500'::points + '250'::points               AS "1500 + 250",
       '1999'::points * 1.5                         AS "1999 x 1.5 (half up)",
       points_mul_floor('1999', 1.5)                AS "floor",
       points_value('12345', 0.01)                  AS "12345 pts in money at 0.01",
       '1'::points / '3'::points                    AS "ratio";
\echo 'an overflow is an error, never a wrap-around:'
\set ON_ERROR_STOP 0
SELECT '9223372036854775807'::points + '1'::points;
\set ON_ERROR_STOP 1

\echo
\echo '== tier: ordered by rank, read by name'
SELECT t AS tier, tier_rank(t) AS rank, tier_name(t) AS name
FROM unnest(ARRAY['2:Gold', '0:Member', '3:Platinum', '1:Silver']::tier[]) AS t
ORDER BY t;

\echo
\echo '== a program, a member known on two channels'
SELECT create_program('Coffee Club', currency => 'EUR', point_value => 0.01, earn_rate => 10,
                      expiry_period => '1 year', pending_period => '14 days') AS program \gset
SELECT enroll(:program, 'pos', 'card-0042', region => 'Lyon') AS ana \gset
SELECT link_identity(:ana, 'web', 'ana@example.org') AS linked;
SELECT member_id(:program, 'web', 'ana@example.org') = :ana AS "web login finds the same member";

\echo
\echo '== earning: a purchase in the shop, replayed by a flaky POS (idempotency key)'
SELECT earn(:ana, 23.40, channel => 'pos', reference => 'order-981', idempotency_key => 'pos-17:order-981') AS first_call,
       earn(:ana, 23.40, channel => 'pos', reference => 'order-981', idempotency_key => 'pos-17:order-981') AS replay;
SELECT award(:ana, '500', 'welcome bonus') AS award_entry \gset
SELECT earn(:ana, 80, channel => 'web', reference => 'web-5', occurred_at => now() - interval '20 days') AS older_web_order;
SELECT available, pending, held, balance FROM balance(:ana);

\echo
\echo '== two-phase redemption at the till: hold, then capture part of it'
SELECT hold(:ana, '300', ttl => '5 minutes', channel => 'pos') AS h \gset
SELECT available, held FROM balance(:ana);
SELECT capture(:h, '250') AS capture_entry;
SELECT available, held, lifetime_redeemed FROM balance(:ana);

\echo
\echo '== half of order-981 is refunded: its points go back, exactly once'
SELECT entry_id AS order_entry FROM ledger WHERE member_id = :ana AND reference = 'order-981' \gset
SELECT reverse(:ana, :order_entry, amount => 11.70, reference => 'refund-77', idempotency_key => 'refund-77') AS reversed,
       reverse(:ana, :order_entry, amount => 11.70, reference => 'refund-77', idempotency_key => 'refund-77') AS replayed;
\set ON_ERROR_STOP 0
\echo 'refunding more than was bought is refused:'
SELECT reverse(:ana, :order_entry, amount => 20);
\echo 'spending more than is available is refused:'
SELECT redeem(:ana, '100000');
\set ON_ERROR_STOP 1

\echo
\echo '== the ledger: every change is one immutable row'
SELECT entry_id, kind, points, held_delta, amount, channel, reference, source_entry
FROM history(:ana) ORDER BY entry_id;
\set ON_ERROR_STOP 0
DELETE FROM ledger WHERE member_id = :ana;
\set ON_ERROR_STOP 1

\echo
\echo '== the same person signed up twice: merge'
SELECT enroll(:program, 'app', 'device-9') AS dup \gset
SELECT earn(:dup, 12) AS dup_points;
SELECT merge_members(:ana, :dup) AS points_moved;
SELECT member_id(:program, 'app', 'device-9') = :ana AS "app id now finds ana",
       (SELECT status FROM members WHERE member_id = :dup) AS duplicate_status;

\echo
\echo '== expiry is exact at read time; the batch job only writes it down'
SELECT earn(:ana, 10, reference => 'old', occurred_at => now() - interval '400 days') AS old_points;
SELECT available, expired_unposted, balance FROM balance(:ana);
CALL expire_points();
SELECT available, expired_unposted, balance, lifetime_expired FROM balance(:ana);

\echo
\echo '== verify(): one row per broken invariant (none)'
SELECT count(*) AS violations FROM verify();
