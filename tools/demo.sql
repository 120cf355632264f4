-- The loyalty demo (run by tools/demo.sh in a throwaway cluster).
\pset footer off
\set ON_ERROR_STOP 1
CREATE EXTENSION loyalty;
SET search_path = loyalty, public;

\echo
\echo '== points: exact, overflow-checked counts'
SELECT '1500'::points + '250'::points               AS "1500 + 250",
       '1999'::points * 1.5                         AS "1999 x 1.5 (half up)",
       points_mul_floor('1999', 1.5)                AS "floor",
       points_value('12345', 0.01)                  AS "12345 pts in money at 0.01",
       '1'::points / '3'::points                    AS "ratio";
\echo 'an overflow is an error, never a wrap-around:'
\set ON_ERROR_STOP 0
SELECT '9223372036854775807'::points + '1'::points;
\set ON_ERROR_STOP 1

\echo
\echo '== tier: ordered by rank, read by name'
SELECT t AS tier, tier_rank(t) AS rank, tier_name(t) AS name
FROM unnest(ARRAY['2:Gold', '0:Member', '3:Platinum', '1:Silver']::tier[]) AS t
ORDER BY t;
