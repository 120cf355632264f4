-- hand-written PL/pgSQL ledger (bench/plpgsql_ledger.sql): same purchase as loyalty_earn.sql
\set m random(1, :members)
\set amount random(1, 200)
SELECT bench_plpgsql.earn(:m, :amount);
