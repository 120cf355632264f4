CREATE PROCEDURE loyalty.refresh_segments(program bigint DEFAULT NULL, batch_size integer DEFAULT 5000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_program bigint;
    v_day date;
    v_r record;
    v_ids bigint[] := '{}';
    v_segs text[] := '{}';
    v_bands text[] := '{}';
    v_changed bigint;
BEGIN
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_program IN SELECT p.program_id FROM loyalty.programs p
                     WHERE program IS NULL OR p.program_id OPERATOR(pg_catalog.=) program
                     ORDER BY p.program_id LOOP
        PERFORM loyalty.require_program(v_program);
        -- the day the segments are from, in the program's time zone
        SELECT (pg_catalog.now() AT TIME ZONE p.time_zone)::date INTO v_day
        FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) v_program;
        v_changed := 0;
        -- The segments as the views define them (member_rfm's named segment,
        -- churn_risk's band), read once for the program, for the members
        -- whose stored values differ.  The loop's cursor survives the
        -- commits (it is made holdable), so every batch sees the same
        -- snapshot of the program; each batch compares again under its locks.
        -- A closed member keeps neither.
        FOR v_r IN
            SELECT a.member_id, r.segment, c.risk_band
            FROM loyalty.accounts a
            LEFT JOIN loyalty.member_rfm r ON r.member_id OPERATOR(pg_catalog.=) a.member_id
                                           AND r.program_id OPERATOR(pg_catalog.=) v_program
            LEFT JOIN loyalty.churn_risk c ON c.member_id OPERATOR(pg_catalog.=) a.member_id
                                           AND c.program_id OPERATOR(pg_catalog.=) v_program
                                           AND a.status OPERATOR(pg_catalog.<>) 'closed'
            WHERE a.program_id OPERATOR(pg_catalog.=) v_program AND a.status OPERATOR(pg_catalog.<>) 'pool'
              AND (a.segment IS DISTINCT FROM r.segment OR a.risk_band IS DISTINCT FROM c.risk_band)
            ORDER BY a.member_id
        LOOP
            v_ids := v_ids OPERATOR(pg_catalog.||) v_r.member_id;
            v_segs := v_segs OPERATOR(pg_catalog.||) v_r.segment;
            v_bands := v_bands OPERATOR(pg_catalog.||) v_r.risk_band;
            IF pg_catalog.cardinality(v_ids) OPERATOR(pg_catalog.>=) batch_size THEN
                v_changed := v_changed OPERATOR(pg_catalog.+)
                    loyalty.refresh_segments_batch(v_program, v_ids, v_segs, v_bands, v_day);
                v_ids := '{}'; v_segs := '{}'; v_bands := '{}';
                COMMIT;
                RAISE NOTICE 'loyalty.refresh_segments: program %: % members changed so far', v_program, v_changed;
            END IF;
        END LOOP;
        v_changed := v_changed OPERATOR(pg_catalog.+)
            loyalty.refresh_segments_batch(v_program, v_ids, v_segs, v_bands, v_day);
        v_ids := '{}'; v_segs := '{}'; v_bands := '{}';
        COMMIT;
        RAISE NOTICE 'loyalty.refresh_segments: program %: done, % members changed', v_program, v_changed;
    END LOOP;
END $$;
