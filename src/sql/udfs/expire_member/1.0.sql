CREATE FUNCTION loyalty.expire_member(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_as_of timestamptz := coalesce(as_of, now());
    v_program bigint;
    v_total bigint;
    v_entry bigint;
BEGIN
    IF v_as_of > now() THEN
        RAISE EXCEPTION 'cannot expire points as of a future time %', v_as_of USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id INTO v_program FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT pg_catalog.sum(l.remaining::bigint) INTO v_total FROM loyalty.lots l
    WHERE l.member_id OPERATOR(pg_catalog.=) member
      AND l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
      AND l.expires_at OPERATOR(pg_catalog.<=) v_as_of;
    IF v_total IS NULL THEN
        RETURN '0'::loyalty.points;       -- nothing (left) to expire: running twice changes nothing
    END IF;
    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, occurred_at)
    VALUES (member, v_program, 'expire', (OPERATOR(pg_catalog.-) v_total)::loyalty.points, 'points expired', v_as_of)
    RETURNING entry_id INTO v_entry;
    WITH x AS (
        UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
        FROM (SELECT l2.lot_id, l2.remaining FROM loyalty.lots l2
              WHERE l2.member_id OPERATOR(pg_catalog.=) member
                AND l2.remaining OPERATOR(loyalty.>) '0'::loyalty.points
                AND l2.expires_at OPERATOR(pg_catalog.<=) v_as_of) o
        WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.lot_id OPERATOR(pg_catalog.=) o.lot_id
        RETURNING l.lot_id, o.remaining)
    INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
    SELECT member, v_entry, x.lot_id, x.remaining FROM x;
    UPDATE loyalty.accounts a SET
        balance = (a.balance::bigint OPERATOR(pg_catalog.-) v_total)::loyalty.points,
        lifetime_expired = (a.lifetime_expired::bigint OPERATOR(pg_catalog.+) v_total)::loyalty.points,
        updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    RETURN v_total::loyalty.points;
END $$;
