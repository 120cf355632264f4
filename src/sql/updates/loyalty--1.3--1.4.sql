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

-- merges and expiry are operations of the C ledger API (src/ledger.c)
#include-replace "udfs/merge_members/1.4.sql"
#include-replace "udfs/expire_member/1.4.sql"
