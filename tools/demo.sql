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
\echo '== earning rules: double points at the weekend on books, a welcome bonus; why did ana get what she got?'
SELECT create_earning_rule(:program, 'books x2', 'multiply', multiplier => 2, categories => ARRAY['books']) AS rule \gset
SELECT create_earning_rule(:program, 'first purchase +50', 'bonus', bonus_points => '50', first_purchase => true) AS rule2 \gset
SELECT preview_earn(:ana, NULL, '[{"category": "books", "amount": 12.00}, {"category": "coffee", "amount": 3.50}]') AS preview;
SELECT earn(:ana, NULL, lines => '[{"category": "books", "amount": 12.00}, {"category": "coffee", "amount": 3.50}]') AS points;
SELECT jsonb_pretty(earn_explanation(:ana, (SELECT max(entry_id) FROM ledger WHERE member_id = :ana AND kind = 'earn'))) AS why;

\echo
\echo '== a shop''s own orders table earns through loyalty.order_trigger, in the sale''s transaction'
CREATE TABLE public.orders (id bigint PRIMARY KEY, customer bigint, total numeric, status text DEFAULT 'paid');
CREATE TRIGGER orders_loyalty AFTER INSERT OR UPDATE OR DELETE ON public.orders
    FOR EACH ROW EXECUTE FUNCTION order_trigger('customer', 'total', 'id', 'status');
INSERT INTO public.orders (id, customer, total) VALUES (1001, :ana, 40.00);
UPDATE public.orders SET total = 30.00 WHERE id = 1001;      -- a partial refund
SELECT kind, points, amount, reference FROM history(:ana) WHERE reference = '1001';

\echo
\echo '== tiers: upgrade at once when a purchase qualifies'
SELECT set_tier_policy(:program, 'spend');
SELECT define_tier(:program, 0, 'Bean', 0), define_tier(:program, 1, 'Roast', 50), define_tier(:program, 2, 'Espresso', 500);
SELECT tier, metric, value, next_tier, distance FROM evaluate_tier(:ana);

\echo
\echo '== outbox events, in commit order per member'
SELECT kind, member_id, payload->>'points' AS points FROM events ORDER BY event_id LIMIT 8;

\echo
\echo '== verify(): one row per broken invariant (none)'
SELECT count(*) AS violations FROM verify();

\echo
\echo '== analytics on CDNOW (2,357 customers, 1997-98): load the purchases through earn()'
SELECT create_program('CDNOW', currency => 'USD') AS cdnow \gset
CREATE TEMP TABLE raw (line text);
-- read by psql, the client (\copy), from cdnow_file: a path relative to the
-- repository root, where tools/demo.sh runs psql
\if :{?cdnow_file}
\else
\set cdnow_file 'data/cdnow/CDNOW_sample.txt'
\endif
-- \copy takes its line as written, without psql variables: build the line
\set copy_raw '\\copy raw FROM ' :'cdnow_file'
:copy_raw
CREATE TEMP TABLE cd AS
SELECT split_part(t, ' ', 2)::int AS customer, to_date(split_part(t, ' ', 3), 'YYYYMMDD') AS day,
       split_part(t, ' ', 5)::numeric AS dollars
FROM (SELECT regexp_replace(btrim(line), '\s+', ' ', 'g') AS t FROM raw) r;
SELECT count(enroll(:cdnow, 'cdnow', c::text, joined_at => '1997-01-01')) AS customers FROM (SELECT DISTINCT customer c FROM cd) s;
SELECT count(earn(member_id(:cdnow, 'cdnow', customer::text), dollars, occurred_at => day + time '12:00' AT TIME ZONE 'UTC')) AS purchases
FROM cd;
\echo '-- RFM segments (scores as of today: everyone is long gone, so look at the mix)'
SELECT segment, members, share, avg_frequency, avg_monetary FROM segment_summary WHERE program_id = :cdnow ORDER BY members DESC;
\echo '-- monthly KPIs'
SELECT month, active_members, purchases, revenue, avg_order_value, repeat_purchase_rate
FROM kpi_monthly WHERE program_id = :cdnow ORDER BY month LIMIT 18;
\echo '-- BG/NBD and Gamma-Gamma fitted in C on 1997-01-01 .. 1997-09-30 (weeks): the published estimates'
SELECT round((bgnbd).r::numeric, 3) AS r, round((bgnbd).alpha::numeric, 3) AS alpha, round((bgnbd).a::numeric, 3) AS a,
       round((bgnbd).b::numeric, 3) AS b, round((bgnbd).loglik::numeric, 1) AS loglik,
       round((gamma_gamma).p::numeric, 2) AS p, round((gamma_gamma).q::numeric, 2) AS q, round((gamma_gamma).gamma::numeric, 2) AS gamma
FROM fit_models(:cdnow, '1997-09-30', 'week');
\echo '-- the valuable customers most at risk (as of the end of calibration)'
SELECT i.external_id AS customer, c.p_alive, c.risk_band, c.expected_purchases_year, c.clv_year, c.purchases
FROM churn_risk c JOIN identities i USING (member_id)
WHERE c.program_id = :cdnow AND c.risk_band = 'high' ORDER BY c.clv_year DESC, c.member_id LIMIT 10;

\echo
\echo '== segments that act: store each member''s segment and churn band, then target them'
SET client_min_messages = warning;
CALL refresh_segments(:cdnow);
RESET client_min_messages;
SELECT segment, risk_band, count(*) AS members FROM member_segments WHERE program_id = :cdnow
GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 8;

\echo
\echo '== the HTML report of CDNOW (tools/report.sql): KPIs, segments, P(alive), calibration against holdout'
-- written now, before the purchases below; report_file is set by tools/demo.sh
-- (default: loyalty-report.html where psql runs).  report.sql reads the
-- variable program: the Coffee Club's is kept aside meanwhile.
\set demo_program :program
\set program :cdnow
\set holdout_end '1998-06-30'
\ir report.sql
\set program :demo_program
SELECT create_earning_rule(:cdnow, 'win back x3', 'multiply', multiplier => 3, risk_bands => '{high}') > 0 AS win_back_rule;
SELECT member_id AS gone FROM accounts WHERE program_id = :cdnow AND risk_band = 'high' ORDER BY member_id LIMIT 1 \gset
SELECT earn(:gone, 20, reference => 'comeback-1') AS points_for_20_dollars_at_high_risk;

\echo
\echo '== a challenge, with a tenth of the members held out to measure it'
SELECT create_challenge(:cdnow, 'three', 'Three orders this month', 'purchases', 3, 'month', repeating => true,
                        reward_points => 30, badge => 'regular') AS three \gset
SELECT set_control_group('challenge', :three, 0.1, seed => 'demo');
SELECT count(earn(m.member_id, 15, reference => 'challenge-' || m.member_id || '-' || k)) AS purchases
FROM (SELECT member_id FROM accounts WHERE program_id = :cdnow ORDER BY member_id LIMIT 200) m, generate_series(1, 3) k;
SELECT c ->> 'name' AS challenge, c ->> 'value' AS value, c ->> 'goal' AS goal, c ->> 'completed_at' IS NOT NULL AS completed
FROM jsonb_array_elements(member_progress(:gone) -> 'challenges') c;
SELECT name, members, control_members, reached, redemptions AS completed, points_issued, cost
FROM campaign_results WHERE kind = 'challenge' AND campaign_id = :three;
SELECT count(*) AS violations FROM verify();
