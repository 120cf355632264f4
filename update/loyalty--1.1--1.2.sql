-- loyalty 1.1 -> 1.2 (ALTER EXTENSION loyalty UPDATE TO '1.2')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.2'" to load this file. \quit

-- == write path (issue 3) =====================================================

