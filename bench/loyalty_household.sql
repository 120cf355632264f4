-- loyalty C path: redeem 1..10 points from the household of a random member
-- (households of four: members base+1..base+4, base+5..base+8, ...)
\set m :base + random(1, :members)
\set points random(1, 10)
SELECT loyalty.household_redeem(:m, :points);
