-- the minimal ledger's earn done from C (bench/cfloor): same purchase as plpgsql_earn.sql, same tables
\set m random(1, :members)
\set amount random(1, 200)
SELECT bench_plpgsql.cfloor_earn(:m, :amount);
