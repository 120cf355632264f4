-- loyalty extension install script.
-- Assembled by the Makefile from src/sql/*.sql; edit the fragments, not the output.

\echo Use "CREATE EXTENSION loyalty" to load this file. \quit

-- The schema is created by CREATE EXTENSION (loyalty.control: schema = loyalty).
-- Nothing in it is usable by PUBLIC; the roles below get exactly what they need.
REVOKE ALL ON SCHEMA loyalty FROM PUBLIC;

