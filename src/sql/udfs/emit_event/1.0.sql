CREATE FUNCTION loyalty.emit_event(member bigint, kind text, payload jsonb DEFAULT '{}', dedup_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_program bigint;
    v_id bigint;
BEGIN
    SELECT m.program_id INTO v_program FROM loyalty.members m
    JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) m.program_id
    WHERE m.member_id OPERATOR(pg_catalog.=) emit_event.member
      AND emit_event.kind OPERATOR(pg_catalog.=) ANY (p.event_kinds);
    IF NOT FOUND THEN
        RETURN NULL;            -- unknown member, or the program does not emit this kind
    END IF;
    INSERT INTO loyalty.events (member_id, program_id, kind, payload, dedup_key)
    VALUES (emit_event.member, v_program, emit_event.kind, coalesce(emit_event.payload, '{}'), emit_event.dedup_key)
    ON CONFLICT (member_id, kind, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING event_id INTO v_id;
    IF v_id IS NOT NULL THEN
        PERFORM pg_catalog.pg_notify('loyalty_events',
            pg_catalog.jsonb_build_object('event_id', v_id, 'member_id', emit_event.member, 'kind', emit_event.kind)::text);
    END IF;
    RETURN v_id;
END $$;
