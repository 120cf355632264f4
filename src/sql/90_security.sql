-- ---------------------------------------------------------------------------
-- Roles and privileges.  Three NOLOGIN roles; grant them to login roles.
--   loyalty_admin    configuration, adjustments, merges, batch jobs, verify
--   loyalty_app      the write/read API that channels call, nothing else
--   loyalty_analyst  read-only views (the BI views arrive with analytics)
-- Tables are reachable only through the API (SECURITY DEFINER functions).
-- The roles are created in 00_schema.sql; fragments after 40_api.sql revoke
-- and grant their own functions at their end, in the same way.
-- ---------------------------------------------------------------------------

GRANT USAGE ON SCHEMA loyalty TO loyalty_admin, loyalty_app, loyalty_analyst;
REVOKE ALL ON ALL TABLES IN SCHEMA loyalty FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA loyalty FROM PUBLIC;

-- API functions: nobody by default...
REVOKE ALL ON FUNCTION
    loyalty.create_program(text, text, anycompatible, anycompatible, text, interval, interval, text, interval),
    loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text),
    loyalty.member_id(bigint, text, text),
    loyalty.link_identity(bigint, text, text),
    loyalty.set_member_status(bigint, text),
    loyalty.earn(bigint, numeric, text, text, text, timestamptz, anycompatible, text),
    loyalty.earn(bigint, double precision, text, text, text, timestamptz, anycompatible, text),
    loyalty.award(bigint, numeric, text, text, text, text, timestamptz, timestamptz),
    loyalty.redeem(bigint, numeric, text, text, text, timestamptz),
    loyalty.hold(bigint, numeric, interval, text, text, text),
    loyalty.capture(bigint, numeric, text),
    loyalty.release(bigint, text),
    loyalty.reverse(bigint, bigint, numeric, anycompatible, text, text, text),
    loyalty.refund(bigint, text, numeric, text, text),
    loyalty.refund(bigint, text, double precision, text, text),
    loyalty.earn_batch(bigint[], numeric[], text[], timestamptz[], text[], jsonb[], text),
    loyalty.last_entry(),
    loyalty.adjust(bigint, numeric, text, text, text),
    loyalty.release_expired(bigint),
    loyalty.merge_members(bigint, bigint, text),
    loyalty.expire_member(bigint, timestamptz),
    loyalty.expire_batch(timestamptz, integer),
    loyalty.release_expired_batch(integer),
    loyalty.balance(bigint),
    loyalty.balance_at(bigint, timestamptz),
    loyalty.history(bigint, timestamptz, integer),
    loyalty.verify(),
    loyalty.write_store(),
    loyalty.ledger_refuse_change()
FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.expire_points(timestamptz, integer),
    loyalty.release_expired_holds(integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.import_orders(regclass, text, text, text, text, text, integer, text) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE loyalty.import_orders(regclass, text, text, text, text, text, integer, text) TO loyalty_app, loyalty_admin;

-- ...the channels' API to the application role...
GRANT EXECUTE ON FUNCTION
    loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text),
    loyalty.member_id(bigint, text, text),
    loyalty.link_identity(bigint, text, text),
    loyalty.earn(bigint, numeric, text, text, text, timestamptz, anycompatible, text),
    loyalty.earn(bigint, double precision, text, text, text, timestamptz, anycompatible, text),
    loyalty.award(bigint, numeric, text, text, text, text, timestamptz, timestamptz),
    loyalty.redeem(bigint, numeric, text, text, text, timestamptz),
    loyalty.hold(bigint, numeric, interval, text, text, text),
    loyalty.capture(bigint, numeric, text),
    loyalty.release(bigint, text),
    loyalty.reverse(bigint, bigint, numeric, anycompatible, text, text, text),
    loyalty.refund(bigint, text, numeric, text, text),
    loyalty.refund(bigint, text, double precision, text, text),
    loyalty.earn_batch(bigint[], numeric[], text[], timestamptz[], text[], jsonb[], text),
    loyalty.last_entry(),
    loyalty.balance(bigint),
    loyalty.balance_at(bigint, timestamptz),
    loyalty.history(bigint, timestamptz, integer)
TO loyalty_app, loyalty_admin;

-- ...and configuration, corrections and batch jobs to the administrator.
GRANT EXECUTE ON FUNCTION
    loyalty.create_program(text, text, anycompatible, anycompatible, text, interval, interval, text, interval),
    loyalty.set_member_status(bigint, text),
    loyalty.adjust(bigint, numeric, text, text, text),
    loyalty.release_expired(bigint),
    loyalty.merge_members(bigint, bigint, text),
    loyalty.expire_member(bigint, timestamptz),
    loyalty.expire_batch(timestamptz, integer),
    loyalty.release_expired_batch(integer),
    loyalty.verify(),
    loyalty.write_store()
TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.expire_points(timestamptz, integer),
    loyalty.release_expired_holds(integer) TO loyalty_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA loyalty TO loyalty_admin;
GRANT DELETE ON loyalty.rejected_orders TO loyalty_admin;
GRANT UPDATE (name, point_value, earn_rate, rounding, expiry_period, pending_period, refund_policy,
              max_hold_ttl, closed_through) ON loyalty.programs TO loyalty_admin;

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

#include "parts/model_grants.sql"
