CREATE PROCEDURE loyalty.refresh_rollups(batch_size bigint DEFAULT 100000, max_wait interval DEFAULT '10 seconds')
LANGUAGE plpgsql
AS $$
DECLARE
    r record;
    v_marked boolean := false;
    v_start timestamptz := pg_catalog.clock_timestamp();
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_wait IS NULL OR max_wait OPERATOR(pg_catalog.<) interval '0' THEN
        RAISE EXCEPTION 'max_wait must be an interval of at least 0' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        -- one mark per run: the run brings the rollups up to its own start,
        -- not after writers that keep coming
        SELECT * INTO STRICT r FROM loyalty.refresh_rollups_batch(batch_size, NOT v_marked);
        v_marked := v_marked OR EXISTS (SELECT FROM loyalty.rollup_state s
                                        WHERE s.mark_at OPERATOR(pg_catalog.>=) v_start
                                           OR s.safe_at OPERATOR(pg_catalog.>=) v_start);
        COMMIT;
        EXIT WHEN r.done AND v_marked;
        IF r.entries OPERATOR(pg_catalog.=) 0 AND r.members OPERATOR(pg_catalog.=) 0 THEN
            -- waiting for transactions that were running at the mark
            IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) v_start OPERATOR(pg_catalog.>) max_wait THEN
                RAISE NOTICE 'loyalty.refresh_rollups: transactions running since % still open; the rollups are as of %',
                    v_start, r.as_of;
                EXIT;
            END IF;
            PERFORM pg_catalog.pg_sleep(0.02);
        END IF;
    END LOOP;
END $$;
