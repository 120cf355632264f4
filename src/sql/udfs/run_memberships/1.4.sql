CREATE PROCEDURE loyalty.run_memberships(as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_step record;
    v_n bigint := 0;
    v_b bigint := 0;
    v_e bigint := 0;
BEGIN
    LOOP
        SELECT * INTO v_step FROM loyalty.membership_batch(as_of, batch_size);
        EXIT WHEN v_step.notified OPERATOR(pg_catalog.+) v_step.bonuses OPERATOR(pg_catalog.+) v_step.ended
                  OPERATOR(pg_catalog.=) 0;
        v_n := v_n OPERATOR(pg_catalog.+) v_step.notified;
        v_b := v_b OPERATOR(pg_catalog.+) v_step.bonuses;
        v_e := v_e OPERATOR(pg_catalog.+) v_step.ended;
        COMMIT;
    END LOOP;
    RAISE NOTICE 'loyalty.run_memberships: % renewal notices, % monthly bonuses, % memberships ended', v_n, v_b, v_e;
END $$;
