CREATE PROCEDURE loyalty.expire_points(as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_as_of timestamptz := COALESCE(as_of, pg_catalog.now());
    v_step record;
    v_members bigint := 0;
    v_points bigint := 0;
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_as_of OPERATOR(pg_catalog.>) pg_catalog.now() THEN
        RAISE EXCEPTION 'cannot expire points as of a future time %', v_as_of
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Expiry only writes down what has already happened.';
    END IF;
    LOOP
        SELECT * INTO v_step FROM loyalty.expire_batch(v_as_of, batch_size);
        EXIT WHEN v_step.members OPERATOR(pg_catalog.=) 0;
        v_members := v_members OPERATOR(pg_catalog.+) v_step.members;
        v_points := v_points OPERATOR(pg_catalog.+) v_step.points::bigint;
        COMMIT;
        RAISE NOTICE 'loyalty.expire_points: % members, % points expired so far', v_members, v_points;
    END LOOP;
    RAISE NOTICE 'loyalty.expire_points: done: % members, % points expired', v_members, v_points;
END $$;
