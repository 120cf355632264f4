CREATE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint := loyalty.require_member(balance_at.member);
    v_horizon timestamptz;
BEGIN
    -- before the archive horizon the entries are gone: no answer is better
    -- than a wrong one
    SELECT p.archived_before INTO v_horizon FROM loyalty.ledger_partitioning p;
    IF at OPERATOR(pg_catalog.<) v_horizon THEN
        RAISE EXCEPTION 'the ledger before % is archived', v_horizon
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('loyalty.archive_ledger() summed the entries recorded before %s into carry_forward entries.', v_horizon),
                  HINT = 'Ask for a time at or after the archive horizon (loyalty.ledger_partitioning.archived_before), or read the archived partitions.';
    END IF;
    RETURN (SELECT coalesce(pg_catalog.sum(l.points::bigint), 0)::bigint
            FROM loyalty.ledger l
            WHERE l.member_id OPERATOR(pg_catalog.=) v_member
              AND l.created_at OPERATOR(pg_catalog.<=) balance_at.at);
END $$;
