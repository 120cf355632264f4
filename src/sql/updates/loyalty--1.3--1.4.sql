-- loyalty 1.3 -> 1.4 (ALTER EXTENSION loyalty UPDATE TO '1.4')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.4'" to load this file. \quit

-- == one write path ===========================================================
#include "udfs/write_store/1.4.sql"
COMMENT ON FUNCTION loyalty.write_store() IS
    'Which store writes each table of the books now (fast: the executor''s row routines; sql: SQL statements) and, for sql, the first reason why';
REVOKE ALL ON FUNCTION loyalty.write_store() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.write_store() TO loyalty_admin;

-- partition_ledger() keeps the foreign keys a DBA gave the ledger
#include-replace "udfs/ledger_convert/1.4.sql"
-- a status change goes through the ledger store, under the member's lock
#include-replace "udfs/set_member_status/1.4.sql"

-- == what drivers send ==========================================================
-- Points arguments are numeric: integers of any width, decimals and strings
-- all reach them; only whole numbers are accepted.  A signature changes, so
-- the old functions go (their grants and comments with them) and the new
-- ones are granted as the install script grants them.
DROP FUNCTION loyalty.award(bigint, loyalty.points, text, text, text, text, timestamptz, timestamptz);
DROP FUNCTION loyalty.redeem(bigint, loyalty.points, text, text, text, timestamptz);
DROP FUNCTION loyalty.hold(bigint, loyalty.points, interval, text, text, text);
DROP FUNCTION loyalty.capture(bigint, loyalty.points, text);
DROP FUNCTION loyalty.reverse(bigint, bigint, loyalty.points, numeric, text, text, text);
DROP FUNCTION loyalty.adjust(bigint, loyalty.points, text, text, text);
DROP FUNCTION loyalty.redeem_for_discount(bigint, numeric, loyalty.points, text, text);
#include "udfs/award/1.4.sql"
#include "udfs/redeem/1.4.sql"
#include "udfs/hold/1.4.sql"
#include "udfs/capture/1.4.sql"
#include "udfs/reverse/1.4.sql"
#include "udfs/adjust/1.4.sql"
#include "udfs/redeem_for_discount/1.4.sql"
COMMENT ON FUNCTION loyalty.award(bigint, numeric, text, text, text, text, timestamptz, timestamptz) IS
    'Credit points for a non-purchase reason (sign-up, review, goodwill...); returns the ledger entry id';
COMMENT ON FUNCTION loyalty.redeem(bigint, numeric, text, text, text, timestamptz) IS
    'Spend points now, first-to-expire-first; never below zero (LY001); returns the ledger entry id';
COMMENT ON FUNCTION loyalty.hold(bigint, numeric, interval, text, text, text) IS
    'Reserve points for ttl (two-phase redemption); returns the hold id for loyalty.capture() or loyalty.release()';
COMMENT ON FUNCTION loyalty.capture(bigint, numeric, text) IS
    'Redeem a hold (all of it, or points of it, the rest returning to the member); returns the ledger entry id';
COMMENT ON FUNCTION loyalty.reverse(bigint, bigint, numeric, anycompatible, text, text, text) IS
    'Undo an entry fully or partly (by points, or by refunded amount in proportion: amount is any number type or a string); never more than the entry; returns points reversed';
COMMENT ON FUNCTION loyalty.adjust(bigint, numeric, text, text, text) IS
    'Administrator correction by a signed number of points, with a reason; returns the ledger entry id';
COMMENT ON FUNCTION loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text) IS
    'Pay part of an order with points within the program''s limits; returns the discount (points x point value)';
REVOKE ALL ON FUNCTION
    loyalty.award(bigint, numeric, text, text, text, text, timestamptz, timestamptz),
    loyalty.redeem(bigint, numeric, text, text, text, timestamptz),
    loyalty.hold(bigint, numeric, interval, text, text, text),
    loyalty.capture(bigint, numeric, text),
    loyalty.reverse(bigint, bigint, numeric, anycompatible, text, text, text),
    loyalty.adjust(bigint, numeric, text, text, text),
    loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.award(bigint, numeric, text, text, text, text, timestamptz, timestamptz),
    loyalty.redeem(bigint, numeric, text, text, text, timestamptz),
    loyalty.hold(bigint, numeric, interval, text, text, text),
    loyalty.capture(bigint, numeric, text),
    loyalty.reverse(bigint, bigint, numeric, anycompatible, text, text, text),
    loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text)
TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.adjust(bigint, numeric, text, text, text) TO loyalty_admin;
-- a points value passes where a numeric does; points with integers stay points
DROP CAST (loyalty.points AS numeric);
CREATE CAST (loyalty.points AS numeric) WITH FUNCTION loyalty.points_to_numeric(loyalty.points) AS IMPLICIT;
#include "parts/points_int8_operators.sql"
-- balances as bigint columns: every driver reads them as its integer type
-- (a loyalty.points column comes back as text)
DROP FUNCTION loyalty.balance(bigint);
DROP FUNCTION loyalty.balance_at(bigint, timestamptz);
#include "udfs/balance/1.4.sql"
#include "udfs/balance_at/1.4.sql"
COMMENT ON FUNCTION loyalty.balance(bigint) IS
    'Balances of a member now: available (spendable), pending (vesting), held, expired but not yet written down, debt, posted balance, lifetime totals, next expiry';
COMMENT ON FUNCTION loyalty.balance_at(bigint, timestamptz) IS
    'Posted balance (sum of the ledger) as recorded at a past time; answers disputes and month-end questions from the ledger alone';
REVOKE ALL ON FUNCTION loyalty.balance(bigint), loyalty.balance_at(bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.balance(bigint), loyalty.balance_at(bigint, timestamptz)
    TO loyalty_app, loyalty_admin;

-- a refund knows only the order
#include "udfs/refund/1.4.sql"
#include "udfs/refund/1.4-float8.sql"
COMMENT ON FUNCTION loyalty.refund(bigint, text, numeric, text, text) IS
    'Refund a purchase known by its reference (the order), the member''s or that of a member merged into it: all that is left of it, or amount of it (numeric, or double precision read to 15 significant digits), taking back points in proportion; returns the points taken back';
COMMENT ON FUNCTION loyalty.refund(bigint, text, double precision, text, text) IS
    'Refund a purchase known by its reference (the order), the member''s or that of a member merged into it: all that is left of it, or amount of it (numeric, or double precision read to 15 significant digits), taking back points in proportion; returns the points taken back';
REVOKE ALL ON FUNCTION loyalty.refund(bigint, text, numeric, text, text), loyalty.refund(bigint, text, double precision, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.refund(bigint, text, numeric, text, text), loyalty.refund(bigint, text, double precision, text, text) TO loyalty_app, loyalty_admin;
-- who was merged into a member (a merge repoints them; a refund looks through them)
CREATE INDEX members_merged_into_idx ON loyalty.members (merged_into) WHERE merged_into IS NOT NULL;
-- many orders at once, as the order trigger earns them
-- orders that failed under on_error 'skip' (earn_batch, order_trigger)
CREATE TABLE loyalty.rejected_orders (
    reject_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    reference   text,
    member      bigint,
    amount      numeric,
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    detail      text
);
COMMENT ON TABLE loyalty.rejected_orders IS
    'Orders a bulk load skipped (loyalty.earn_batch or loyalty.order_trigger with on_error skip): nothing of them was written; fix and load them again';
COMMENT ON COLUMN loyalty.rejected_orders.source IS 'loyalty.earn_batch, or the orders table whose trigger skipped the order';
COMMENT ON COLUMN loyalty.rejected_orders.member IS 'The member the order named (it may not exist: that can be why)';
COMMENT ON COLUMN loyalty.rejected_orders.sqlstate IS 'The error''s SQLSTATE (LY002: a replay with another amount; P0002: no such member; ...)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.rejected_orders', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rejected_orders_reject_id_seq', '');
REVOKE ALL ON SEQUENCE loyalty.rejected_orders_reject_id_seq FROM PUBLIC;
GRANT SELECT, DELETE ON loyalty.rejected_orders TO loyalty_admin;
#include "udfs/earn_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.earn_batch(bigint[], numeric[], text[], timestamptz[], text[], jsonb[], text) IS
    'Earn for many orders at once (one array element per order), as loyalty.order_trigger earns an inserted order: keyed by order reference (a replay writes nothing), member by member and each member''s orders by occurred_at; guests (NULL member) are skipped; a failing order fails the call, or with on_error ''skip'' goes to loyalty.rejected_orders; returns the orders, those that earned now, those replayed, those rejected, and the points credited';
REVOKE ALL ON FUNCTION loyalty.earn_batch(bigint[], numeric[], text[], timestamptz[], text[], jsonb[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.earn_batch(bigint[], numeric[], text[], timestamptz[], text[], jsonb[], text) TO loyalty_app, loyalty_admin;
#include "udfs/import_orders/1.4.sql"
COMMENT ON PROCEDURE loyalty.import_orders(regclass, text, text, text, text, text, integer, text) IS
    'Earn for the orders of a table or view (its member, amount, reference and optional occurred_at and channel columns) through loyalty.earn_batch, batch_size members per transaction in member_id order, committing after each batch with progress; online calls wait at most for one batch; CALL it outside a transaction block';
REVOKE ALL ON PROCEDURE loyalty.import_orders(regclass, text, text, text, text, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE loyalty.import_orders(regclass, text, text, text, text, text, integer, text) TO loyalty_app, loyalty_admin;
-- the entry id of the session's last write call
CREATE FUNCTION loyalty.last_entry()
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_last_entry'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.last_entry() IS
    'The ledger entry id written by this session''s last write call (earn, award, redeem, hold, capture, release, reverse, refund, adjust, merge_members, an order''s insert), as lastval() is for sequences: for a replay, the entry the first call wrote; NULL if that call wrote none; 55000 before any (or after a rollback of it)';
REVOKE ALL ON FUNCTION loyalty.last_entry() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.last_entry() TO loyalty_app, loyalty_admin;
-- amounts as drivers bind floats, and order lines as jsonb, json or text
DROP FUNCTION loyalty.earn(bigint, numeric, text, text, text, timestamptz, jsonb, text);
#include "udfs/earn/1.4.sql"
#include "udfs/earn/1.4-float8.sql"
COMMENT ON FUNCTION loyalty.earn(bigint, numeric, text, text, text, timestamptz, anycompatible, text) IS
    'Credit points for a purchase of amount (numeric, or double precision read to 15 significant digits), or of order lines (a JSON array [{category, product, quantity, amount}] as jsonb, json or text, or an array of lines), by the program''s rate and earning rules; the ledger row''s details say why; records purchase statistics; returns the points credited';
COMMENT ON FUNCTION loyalty.earn(bigint, double precision, text, text, text, timestamptz, anycompatible, text) IS
    'Credit points for a purchase of amount (numeric, or double precision read to 15 significant digits), or of order lines (a JSON array [{category, product, quantity, amount}] as jsonb, json or text, or an array of lines), by the program''s rate and earning rules; the ledger row''s details say why; records purchase statistics; returns the points credited';
REVOKE ALL ON FUNCTION loyalty.earn(bigint, numeric, text, text, text, timestamptz, anycompatible, text), loyalty.earn(bigint, double precision, text, text, text, timestamptz, anycompatible, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.earn(bigint, numeric, text, text, text, timestamptz, anycompatible, text), loyalty.earn(bigint, double precision, text, text, text, timestamptz, anycompatible, text) TO loyalty_app, loyalty_admin;
DROP FUNCTION loyalty.preview_earn(bigint, numeric, jsonb, text, text, timestamptz);
#include "udfs/preview_earn/1.4.sql"
#include "udfs/preview_earn/1.4-float8.sql"
COMMENT ON FUNCTION loyalty.preview_earn(bigint, numeric, anycompatible, text, text, timestamptz) IS
    'The points a purchase (amount, numeric or double precision, or order lines as jsonb, json or text, or an array of lines) would earn and why, as jsonb, without writing anything';
COMMENT ON FUNCTION loyalty.preview_earn(bigint, double precision, anycompatible, text, text, timestamptz) IS
    'The points a purchase (amount, numeric or double precision, or order lines as jsonb, json or text, or an array of lines) would earn and why, as jsonb, without writing anything';
REVOKE ALL ON FUNCTION loyalty.preview_earn(bigint, numeric, anycompatible, text, text, timestamptz), loyalty.preview_earn(bigint, double precision, anycompatible, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.preview_earn(bigint, numeric, anycompatible, text, text, timestamptz), loyalty.preview_earn(bigint, double precision, anycompatible, text, text, timestamptz) TO loyalty_app, loyalty_admin;
-- a merge of a member in debt moves lots worth its balance plus its debt
#include-replace "udfs/verify/1.4.sql"
-- results drivers read as integers: points come back as bigint
DROP FUNCTION loyalty.release(bigint, text);
#include "udfs/release/1.4.sql"
COMMENT ON FUNCTION loyalty.release(bigint, text) IS
    'Cancel a hold, returning its points to the lots they came from; returns the points released';
REVOKE ALL ON FUNCTION loyalty.release(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.release(bigint, text) TO loyalty_app, loyalty_admin;
DROP FUNCTION loyalty.merge_members(bigint, bigint, text);
#include "udfs/merge_members/1.4.sql"
COMMENT ON FUNCTION loyalty.merge_members(bigint, bigint, text) IS
    'Merge two records of one person: lots (with their expiry), debt, statistics and identities move to the survivor through merge ledger entries; the absorbed member is closed; returns the points moved';
REVOKE ALL ON FUNCTION loyalty.merge_members(bigint, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.merge_members(bigint, bigint, text) TO loyalty_admin;
DROP FUNCTION loyalty.expire_member(bigint, timestamptz);
#include "udfs/expire_member/1.4.sql"
COMMENT ON FUNCTION loyalty.expire_member(bigint, timestamptz) IS
    'Write off the unspent remainder of the member''s lots expired by as_of (default now); idempotent';
REVOKE ALL ON FUNCTION loyalty.expire_member(bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.expire_member(bigint, timestamptz) TO loyalty_admin;
DROP FUNCTION loyalty.expire_batch(timestamptz, integer);
#include "udfs/expire_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.expire_batch(timestamptz, integer) IS
    'Expire the lots of up to batch_size members (one step of loyalty.expire_points)';
REVOKE ALL ON FUNCTION loyalty.expire_batch(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.expire_batch(timestamptz, integer) TO loyalty_admin;
DROP FUNCTION loyalty.cancel_redemption(bigint, bigint, text);
#include "udfs/cancel_redemption/1.4.sql"
COMMENT ON FUNCTION loyalty.cancel_redemption(bigint, bigint, text) IS
    'Cancel a redemption: points back to their original lots, the unit back to stock; returns the points given back';
REVOKE ALL ON FUNCTION loyalty.cancel_redemption(bigint, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.cancel_redemption(bigint, bigint, text) TO loyalty_app, loyalty_admin;
DROP FUNCTION loyalty.record_activity(bigint, text, text, text);
#include "udfs/record_activity/1.4.sql"
COMMENT ON FUNCTION loyalty.record_activity(bigint, text, text, text) IS
    'Record a non-purchase activity (signup, review, survey...); awards its points unless a cap or the budget is reached (then 0); the outcome is kept in loyalty.activities';
REVOKE ALL ON FUNCTION loyalty.record_activity(bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.record_activity(bigint, text, text, text) TO loyalty_app, loyalty_admin;
DROP FUNCTION loyalty.redeem_reward(bigint, bigint, text, text);
#include "udfs/redeem_reward/1.4.sql"
COMMENT ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) IS
    'Redeem a catalog reward: checks window, tier gate, per-member limit and stock atomically, spends the points, issues a voucher code';
REVOKE ALL ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) TO loyalty_app, loyalty_admin;
DROP FUNCTION loyalty.history(bigint, timestamptz, integer);
#include "udfs/history/1.4.sql"
COMMENT ON FUNCTION loyalty.history(bigint, timestamptz, integer) IS
    'A member''s ledger entries, newest first: the ledger''s columns, with points and held_delta as bigint';
REVOKE ALL ON FUNCTION loyalty.history(bigint, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.history(bigint, timestamptz, integer) TO loyalty_app, loyalty_admin;
-- On Citus (after loyalty.distribute()), the re-created member-first
-- functions are routed by their member again, as distribute() routed them.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'citus') THEN
        EXECUTE $q$
            SELECT pg_catalog.create_distributed_function(f::regprocedure, '$1', colocate_with => 'loyalty.members')
            FROM unnest(ARRAY[
                'loyalty.award(bigint, numeric, text, text, text, text, timestamptz, timestamptz)',
                'loyalty.redeem(bigint, numeric, text, text, text, timestamptz)',
                'loyalty.hold(bigint, numeric, interval, text, text, text)',
                'loyalty.reverse(bigint, bigint, numeric, anycompatible, text, text, text)',
                'loyalty.refund(bigint, text, numeric, text, text)',
                'loyalty.refund(bigint, text, double precision, text, text)',
                'loyalty.expire_member(bigint, timestamptz)',
                'loyalty.cancel_redemption(bigint, bigint, text)',
                'loyalty.record_activity(bigint, text, text, text)',
                'loyalty.redeem_reward(bigint, bigint, text, text)',
                'loyalty.earn(bigint, numeric, text, text, text, timestamptz, anycompatible, text)',
                'loyalty.earn(bigint, double precision, text, text, text, timestamptz, anycompatible, text)',
                'loyalty.preview_earn(bigint, numeric, anycompatible, text, text, timestamptz)',
                'loyalty.preview_earn(bigint, double precision, anycompatible, text, text, timestamptz)',
                'loyalty.balance(bigint)',
                'loyalty.balance_at(bigint, timestamptz)',
                'loyalty.adjust(bigint, numeric, text, text, text)',
                'loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text)']) f
            WHERE EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
                          WHERE d.logicalrelid OPERATOR(pg_catalog.=) 'loyalty.accounts'::regclass)$q$;
    END IF;
END $$;

-- == bounds on what callers send ================================================
#include "udfs/check_identity/1.4.sql"
COMMENT ON FUNCTION loyalty.check_identity(text, text) IS
    'Refuses a blank (in any whitespace) or over-long channel or external id (22023, 22001); used by enroll() and link_identity()';
REVOKE ALL ON FUNCTION loyalty.check_identity(text, text) FROM PUBLIC;
#include "udfs/open_account/1.4.sql"
COMMENT ON FUNCTION loyalty.open_account(bigint, bigint) IS
    'Internal: the account of a member enroll() just created, written by the C write path';
REVOKE ALL ON FUNCTION loyalty.open_account(bigint, bigint) FROM PUBLIC;
#include-replace "udfs/enroll/1.4.sql"
#include-replace "udfs/link_identity/1.4.sql"

-- == rollups behind the BI views ================================================
-- (before the KPI views below, which read them)
#include "parts/rollups.sql"
ALTER TABLE loyalty.rollup_days ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_days USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_channels ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_channels USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_cohorts ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_cohorts USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_point_months ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_point_months USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_returns ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_returns USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_pools ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_pools USING (loyalty.program_visible(program_id));
#include-replace "udfs/channel_distribution/1.4.sql"
#include-replace "udfs/cohort_retention/1.4.sql"

-- == BI views never overflow ====================================================
-- The KPI views sum points in numeric: their points columns become numeric
-- (bigint could not hold a sum beyond 2^63).  A view's column types change
-- only by re-creating it: its comments and grants are kept across.
CREATE TEMP TABLE loyalty_kpi_comments ON COMMIT DROP AS
SELECT c.relname, a.attname, d.description
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0
WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relname IN ('kpi_summary', 'kpi_daily', 'kpi_monthly');
DROP VIEW loyalty.kpi_monthly;
DROP VIEW loyalty.kpi_daily;
DROP VIEW loyalty.kpi_summary;
#include "udfs/kpi_daily/1.4.sql"
#include "udfs/kpi_monthly/1.4.sql"
#include "udfs/kpi_summary/1.4.sql"
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM loyalty_kpi_comments LOOP
        IF r.attname IS NULL THEN
            EXECUTE format('COMMENT ON VIEW loyalty.%I IS %L', r.relname, r.description);
        ELSE
            EXECUTE format('COMMENT ON COLUMN loyalty.%I.%I IS %L', r.relname, r.attname, r.description);
        END IF;
    END LOOP;
END $$;
DROP TABLE loyalty_kpi_comments;
REVOKE ALL ON loyalty.kpi_daily, loyalty.kpi_monthly, loyalty.kpi_summary FROM PUBLIC;
GRANT SELECT ON loyalty.kpi_daily, loyalty.kpi_monthly, loyalty.kpi_summary TO loyalty_analyst, loyalty_admin;

-- == the tier rules, referrals and archiving write through the C write path ====
#include-replace "udfs/tier_change/1.4.sql"
COMMENT ON FUNCTION loyalty.tier_change(bigint, loyalty.tier, text, timestamptz) IS
    'Internal: set the member''s tier under its lock, write history and the tier.changed event; the same tier only renews a lock given (locked_until); returns whether the tier changed';
#include "udfs/set_tier_grace/1.4.sql"
COMMENT ON FUNCTION loyalty.set_tier_grace(bigint, timestamptz) IS
    'Internal: start (until grace_until) or end (NULL) the member''s tier grace period, under its lock';
REVOKE ALL ON FUNCTION loyalty.set_tier_grace(bigint, timestamptz) FROM PUBLIC;
#include "udfs/apply_tiers/1.4.sql"
COMMENT ON FUNCTION loyalty.apply_tiers(bigint[], boolean[], loyalty.tier[], timestamptz[]) IS
    'Internal: a tier review''s decisions for a batch of locked members, in one writer: changes[i] moves members[i] to tiers[i] (no lock, no grace), else its grace period becomes grace_until[i]; the caller writes history and events';
REVOKE ALL ON FUNCTION loyalty.apply_tiers(bigint[], boolean[], loyalty.tier[], timestamptz[]) FROM PUBLIC;
#include-replace "udfs/review_tiers_batch/1.4.sql"
#include-replace "udfs/set_tier_policy/1.4.sql"
#include "udfs/set_referral_pending/1.4.sql"
COMMENT ON FUNCTION loyalty.set_referral_pending(bigint, boolean) IS
    'Internal: mark whether the member''s referral still waits for a qualifying purchase (accounts.referral_pending), under its lock';
REVOKE ALL ON FUNCTION loyalty.set_referral_pending(bigint, boolean) FROM PUBLIC;
#include-replace "udfs/refer/1.4.sql"
#include-replace "udfs/referral_purchase/1.4.sql"
#include "udfs/archive_books/1.4.sql"
COMMENT ON FUNCTION loyalty.archive_books(regclass[], timestamptz, text) IS
    'Internal: for archive_ledger, one carry_forward entry per member of the archived partitions, then the archived debits'' allocations and the closed old lots leave (into archive_schema unless NULL); returns the entries written and the rows moved';
REVOKE ALL ON FUNCTION loyalty.archive_books(regclass[], timestamptz, text) FROM PUBLIC;
#include-replace "udfs/archive_ledger/1.4.sql"

-- == point transfers ===========================================================
#include "parts/transfers.sql"
ALTER TABLE loyalty.transfer_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.transfer_rules USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.transfer_rules TO loyalty_admin;

-- == member profiles and data rights ===========================================
#include "parts/profiles.sql"
ALTER TABLE loyalty.member_changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.member_changes USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.member_changes TO loyalty_admin;
REVOKE ALL ON SEQUENCE loyalty.member_changes_change_id_seq FROM PUBLIC;
-- earning rules on member attributes: create_earning_rule takes member_attributes
DROP FUNCTION loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric);
#include "udfs/create_earning_rule/1.4.sql"
COMMENT ON FUNCTION loyalty.create_earning_rule(bigint, text, text, anycompatible, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, anycompatible, jsonb, text[], text[], text[], text[]) IS
    'Add a multiplier or bonus rule to a program; returns its id (see README "Earning rules" for stacking)';
REVOKE ALL ON FUNCTION loyalty.create_earning_rule(bigint, text, text, anycompatible, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, anycompatible, jsonb, text[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.create_earning_rule(bigint, text, text, anycompatible, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, anycompatible, jsonb, text[], text[], text[], text[]) TO loyalty_admin;

-- == paid membership ===========================================================
#include "parts/memberships.sql"
ALTER TABLE loyalty.membership_plans ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.membership_plans USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.subscriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.subscriptions USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.membership_payments ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.membership_payments USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.membership_plans, loyalty.subscriptions, loyalty.membership_payments TO loyalty_admin;
REVOKE ALL ON SEQUENCE loyalty.membership_plans_plan_id_seq, loyalty.subscriptions_subscription_id_seq,
    loyalty.membership_payments_payment_id_seq FROM PUBLIC;

-- == coupons ===================================================================
#include "parts/coupons.sql"
ALTER TABLE loyalty.coupon_campaigns ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.coupon_campaigns USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.coupon_codes ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.coupon_codes USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.coupon_redemptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.coupon_redemptions USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.coupon_campaigns, loyalty.coupon_codes, loyalty.coupon_redemptions TO loyalty_admin;
REVOKE ALL ON SEQUENCE loyalty.coupon_campaigns_campaign_id_seq, loyalty.coupon_redemptions_redemption_id_seq FROM PUBLIC;

-- == member tags ===============================================================
#include "parts/tags.sql"
ALTER TABLE loyalty.member_tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.member_tags USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.member_tags TO loyalty_admin;

-- == households ================================================================
#include "parts/households.sql"
ALTER TABLE loyalty.households ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.households USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.household_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.household_members USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.household_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.household_rules USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.household_invitations ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.household_invitations USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.household_shares ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.household_shares USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.households, loyalty.household_members, loyalty.household_rules, loyalty.household_invitations,
    loyalty.household_shares TO loyalty_admin;
REVOKE ALL ON SEQUENCE loyalty.households_household_id_seq, loyalty.household_members_membership_id_seq FROM PUBLIC;
-- a household's pool is no member: the views that count members leave it out
#include-replace "udfs/member_mix/1.4.sql"
#include-replace "udfs/tier_distribution/1.4.sql"
-- a pool's expiring points are announced to its household's owner
#include-replace "udfs/notify_expiring/1.4.sql"

-- == household tiers: the tier metric of a household member can be its household's
#include "udfs/member_tier_metric/1.4.sql"
COMMENT ON FUNCTION loyalty.member_tier_metric(bigint, timestamptz) IS
    'Internal: the member''s own tier metric in its current qualification window (tier_metric adds up a household''s)';
REVOKE ALL ON FUNCTION loyalty.member_tier_metric(bigint, timestamptz) FROM PUBLIC;
#include-replace "udfs/tier_metric/1.4.sql"
COMMENT ON FUNCTION loyalty.tier_metric(bigint, timestamptz) IS
    'The member''s qualifying metric (spend, points earned or visits, net of refunds) over the window ending at as_of (default now); with household tiers, its household''s';

-- == challenges, badges and streaks ============================================
-- (their changes bump rules_version too: the write path caches them by it)
#include-replace "udfs/rules_version_bump/1.4.sql"
COMMENT ON FUNCTION loyalty.rules_version_bump() IS 'Trigger: bump programs.rules_version when an earning rule, a tier or a challenge changes';
COMMENT ON COLUMN loyalty.programs.rules_version IS 'Bumped by every change of the program''s earning rules, tiers and challenges; backends cache them per version';
#include "parts/challenges.sql"
ALTER TABLE loyalty.challenges ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.challenges USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.challenge_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.challenge_state USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.challenge_periods ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.challenge_periods USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.challenge_facts ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.challenge_facts USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.member_badges ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.member_badges USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.challenges, loyalty.challenge_state, loyalty.challenge_periods, loyalty.challenge_progress,
    loyalty.challenge_facts, loyalty.member_badges TO loyalty_admin;
REVOKE ALL ON SEQUENCE loyalty.challenges_challenge_id_seq FROM PUBLIC;

-- == stored segments and bands that rules act on ================================
#include "parts/segments.sql"

-- == lifecycle journeys ========================================================
#include "parts/journeys.sql"
ALTER TABLE loyalty.journey_steps ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.journey_steps USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.risk_band_changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.risk_band_changes USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.journey_steps, loyalty.risk_band_changes TO loyalty_admin;

-- == surveys and NPS ===========================================================
#include "parts/surveys.sql"
ALTER TABLE loyalty.surveys ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.surveys USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.survey_responses ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.survey_responses USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.surveys, loyalty.survey_responses TO loyalty_admin;
REVOKE ALL ON SEQUENCE loyalty.surveys_survey_id_seq, loyalty.survey_responses_response_id_seq FROM PUBLIC;

-- == campaign results and control groups =======================================
#include "parts/campaigns.sql"
REVOKE ALL ON SEQUENCE loyalty.journey_steps_step_id_seq FROM PUBLIC;

-- == what a merge carries besides the books ===================================
#include "parts/merge.sql"

-- == configuration amounts as drivers bind them ================================
-- Money, rates, shares and multipliers of the configuration API are
-- anycompatible, read as numeric: psycopg 3 and JDBC bind floats as double
-- precision, which no numeric parameter takes (points parameters stay as
-- they are).  create_earning_rule, set_stacking_rules, create_plan,
-- set_household_rules and redeem_for_discount are created so above.
DROP FUNCTION loyalty.create_program(text, text, numeric, numeric, text, interval, interval, text, interval);
DROP FUNCTION loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb);
DROP FUNCTION loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric);
DROP FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer);
#include "udfs/create_program/1.4.sql"
#include "udfs/define_tier/1.4.sql"
#include "udfs/set_redemption_rules/1.4.sql"
#include "udfs/set_referral_rules/1.4.sql"
COMMENT ON FUNCTION loyalty.create_program(text, text, anycompatible, anycompatible, text, interval, interval, text, interval) IS
    'Create a loyalty program (currency, value of a point, base earn rate, rounding, expiry, pending period, refund policy); returns its id';
COMMENT ON FUNCTION loyalty.define_tier(bigint, integer, text, anycompatible, anycompatible, boolean, jsonb) IS
    'Add or change a rung of a program''s tier ladder; returns the tier value';
COMMENT ON FUNCTION loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible) IS
    'Limits on paying part of an order with points: minimum and maximum points per order, maximum share of the order amount';
COMMENT ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer) IS
    'Set a program''s referral bonuses, qualifying purchase amount and cap per referrer';
REVOKE ALL ON FUNCTION
    loyalty.create_program(text, text, anycompatible, anycompatible, text, interval, interval, text, interval),
    loyalty.define_tier(bigint, integer, text, anycompatible, anycompatible, boolean, jsonb),
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible),
    loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.create_program(text, text, anycompatible, anycompatible, text, interval, interval, text, interval),
    loyalty.define_tier(bigint, integer, text, anycompatible, anycompatible, boolean, jsonb),
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible),
    loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer)
TO loyalty_admin;

-- == models that degrade gracefully ============================================
-- the spend model is fitted on its own: without it (or with q <= 1) the
-- purchase model is kept, and the views give NULL spend and CLV with a reason
ALTER TABLE loyalty.models ADD COLUMN gamma_gamma_failure text;
COMMENT ON COLUMN loyalty.models.gamma_gamma_failure IS
    'Why the spend model (Gamma-Gamma) was not fitted, when it was not: the purchase models are kept without it';
COMMENT ON PROCEDURE loyalty.refresh_models(text, date) IS
    'Batch job (e.g. nightly with pg_cron): refit the models of every program on its purchases up to calibration_end (default today), one commit per program; programs whose data cannot identify the purchase model are reported and skipped';
-- (fit_models, clv, member_predictions, churn_risk and model_holdout: with
-- MBG/NBD, below)
COMMENT ON COLUMN loyalty.kpi_monthly.redemption_rate IS 'Share of the points issued in the month redeemed since (the month''s cohort of points; at most 1)';
COMMENT ON COLUMN loyalty.kpi_monthly.breakage IS 'Share of the points issued in the month expired since (the month''s cohort of points)';

-- == MBG/NBD, a penalizer, and the purchase model per program ===================
-- member_predictions (1.1) passes loyalty.models' row type to clv(), which
-- bars adding columns with defaults to it: both prediction views go while the
-- table changes, and come back below
DROP VIEW loyalty.churn_risk;
DROP VIEW loyalty.member_predictions;
#include "parts/purchase_models.sql"
-- each member's predictions stored with the fit (member_scores, in the part
-- above), and a summary of a member range read through the ledger's key
ALTER TABLE loyalty.member_scores ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.member_scores USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.member_scores TO loyalty_admin;
DROP FUNCTION loyalty.purchase_summary(bigint, date, text);
#include "udfs/purchase_summary/1.4.sql"
COMMENT ON FUNCTION loyalty.purchase_summary(bigint, date, text, bigint, bigint) IS
    'Per member of a program (or of its members from member_from to member_to, read through the ledger''s key), as of calibration_end: x (repeat purchases, one per day), t_x (last - first purchase), T (calibration_end - first purchase) in days or weeks, m_x (mean repeat-day spend)';
REVOKE ALL ON FUNCTION loyalty.purchase_summary(bigint, date, text, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.purchase_summary(bigint, date, text, bigint, bigint) TO loyalty_analyst, loyalty_admin;
COMMENT ON TABLE loyalty.models IS 'Fitted purchase models (BG/NBD, MBG/NBD) and spend model (Gamma-Gamma) per program, with fit time, calibration end, log-likelihoods and the purchase model in use';
-- fit_models gains a penalizer: a new signature
DROP FUNCTION loyalty.fit_models(bigint, date, text);
#include "udfs/fit_models/1.4.sql"
COMMENT ON FUNCTION loyalty.fit_models(bigint, date, text, anycompatible) IS
    'Fit BG/NBD, MBG/NBD and Gamma-Gamma on a program''s purchases up to calibration_end, each on its own, and store them with the purchase model the program predicts with (its purchase_model; auto: the higher log-likelihood); penalizer: a number, or NULL for none and, where the data do not identify a model, the least of 0.001, 0.01 and 0.1 that does; LY030 if the data identify no purchase model (or not the one the program asks for); a model not fitted has its reason in NAME_failure; every member''s summary and predictions by the fit are stored in loyalty.member_scores in the same transaction, for the views';
REVOKE ALL ON FUNCTION loyalty.fit_models(bigint, date, text, anycompatible) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.fit_models(bigint, date, text, anycompatible) TO loyalty_admin;
-- the predictions through loyalty.predict_purchases, with the program's model
#include-replace "udfs/clv/1.4.sql"
COMMENT ON FUNCTION loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) IS
    'Customer lifetime value over horizon time units, discounted per unit (default 52 weeks at 10% a year), with the models'' purchase_model';
#include "udfs/member_predictions/1.4.sql"
COMMENT ON VIEW loyalty.member_predictions IS 'Per member, from the latest fitted models: P(alive), expected purchases and spend, CLV over a year, by the program''s purchase model (purchase_model)';
COMMENT ON COLUMN loyalty.member_predictions.program_id IS 'Program';
COMMENT ON COLUMN loyalty.member_predictions.member_id IS 'Member';
COMMENT ON COLUMN loyalty.member_predictions.fitted_at IS 'When the models used were fitted';
COMMENT ON COLUMN loyalty.member_predictions.time_unit IS 'Time unit of the model (day or week)';
COMMENT ON COLUMN loyalty.member_predictions.repeat_purchases IS 'Repeat purchase days in the calibration period (x)';
COMMENT ON COLUMN loyalty.member_predictions.t_x IS 'Time from the first to the last purchase (t_x)';
COMMENT ON COLUMN loyalty.member_predictions.customer_age IS 'Time from the first purchase to the calibration end (T)';
COMMENT ON COLUMN loyalty.member_predictions.p_alive IS 'Probability the member is still active, by the purchase model in purchase_model';
COMMENT ON COLUMN loyalty.member_predictions.expected_purchases_year IS 'Expected purchases in the next 365.25 days, whatever the model''s time unit, by the purchase model in purchase_model';
COMMENT ON COLUMN loyalty.member_predictions.expected_avg_spend IS 'Expected spend per purchase (Gamma-Gamma)';
COMMENT ON COLUMN loyalty.member_predictions.clv_year IS 'Expected spend over the next 365.25 days, month by month discounted 10% a year (NULL without a spend model)';
COMMENT ON COLUMN loyalty.member_predictions.spend_model_failure IS
    'Why expected spend and CLV are NULL: the spend model could not be fitted, or has no expected value';
COMMENT ON COLUMN loyalty.member_predictions.calibration_end IS 'The last day of the purchases the model was fitted on: the predictions are as of it';
COMMENT ON COLUMN loyalty.member_predictions.last_purchase IS 'The member''s last purchase day up to the calibration end';
COMMENT ON COLUMN loyalty.member_predictions.purchase_model IS
    'The purchase model of p_alive, expected_purchases_year and clv_year: bgnbd (BG/NBD) or mbgnbd (MBG/NBD), the program''s choice (loyalty.set_purchase_model)';
COMMENT ON COLUMN loyalty.member_predictions.prediction_failure IS
    'Why p_alive or the expected purchases (and CLV) are NULL: the purchase model''s formulas failed for this member';
GRANT SELECT ON loyalty.member_predictions TO loyalty_analyst, loyalty_admin;
-- churn_risk as of one day (the model's), with the members it has no band for
#include "udfs/churn_risk/1.4.sql"
COMMENT ON VIEW loyalty.churn_risk IS 'Churn risk per member: 1 - P(alive), in bands, with value at stake';
COMMENT ON COLUMN loyalty.churn_risk.program_id IS 'Program';
COMMENT ON COLUMN loyalty.churn_risk.member_id IS 'Member';
COMMENT ON COLUMN loyalty.churn_risk.p_alive IS 'Probability the member is still active, by the purchase model in purchase_model';
COMMENT ON COLUMN loyalty.churn_risk.churn_risk IS '1 - P(alive)';
COMMENT ON COLUMN loyalty.churn_risk.risk_band IS 'high (P(alive) < 0.3), medium (< 0.6) or low; NULL without a P(alive)';
COMMENT ON COLUMN loyalty.churn_risk.expected_purchases_year IS 'Expected purchases in the next year';
COMMENT ON COLUMN loyalty.churn_risk.clv_year IS 'Expected discounted spend over the next year';
COMMENT ON COLUMN loyalty.churn_risk.last_purchase IS 'Date of the last purchase up to as_of';
COMMENT ON COLUMN loyalty.churn_risk.purchases IS 'Days with a purchase up to as_of';
COMMENT ON COLUMN loyalty.churn_risk.as_of IS 'The model''s calibration end: P(alive), the band, the last purchase and the purchases are as of this day';
COMMENT ON COLUMN loyalty.churn_risk.risk_label IS 'The band, or why a member has none: never bought, first purchase after the model, or no prediction (see prediction_failure)';
COMMENT ON COLUMN loyalty.churn_risk.purchase_model IS 'The purchase model of P(alive) and the expected purchases: bgnbd (BG/NBD) or mbgnbd (MBG/NBD), the program''s choice';
COMMENT ON COLUMN loyalty.churn_risk.prediction_failure IS 'Why a member with purchases has no P(alive) or expected purchases: the purchase model''s formulas failed for it';
GRANT SELECT ON loyalty.churn_risk TO loyalty_analyst, loyalty_admin;
#include "udfs/model_holdout/1.4.sql"
COMMENT ON FUNCTION loyalty.model_holdout(bigint, date) IS
    'Validation: each purchase model of the latest fit (model; chosen: the one the predictions use): its expected purchases in (calibration_end, holdout_end] against the purchase days seen, mean per customer by calibration frequency (0 to 6, 7+) and in all, as in the BG/NBD paper''s conditional-expectation table';
REVOKE ALL ON FUNCTION loyalty.model_holdout(bigint, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.model_holdout(bigint, date) TO loyalty_admin;
-- == membership retention (sBG) ================================================
#include "parts/membership_retention.sql"
ALTER TABLE loyalty.membership_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.membership_models USING (loyalty.program_visible(program_id));
GRANT SELECT ON loyalty.membership_models TO loyalty_admin;
-- == pg_partman can manage the ledger's partitions ==============================
-- Partitions are named as pg_partman names them; those of an install
-- partitioned before are renamed (with their indexes), so that pg_partman
-- finds them by name and adds its own next to them.
#include "udfs/ledger_partition_name/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_partition_name(timestamptz, timestamptz) IS
    'Internal: the name pg_partman gives the ledger partition of a period (ledger_pYYYY_MM, ledger_pYYYY_MM_DD, ledger_pYYYYwWW, ledger_pYYYYqQ, ledger_pYYYY)';
REVOKE ALL ON FUNCTION loyalty.ledger_partition_name(timestamptz, timestamptz) FROM PUBLIC;
#include-replace "udfs/ledger_add_partition/1.4.sql"
#include-replace "udfs/ledger_restore_convert/1.4.sql"
DO $$
DECLARE
    p record;
    i record;
BEGIN
    FOR p IN SELECT c.relname AS old, loyalty.ledger_partition_name(l.lower_bound, l.upper_bound) AS new
             FROM loyalty.ledger_partitions() l JOIN pg_catalog.pg_class c ON c.oid = l.partition
             WHERE NOT l.is_default AND c.relnamespace = 'loyalty'::regnamespace LOOP
        CONTINUE WHEN p.old = p.new OR pg_catalog.to_regclass(format('loyalty.%I', p.new)) IS NOT NULL;
        EXECUTE format('ALTER TABLE loyalty.%I RENAME TO %I', p.old, p.new);
        FOR i IN SELECT c.relname FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid
                 WHERE x.indrelid = format('loyalty.%I', p.new)::regclass AND starts_with(c.relname, p.old || '_') LOOP
            EXECUTE format('ALTER INDEX loyalty.%I RENAME TO %I', i.relname, p.new || substr(i.relname, length(p.old) + 1));
        END LOOP;
    END LOOP;
END $$;
-- Partitions made by other tools get the TRUNCATE refusal and row-level
-- security; a partition holding entries not carried forward may not leave.
#include "udfs/ledger_partition_added/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_partition_added() IS
    'Internal event trigger: give every ledger partition without it (created or attached by any tool, pg_partman included) the TRUNCATE refusal and the parent''s row-level security';
CREATE EVENT TRIGGER loyalty_ledger_partition_added ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION loyalty.ledger_partition_added();
#include "udfs/ledger_keep_entries/1.4.sql"
COMMENT ON FUNCTION loyalty.ledger_keep_entries() IS
    'Internal event trigger: refuse (55000) to detach or drop a partition of loyalty.ledger that holds entries loyalty.archive_ledger() has not carried forward';
CREATE EVENT TRIGGER loyalty_ledger_keep_entries ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE', 'DROP TABLE')
    EXECUTE FUNCTION loyalty.ledger_keep_entries();
REVOKE ALL ON FUNCTION loyalty.ledger_partition_added(), loyalty.ledger_keep_entries() FROM PUBLIC;
-- == the model functions in C: not for PUBLIC ====================================
#include "parts/model_grants.sql"
-- == kpi_summary and tier_distribution on account rollups =======================
-- (the tables, account_changes and rollup_account_changes() came with
-- parts/rollups.sql above; the rollups are built by the first refresh, and
-- until then the views compute from the accounts, as they did)
REVOKE ALL ON SEQUENCE loyalty.account_changes_change_id_seq FROM PUBLIC;
ALTER TABLE loyalty.account_changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.account_changes USING (loyalty.member_visible(member_id));
ALTER TABLE loyalty.rollup_accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_accounts USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_vesting ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_vesting USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_account_sums ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_account_sums USING (loyalty.program_visible(program_id));
ALTER TABLE loyalty.rollup_account_days ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_account_days USING (loyalty.program_visible(program_id));
COMMENT ON VIEW loyalty.kpi_summary IS 'Current KPIs per program: members, activity, points outstanding and the liability in money (exact to now: the account rollups and the accounts changed since; see rollups_as_of)';
COMMENT ON VIEW loyalty.tier_distribution IS 'Members per tier (exact to now: the account rollups and the accounts changed since; see rollups_as_of)';
-- == member_rfm's quintiles from the account rollups ==============================
-- (rollup_rfm_counts, the bucket functions, rollup_accounts' bucket indexes
-- and rfm_quintiles() came with parts/rollups.sql above)
ALTER TABLE loyalty.rollup_rfm_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_rfm_counts USING (loyalty.program_visible(program_id));
#include-replace "udfs/member_rfm/1.4.sql"
-- == member_mix on a rollup ========================================================
-- (rollup_member_mix and rollup_accounts' source_channel and region came with
-- parts/rollups.sql above, the view with the households)
ALTER TABLE loyalty.rollup_member_mix ENABLE ROW LEVEL SECURITY;
CREATE POLICY program_isolation ON loyalty.rollup_member_mix USING (loyalty.program_visible(program_id));
COMMENT ON VIEW loyalty.member_mix IS 'Members by source channel and region (exact to now: the member mix rollup and the members changed since; see rollups_as_of)';
-- == program_visible and member_visible without a SET clause =====================
-- (views and row security call them per row; the C code pins search_path
-- around the statements they run)
ALTER FUNCTION loyalty.program_visible(bigint) RESET search_path;
ALTER FUNCTION loyalty.member_visible(bigint) RESET search_path;
