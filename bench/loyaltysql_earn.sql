-- loyalty through its SQL store (loyalty.fast_store off for this transaction):
-- the same purchase as loyalty_earn.sql
\set m :base + random(1, :members)
\set amount random(1, 200)
SELECT pg_catalog.set_config('loyalty.fast_store', 'off', true), loyalty.earn(:m, :amount);
