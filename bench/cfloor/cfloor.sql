-- The C reference of bench/ledger.sh (bench/cfloor/loyalty_bench_cfloor.c):
-- bench_plpgsql.earn and .redeem done from C, on the same tables.  Loaded by
-- bench/ledger.sh after bench/plpgsql_ledger.sql when the library is
-- installed; not part of the extension.
CREATE FUNCTION bench_plpgsql.cfloor_earn(member bigint, amount numeric)
RETURNS bigint
AS '$libdir/loyalty_bench_cfloor', 'cfloor_earn'
LANGUAGE C VOLATILE;

CREATE FUNCTION bench_plpgsql.cfloor_redeem(member bigint, points bigint)
RETURNS bigint
AS '$libdir/loyalty_bench_cfloor', 'cfloor_redeem'
LANGUAGE C VOLATILE;
