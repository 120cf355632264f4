-- loyalty 1.1 -> 1.2 (ALTER EXTENSION loyalty UPDATE TO '1.2')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.2'" to load this file. \quit

-- == write path (issue 3) =====================================================

-- Room on each accounts page for HOT updates.  Rows already stored keep their
-- pages until the table is rewritten (VACUUM FULL or CLUSTER, at a quiet time).
ALTER TABLE loyalty.accounts SET (fillfactor = 70);

