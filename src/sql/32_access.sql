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

-- program_visible and member_visible: no SET clause, as views and row
-- security call them per row; the C code pins search_path (pg_catalog,
-- pg_temp) around the only statements they run (access.c)
CREATE FUNCTION loyalty.program_visible(program bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'loyalty_program_visible'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION loyalty.program_visible(bigint) IS
    'Whether the session''s role (SET ROLE included) may use and see the program';
CREATE FUNCTION loyalty.member_visible(member bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'loyalty_member_visible'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
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
