-- loyalty C path: redeem 1..10 points from the pool of a random member's
-- household (program "pooled": members pbase+1..pbase+pmembers, households of four)
\set m :pbase + random(1, :pmembers)
\set points random(1, 10)
SELECT loyalty.household_redeem(:m, :points);
