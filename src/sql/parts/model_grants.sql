-- The model and RFM functions in C (src/btyd.c, src/sbg.c, src/rfm.c): pure
-- computations on their arguments, yet not for PUBLIC (nothing is, but the
-- types): the administrator and the analyst may call them, and must, since
-- the views call them with the caller's rights.  Their aggregates' support
-- functions (internal arguments) are checked against the aggregates' owner
-- and granted to nobody.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure AS sig, p.prokind,
               p.prorettype = 'internal'::regtype OR 'internal'::regtype = ANY (p.proargtypes::oid[]) AS support
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'loyalty'::regnamespace
          AND (p.prokind = 'a' OR p.prolang = (SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname = 'c'))
          AND (p.proname ~ '^(rfm|btyd|bgnbd|mbgnbd|gamma_gamma|sbg)(_|$)' OR p.proname = 'predict_purchases')
        ORDER BY 1
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
        IF NOT f.support THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO loyalty_admin, loyalty_analyst', f.sig);
        END IF;
    END LOOP;
END $$;
