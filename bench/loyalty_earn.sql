-- loyalty C path: a purchase of 1..200 currency units (earn rate 1 point per unit)
-- :base and :members are passed with -D by bench/ledger.sh
\set m :base + random(1, :members)
\set amount random(1, 200)
SELECT loyalty.earn(:m, :amount);
