CREATE PROCEDURE loyalty.release_expired_holds(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_n bigint;
    v_total bigint := 0;
BEGIN
    LOOP
        v_n := loyalty.release_expired_batch(batch_size);
        EXIT WHEN v_n OPERATOR(pg_catalog.=) 0;
        v_total := v_total OPERATOR(pg_catalog.+) v_n;
        COMMIT;
        RAISE NOTICE 'loyalty.release_expired_holds: % holds released so far', v_total;
    END LOOP;
END $$;
