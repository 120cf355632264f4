CREATE PROCEDURE loyalty.review_tiers(program bigint, as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_as_of timestamptz := COALESCE(as_of, pg_catalog.now());
    v_after bigint := -1;
    v_step record;
    v_n bigint := 0;
    v_c bigint := 0;
BEGIN
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        SELECT * INTO v_step FROM loyalty.review_tiers_batch(program, v_as_of, v_after, batch_size);
        EXIT WHEN v_step.reviewed OPERATOR(pg_catalog.=) 0;
        v_after := v_step.last_member;
        v_n := v_n OPERATOR(pg_catalog.+) v_step.reviewed;
        v_c := v_c OPERATOR(pg_catalog.+) v_step.changed;
        COMMIT;
        RAISE NOTICE 'loyalty.review_tiers: % members reviewed, % tiers changed so far', v_n, v_c;
    END LOOP;
    RAISE NOTICE 'loyalty.review_tiers: done: % members reviewed, % tiers changed', v_n, v_c;
END $$;
