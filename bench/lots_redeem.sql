-- PL/pgSQL ledger with lots: same redemption as loyalty_redeem.sql
\set m random(1, :members)
\set points random(1, 10)
SELECT bench_lots.redeem(:m, :points);
