CREATE FUNCTION loyalty.history(member bigint, since timestamptz DEFAULT '-infinity', max_rows integer DEFAULT 1000)
RETURNS TABLE (member_id bigint, entry_id bigint, program_id bigint, kind text, points bigint,
               held_delta bigint, amount numeric, channel text, reference text, reason text,
               actor text, source_entry bigint, hold_id bigint, idempotency_key text,
               created_at timestamptz, occurred_at timestamptz, details jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    -- the ledger's columns, points as bigint (every driver reads an integer)
    RETURN QUERY
    SELECT l.member_id, l.entry_id, l.program_id, l.kind, l.points::bigint, l.held_delta::bigint,
           l.amount, l.channel, l.reference, l.reason, l.actor, l.source_entry, l.hold_id,
           l.idempotency_key, l.created_at, l.occurred_at, l.details
    FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.created_at >= coalesce($2, '-infinity')
    ORDER BY l.created_at DESC, l.entry_id DESC
    LIMIT coalesce($3, 1000);
END $$;
