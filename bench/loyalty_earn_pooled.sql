-- loyalty C path: a purchase of 1..200 currency units by a random member of
-- program "pooled", whose household pool gets a tenth of the points
\set m :pbase + random(1, :pmembers)
\set amount random(1, 200)
SELECT loyalty.earn(:m, :amount);
