-- loyalty 1.0 -> 1.1 (ALTER EXTENSION loyalty UPDATE TO '1.1')
-- Points comparisons as C functions, the direct write path's library, and
-- multi-program isolation: program_roles, bind_role, and the program check
-- in every API function and view, plus row-level security on the tables.
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.1'" to load this file. \quit

-- comparison: C functions of this module (see points.c for why not int8's own)
CREATE OR REPLACE FUNCTION loyalty.points_eq(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_ne(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_lt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_le(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_gt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_ge(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_cmp(loyalty.points, loyalty.points) RETURNS integer
    AS 'MODULE_PATHNAME', 'points_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
-- new in 1.1: 32_access.sql
-- ---------------------------------------------------------------------------
-- Multi-program isolation (src/access.c).  A role with a row here, or that
-- inherits from a role with one, is bound: it may call the API only for
-- members of its programs and sees only their rows in the views (and in the
-- tables, through row-level security, if it is ever given direct access).
-- A role with no binding is not restricted, nor are superusers and BYPASSRLS
-- roles, as with PostgreSQL's own row-level security.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.program_roles (
    program_id  bigint NOT NULL REFERENCES loyalty.programs,
    -- a name, not an OID, so that a dump restores into another cluster
    role_name   name NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, role_name)
);
CREATE INDEX program_roles_role_idx ON loyalty.program_roles (role_name);
COMMENT ON TABLE loyalty.program_roles IS 'Roles bound to programs: a bound role (or one inheriting from it) may use and see only these programs';
SELECT pg_catalog.pg_extension_config_dump('loyalty.program_roles', '');

CREATE FUNCTION loyalty.program_roles_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'loyalty_program_roles_changed' LANGUAGE C SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.program_roles_changed() IS
    'Trigger: makes every session re-read program_roles after a change commits';
CREATE TRIGGER program_roles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.program_roles
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.program_roles_changed();

CREATE FUNCTION loyalty.program_visible(program bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'loyalty_program_visible'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.program_visible(bigint) IS
    'Whether the session''s role (SET ROLE included) may use and see the program';
CREATE FUNCTION loyalty.member_visible(member bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'loyalty_member_visible'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.member_visible(bigint) IS
    'Whether the session''s role may use and see the member''s program (row-level security of per-member tables)';
CREATE FUNCTION loyalty.require_program(program bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'loyalty_require_program'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.require_program(bigint) IS
    'Returns the program, or fails with 42501 when the session''s role is bound to other programs';
CREATE FUNCTION loyalty.require_member(member bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'loyalty_require_member'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.require_member(bigint) IS
    'Returns the member, or fails with 42501 when its program is not one the session''s role is bound to';

-- Bind a role to a program (administrators).  SECURITY DEFINER: the
-- administrator role has no rights on the table itself.
#include "udfs/bind_role/1.1.sql"
COMMENT ON FUNCTION loyalty.bind_role(bigint, name) IS
    'Bind a role to a program: from the next statement it (and roles inheriting from it) may use and see only its bound programs';

#include "udfs/unbind_role/1.1.sql"
COMMENT ON FUNCTION loyalty.unbind_role(bigint, name) IS
    'Remove a binding; a role left with none is no longer restricted to programs';

REVOKE ALL ON FUNCTION loyalty.program_roles_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.program_visible(bigint), loyalty.member_visible(bigint),
    loyalty.require_program(bigint), loyalty.require_member(bigint),
    loyalty.bind_role(bigint, name), loyalty.unbind_role(bigint, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.program_visible(bigint), loyalty.member_visible(bigint),
    loyalty.require_program(bigint), loyalty.require_member(bigint)
    TO loyalty_admin, loyalty_app, loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.bind_role(bigint, name), loyalty.unbind_role(bigint, name) TO loyalty_admin;
-- Internal: used by the extension's own functions (not granted to anyone).
#include-replace "udfs/emit_event/1.1.sql"
-- members and identities ----------------------------------------------------

#include-replace "udfs/enroll/1.1.sql"
#include-replace "udfs/member_id/1.1.sql"
#include-replace "udfs/link_identity/1.1.sql"
#include-replace "udfs/set_member_status/1.1.sql"
-- merge ---------------------------------------------------------------------

#include-replace "udfs/merge_members/1.1.sql"
-- expiry ----------------------------------------------------------------------

#include-replace "udfs/expire_member/1.1.sql"
-- reads -----------------------------------------------------------------------

#include-replace "udfs/balance/1.1.sql"
#include-replace "udfs/balance_at/1.1.sql"
#include-replace "udfs/history/1.1.sql"
#include-replace "udfs/create_earning_rule/1.1.sql"
#include-replace "udfs/set_activity_rule/1.1.sql"
#include-replace "udfs/record_activity/1.1.sql"
-- "Why did I get 37 points?": every earn with rules or lines keeps its
-- explanation in the ledger row's details.
#include-replace "udfs/earn_explanation/1.1.sql"
#include-replace "udfs/set_tier_policy/1.1.sql"
#include-replace "udfs/define_tier/1.1.sql"
-- Start of the qualification window ending at as_of.
#include-replace "udfs/tier_window_start/1.1.sql"
#include-replace "udfs/tier_metric/1.1.sql"
#include-replace "udfs/qualified_tier/1.1.sql"
-- Internal: record a change on the locked account.
#include-replace "udfs/tier_change/1.1.sql"
-- Internal: called by the C write path after an earn (upgrade) or a refund
-- (demotion only when the program allows it), with the account locked.
#include-replace "udfs/tier_after_write/1.1.sql"
#include-replace "udfs/evaluate_tier/1.1.sql"
#include-replace "udfs/assign_tier/1.1.sql"
#include-replace "udfs/tier_at/1.1.sql"
-- The review, set-based: up to batch_size members of a program after a
-- member id, locked together (in member_id order), their metric computed in
-- one query; only members whose tier changes go through tier_change (history
-- and event).  Returns the last member id reviewed, how many were reviewed
-- and how many changed tier.
#include-replace "udfs/review_tiers_batch/1.1.sql"
-- Review one member (locking it): the batch review of just that member.
#include-replace "udfs/review_member_tier/1.1.sql"
-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include-replace "udfs/review_tiers/1.1.sql"
#include-replace "udfs/create_reward/1.1.sql"
#include-replace "udfs/redeem_reward/1.1.sql"
#include-replace "udfs/cancel_redemption/1.1.sql"
#include-replace "udfs/set_redemption_rules/1.1.sql"
#include-replace "udfs/redeem_for_discount/1.1.sql"
#include-replace "udfs/set_referral_rules/1.1.sql"
#include-replace "udfs/referral_code/1.1.sql"
-- Internal: why new_member may not be referred by referrer, or NULL.  Each
-- reason, once true, stays true (referrals are never deleted, purchases never
-- uncounted), so refer checks them before it locks anything as well as after.
#include-replace "udfs/referral_refusal/1.1.sql"
#include-replace "udfs/refer/1.1.sql"
-- Internal: called by the C earn path with the member's account locked.
#include-replace "udfs/referral_purchase/1.1.sql"
#include-replace "udfs/member_rfm/1.1.sql"
-- Customer summaries for the models, from the ledger: one purchase per day
-- (in the program's time zone), calibration up to and including `calibration_end`.
#include-replace "udfs/purchase_summary/1.1.sql"
#include-replace "udfs/fit_models/1.1.sql"
#include-replace "udfs/member_predictions/1.1.sql"
-- KPI and distribution views --------------------------------------------------------

#include-replace "udfs/kpi_daily/1.1.sql"
#include-replace "udfs/kpi_monthly/1.1.sql"
#include-replace "udfs/kpi_summary/1.1.sql"
#include-replace "udfs/tier_distribution/1.1.sql"
#include-replace "udfs/channel_distribution/1.1.sql"
#include-replace "udfs/member_mix/1.1.sql"
#include-replace "udfs/cohort_retention/1.1.sql"
#include-replace "udfs/reward_popularity/1.1.sql"


-- Row-level security (see 32_access.sql): every table of a program's data
-- shows a role bound to programs only their rows.  The extension's functions
-- and views run as the extension owner, who is exempt, and apply the same
-- test themselves; these policies hold for any role a DBA ever gives direct
-- table access to.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname,
               bool_or(a.attname = 'program_id') AS has_program,
               bool_or(a.attname = 'member_id') AS has_member
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind IN ('r', 'p')
        GROUP BY c.relname
        HAVING bool_or(a.attname IN ('program_id', 'member_id'))
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE loyalty.%I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('CREATE POLICY program_isolation ON loyalty.%I USING (%s)', t.relname,
                       CASE WHEN t.has_program THEN 'loyalty.program_visible(program_id)'
                            ELSE 'loyalty.member_visible(member_id)' END);
    END LOOP;
END $$;

-- 90_security.sql grants administrators read access to every table
REVOKE ALL ON loyalty.program_roles FROM PUBLIC;
GRANT SELECT ON loyalty.program_roles TO loyalty_admin;
