-- loyalty through its SQL store (loyalty.fast_store off for this transaction):
-- the same redemption as loyalty_redeem.sql
\set m :base + random(1, :members)
\set points random(1, 10)
SELECT pg_catalog.set_config('loyalty.fast_store', 'off', true), loyalty.redeem(:m, :points);
