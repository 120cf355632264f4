CREATE FUNCTION loyalty.set_member_status(member bigint, status text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF status IS NULL OR NOT status = ANY (ARRAY['active', 'suspended', 'closed']) THEN
        RAISE EXCEPTION 'unknown member status "%"', coalesce(status, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use active, suspended or closed.';
    END IF;
    -- the account row is the member's lock: status changes serialise with writes
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) set_member_status.member FOR UPDATE;
    UPDATE loyalty.members m SET status = set_member_status.status
    WHERE m.member_id OPERATOR(pg_catalog.=) set_member_status.member AND m.merged_into IS NULL;
    IF FOUND THEN
        UPDATE loyalty.accounts a SET status = set_member_status.status, updated_at = now()
        WHERE a.member_id OPERATOR(pg_catalog.=) set_member_status.member;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist or was merged away', member USING ERRCODE = 'no_data_found';
    END IF;
END $$;
