CREATE FUNCTION loyalty.refresh_segments_batch(program bigint, members bigint[], segments text[], risk_bands text[],
                                               as_of date)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ids bigint[];
    v_segs text[];
    v_bands text[];
    v_since date[];
    v_old_bands text[];
    v_member bigint;
    v_i integer;
    v_citus boolean := false;
    a record;
BEGIN
    PERFORM loyalty.require_program(refresh_segments_batch.program);
    IF program IS NULL OR members IS NULL OR segments IS NULL OR risk_bands IS NULL OR as_of IS NULL THEN
        RAISE EXCEPTION 'program, members, segments, risk_bands and as_of must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF cardinality(members) <> cardinality(segments) OR cardinality(members) <> cardinality(risk_bands) THEN
        RAISE EXCEPTION 'members, segments and risk_bands must have the same length'
            USING ERRCODE = 'array_subscript_error';
    END IF;
    -- (the write path's own test: whether loyalty.accounts is a Citus table)
    v_citus := loyalty.books_distributed();
    IF v_citus THEN
        -- On Citus a locking query cannot span shards: one member at a time,
        -- in member_id order, each statement on that member's shard.
        FOR v_i IN SELECT o.i FROM generate_subscripts(members, 1) o(i) ORDER BY members[o.i] LOOP
            v_member := members[v_i];
            SELECT x.segment, x.risk_band, x.segment_since, x.status INTO a
            FROM loyalty.accounts x
            WHERE x.member_id = v_member AND x.program_id = program FOR NO KEY UPDATE;
            CONTINUE WHEN NOT FOUND OR a.status = 'pool'
                OR (a.segment IS NOT DISTINCT FROM segments[v_i] AND a.risk_band IS NOT DISTINCT FROM risk_bands[v_i]);
            PERFORM loyalty.apply_segments(ARRAY[v_member], ARRAY[segments[v_i]], ARRAY[risk_bands[v_i]],
                ARRAY[CASE WHEN segments[v_i] IS NULL THEN NULL
                           WHEN a.segment IS NOT DISTINCT FROM segments[v_i] THEN a.segment_since
                           ELSE as_of END]);
            IF a.risk_band IS DISTINCT FROM risk_bands[v_i] THEN
                INSERT INTO loyalty.risk_band_changes (member_id, program_id, changed_on, from_band, to_band)
                VALUES (v_member, program, as_of, a.risk_band, risk_bands[v_i])
                ON CONFLICT (member_id, changed_on) DO UPDATE SET to_band = EXCLUDED.to_band;
            END IF;
            v_ids := v_ids || v_member;
        END LOOP;
        RETURN coalesce(cardinality(v_ids), 0);
    END IF;

    -- Lock the batch's accounts in member_id order (as every batch job does,
    -- so two cannot deadlock), then compare under the locks: a member whose
    -- stored values already match is not written.
    SELECT coalesce(array_agg(d.member_id ORDER BY d.member_id), '{}'),
           coalesce(array_agg(d.segment ORDER BY d.member_id), '{}'),
           coalesce(array_agg(d.risk_band ORDER BY d.member_id), '{}'),
           coalesce(array_agg(d.since ORDER BY d.member_id), '{}'),
           coalesce(array_agg(d.old_band ORDER BY d.member_id), '{}')
    INTO v_ids, v_segs, v_bands, v_since, v_old_bands
    FROM (
        SELECT x.member_id, n.segment, n.risk_band,
               CASE WHEN n.segment IS NULL THEN NULL
                    WHEN x.segment IS NOT DISTINCT FROM n.segment THEN x.segment_since
                    ELSE as_of END AS since,
               x.segment AS old_segment, x.risk_band AS old_band, x.status
        FROM unnest(members, segments, risk_bands) AS n(member_id, segment, risk_band)
        JOIN loyalty.accounts x ON x.member_id = n.member_id AND x.program_id = program
        ORDER BY x.member_id
        FOR NO KEY UPDATE OF x
    ) d
    WHERE d.status <> 'pool'
      AND (d.old_segment IS DISTINCT FROM d.segment OR d.old_band IS DISTINCT FROM d.risk_band);
    PERFORM loyalty.apply_segments(v_ids, v_segs, v_bands, v_since);
    -- the bands' changes, for analysts and the at_risk journey (one per member and day)
    INSERT INTO loyalty.risk_band_changes (member_id, program_id, changed_on, from_band, to_band)
    SELECT c.member_id, program, as_of, c.old_band, c.band
    FROM unnest(v_ids, v_bands, v_old_bands) AS c(member_id, band, old_band)
    WHERE c.band IS DISTINCT FROM c.old_band
    ON CONFLICT (member_id, changed_on) DO UPDATE SET to_band = EXCLUDED.to_band;
    RETURN cardinality(v_ids);
END $$;
