-- PL/pgSQL ledger with lots (bench/plpgsql_lots_ledger.sql): same purchase as loyalty_earn.sql
\set m random(1, :members)
\set amount random(1, 200)
SELECT bench_lots.earn(:m, :amount);
