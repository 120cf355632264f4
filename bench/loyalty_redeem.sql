-- loyalty C path: spend 1..10 points; every member was seeded with 1,000,000
-- points, so this never runs out (LY001 would abort the pgbench client)
\set m :base + random(1, :members)
\set points random(1, 10)
SELECT loyalty.redeem(:m, :points);
