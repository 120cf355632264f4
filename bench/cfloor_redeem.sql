-- the minimal ledger's redemption done from C (bench/cfloor): same as plpgsql_redeem.sql, same tables
\set m random(1, :members)
\set points random(1, 10)
SELECT bench_plpgsql.cfloor_redeem(:m, :points);
