-- loyalty 1.2 -> 1.3 (ALTER EXTENSION loyalty UPDATE TO '1.3')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.3'" to load this file. \quit

-- == write path (issue 3) =====================================================


-- == Citus (issue 8) ==========================================================
