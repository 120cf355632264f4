-- loyalty C path: give 1..10 points to another member (never oneself); every
-- member was seeded with 1,000,000 points, so this never runs out
\set m :base + random(1, :members)
\set to :base + 1 + (:m - :base + random(0, :members - 2)) % :members
\set points random(1, 10)
SELECT loyalty.transfer(:m, :to, :points);
