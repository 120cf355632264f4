-- Analytics: the RFM aggregate against plain SQL (serial and parallel plans),
-- RFM scores and the segment mapping, and every KPI / distribution view on a
-- small dataset checked by hand (see the comments for the expected values).
SET search_path = loyalty, public;
\set VERBOSITY terse

-- RFM aggregate on a user table -------------------------------------------------
CREATE TABLE sales (customer int, bought_at timestamptz, amount numeric);
INSERT INTO sales
SELECT g % 1000, timestamptz '2025-01-01 00:00+00' + make_interval(hours => (g * 37) % 8000),
       round(((g * 7919) % 10000) / 100.0, 2)
FROM generate_series(1, 100000) g;
INSERT INTO sales VALUES (5000, NULL, 10), (5000, '2025-02-01 00:00+00', NULL);   -- skipped rows
ANALYZE sales;
-- the same by hand: rows without time or amount do not count
CREATE TABLE plain AS
SELECT customer, min(bought_at) AS first_purchase, max(bought_at) AS last_purchase,
       count(*) AS frequency, sum(amount) AS monetary
FROM sales WHERE bought_at IS NOT NULL AND amount IS NOT NULL GROUP BY customer;
-- serial
SET max_parallel_workers_per_gather = 0;
SELECT count(*) AS customers,
       count(*) FILTER (WHERE (r.first_purchase, r.last_purchase, r.frequency, r.monetary)
                       IS DISTINCT FROM (p.first_purchase, p.last_purchase, p.frequency, p.monetary)) AS mismatches
FROM (SELECT customer, (rfm(bought_at, amount, '2026-01-01 00:00+00')).* FROM sales GROUP BY customer) r
JOIN plain p USING (customer);
SELECT rfm(bought_at, amount) IS NULL AS only_incomplete_rows_is_null FROM sales WHERE customer = 5000;
-- parallel: partial states are serialized, combined and finalized
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT rfm(bought_at, amount, '2026-01-01 00:00+00') FROM sales;
SELECT (r).frequency, (r).monetary, (r).monetary = (SELECT sum(amount) FROM sales WHERE bought_at IS NOT NULL) AS same_sum,
       (r).first_purchase, (r).last_purchase, (r).recency_days
FROM (SELECT rfm(bought_at, amount, '2026-01-01 00:00+00') AS r FROM sales) x;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;
-- recency, average, and an empty group
SELECT (rfm(t, a, '2025-03-10 12:00+00')).* FROM (VALUES ('2025-03-01 18:00+00'::timestamptz, 10.00), ('2025-02-01', 5.50)) v(t, a);
SELECT rfm(bought_at, amount) IS NULL AS empty_is_null FROM sales WHERE false;
SELECT rfm('infinity', 1);
-- as of a time, later purchases have not happened yet: recency is never
-- negative; and as_of must be a real time
SELECT (rfm(t, a, '2025-02-15 00:00+00')).* FROM (VALUES ('2025-03-01 18:00+00'::timestamptz, 10.00), ('2025-02-01', 5.50)) v(t, a);
SELECT rfm(t, a, '2025-01-01 00:00+00') IS NULL AS nothing_yet FROM (VALUES ('2025-03-01 18:00+00'::timestamptz, 10.00)) v(t, a);
SELECT rfm(t, a, 'infinity') FROM (VALUES ('2025-03-01 18:00+00'::timestamptz, 10.00)) v(t, a);

-- A small program, checked by hand ---------------------------------------------
SELECT create_program('kpi', point_value => 0.01) AS p \gset
UPDATE programs SET time_zone = 'UTC' WHERE program_id = :p;
SELECT enroll(:p, 'web', 'k1', joined_at => '2026-01-01 09:00+00', region => 'north') AS k1,
       enroll(:p, 'pos', 'k2', joined_at => '2026-01-01 10:00+00', region => 'south') AS k2,
       enroll(:p, 'pos', 'k3', joined_at => '2026-01-02 10:00+00') AS k3 \gset
-- k1: 100 on Jan 1 (web), 50 on Feb 3 (web); k2: 30 on Jan 1 (pos); k3 never buys
SELECT earn(:k1, 100, 'web', occurred_at => '2026-01-01 12:00+00'),
       earn(:k2, 30, 'pos', occurred_at => '2026-01-01 13:00+00'),
       earn(:k1, 50, 'web', occurred_at => '2026-02-03 12:00+00');
SELECT redeem(:k1, '40') IS NOT NULL AS redeemed;
-- Jan 1: 2 new, 2 active, 2 purchases, revenue 130, aov 65, issued 130;
-- Jan 2: 1 new; Feb 3: 1 purchase of 50; the redemption is today (not shown)
SELECT day, new_members, active_members, purchases, revenue, avg_order_value, points_issued, points_redeemed, points_expired
FROM kpi_daily WHERE program_id = :p AND day < '2026-06-01' ORDER BY day;
-- January: 2 buyers, none bought before; February: k1 had bought in January: rate 1
SELECT month, new_members, active_members, purchases, revenue, avg_order_value, repeat_purchase_rate
FROM kpi_monthly WHERE program_id = :p AND month < '2026-06-01' ORDER BY month;
-- the redemption took 40 of January's points (first in, first out): a share of
-- January's cohort, wherever the month it happened in
SELECT month, points_issued, points_redeemed, redemption_rate, breakage
FROM kpi_monthly WHERE program_id = :p AND month < '2026-06-01' ORDER BY month;
-- 3 members; 2 buyers, 1 of them repeat: 0.5; aov 180/3 = 60; outstanding 180 - 40 = 140 -> 1.40
SELECT members, repeat_purchase_rate, avg_order_value, points_outstanding, points_pending, points_issued, points_redeemed,
       redemption_rate, breakage, liability
FROM kpi_summary WHERE program_id = :p;
SELECT tier, members, share FROM tier_distribution WHERE program_id = :p;
SELECT channel, purchases, members, revenue, points_issued FROM channel_distribution WHERE program_id = :p ORDER BY channel;
SELECT source_channel, region, members, buyers FROM member_mix WHERE program_id = :p ORDER BY 1, 2;
-- cohort Jan 2026: k1, k2; k1 again in month 1
SELECT cohort_month, months_since_first, active_members, cohort_size, retention
FROM cohort_retention WHERE program_id = :p ORDER BY 1, 2;
SELECT create_reward(:p, 'CUP', 'Cup', '10', stock => 5) AS cup \gset
SELECT voucher IS NOT NULL AS issued FROM redeem_reward(:k1, :cup);
SELECT code, redemptions, cancelled, points_spent, members, stock FROM reward_popularity WHERE program_id = :p;

-- RFM scores and segments ----------------------------------------------------------
SELECT create_program('seg') AS s \gset
-- ten buyers: member i bought i times, i * 10 each time, the last time i days ago
SELECT count(enroll(:s, 'pos', 's' || i)) FROM generate_series(1, 10) i;
SELECT count(earn(member_id(:s, 'pos', 's' || i), i * 10, occurred_at => now() - make_interval(days => i + j * 20)))
FROM generate_series(1, 10) i, generate_series(0, 9) j WHERE j < i;
SELECT i.external_id, r.frequency, r.monetary, r.r_score, r.f_score, r.m_score, r.rfm_cell, r.segment
FROM member_rfm r JOIN identities i USING (member_id) WHERE r.program_id = :s ORDER BY r.frequency;
SELECT segment, members, share FROM segment_summary WHERE program_id = :s ORDER BY segment;
-- the mapping is a table: copy the standard one, change it, and the view follows
INSERT INTO rfm_segments SELECT * FROM rfm_segments_standard;
UPDATE rfm_segments SET r_min = 1 WHERE segment = 'Champions';
SELECT count(*) AS champions FROM member_rfm WHERE program_id = :s AND segment = 'Champions';
DELETE FROM rfm_segments;
-- the analyst reads views and nothing else
SET ROLE loyalty_analyst;
SELECT count(*) > 0 AS analyst_reads_views FROM member_rfm;
SELECT count(*) FROM accounts;
RESET ROLE;
