-- loyalty extension install script.
-- Assembled by the Makefile from src/sql/*.sql; edit the fragments, not the output.

\echo Use "CREATE EXTENSION loyalty" to load this file. \quit

-- The schema is created by CREATE EXTENSION (loyalty.control: schema = loyalty).
-- Nothing in it is usable by PUBLIC; the roles below get exactly what they need.
REVOKE ALL ON SCHEMA loyalty FROM PUBLIC;


-- The three roles (privileges in 90_security.sql and at the end of each
-- fragment):
--   loyalty_admin    configuration, adjustments, merges, batch jobs, verify
--   loyalty_app      the write/read API that channels call, nothing else
--   loyalty_analyst  read-only views
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_admin') THEN
        CREATE ROLE loyalty_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_app') THEN
        CREATE ROLE loyalty_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_analyst') THEN
        CREATE ROLE loyalty_analyst NOLOGIN;
    END IF;
END $$;

-- The version of the C library; test/scripts/version_check.sh compares it
-- with the extension's version and the packaging files.
CREATE FUNCTION loyalty.version() RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_version' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.version() IS 'Version of the loyalty library in use';
