CREATE FUNCTION loyalty.merge_members(survivor bigint, absorbed bigint, idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog_s bigint;
    v_prog_a bigint;
    v_status text;
    a_acc loyalty.accounts;
    v_hold bigint;
    v_out bigint;
    v_in bigint;
    v_moved bigint;
    v_lot record;
    v_hash bigint;
    v_prev record;
BEGIN
    PERFORM loyalty.require_member(merge_members.survivor);
    PERFORM loyalty.require_member(merge_members.absorbed);
    IF survivor IS NULL OR absorbed IS NULL THEN
        RAISE EXCEPTION 'survivor and absorbed must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF survivor OPERATOR(pg_catalog.=) absorbed THEN
        RAISE EXCEPTION 'cannot merge member % into itself', survivor USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- both account rows, always in member_id order, so merges never deadlock
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) ANY (ARRAY[survivor, absorbed])
    ORDER BY a.member_id FOR UPDATE;

    SELECT m.program_id, m.status INTO v_prog_s, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) survivor;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', survivor USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'surviving member % is closed', survivor USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    v_hash := pg_catalog.hashtextextended(pg_catalog.concat_ws('|', 'merge', survivor, absorbed), 0);
    IF idempotency_key IS NOT NULL THEN
        SELECT k.operation, k.request_hash, k.result INTO v_prev FROM loyalty.idempotency_keys k
        WHERE k.member_id OPERATOR(pg_catalog.=) survivor
          AND k.idempotency_key OPERATOR(pg_catalog.=) merge_members.idempotency_key;
        IF FOUND THEN
            IF v_prev.operation OPERATOR(pg_catalog.<>) 'merge' OR v_prev.request_hash OPERATOR(pg_catalog.<>) v_hash THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN v_prev.result::loyalty.points;
        END IF;
    END IF;

    SELECT m.program_id, m.status INTO v_prog_a, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', absorbed USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'member % is closed (already merged?)', absorbed USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_prog_s OPERATOR(pg_catalog.<>) v_prog_a THEN
        RAISE EXCEPTION 'members % and % belong to different programs', survivor, absorbed
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- open holds of the absorbed member go back to it before its lots move
    -- (those whose time is up first, as on any write: releasing them by id
    -- would be refused as expired)
    PERFORM loyalty.release_expired(absorbed);
    FOR v_hold IN SELECT h.hold_id FROM loyalty.holds h
                  WHERE h.member_id OPERATOR(pg_catalog.=) absorbed AND h.status OPERATOR(pg_catalog.=) 'active'
                  ORDER BY h.hold_id LOOP
        PERFORM loyalty.release(v_hold);
    END LOOP;

    SELECT * INTO STRICT a_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;
    v_moved := a_acc.balance::bigint;

    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, details)
    VALUES (absorbed, v_prog_a, 'merge', (OPERATOR(pg_catalog.-) v_moved)::loyalty.points,
            'merged into member ' || survivor, NULL,
            pg_catalog.jsonb_build_object('merged_into', survivor, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_out;
    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, idempotency_key, details)
    VALUES (survivor, v_prog_s, 'merge', v_moved::loyalty.points,
            'merged from member ' || absorbed, v_out, idempotency_key,
            pg_catalog.jsonb_build_object('merged_from', absorbed, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_in;

    -- every open lot moves with its vesting and expiry dates
    FOR v_lot IN SELECT l.lot_id, l.remaining, l.vests_at, l.expires_at FROM loyalty.lots l
                 WHERE l.member_id OPERATOR(pg_catalog.=) absorbed
                   AND l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
                 ORDER BY l.lot_id LOOP
        INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
        VALUES (absorbed, v_out, v_lot.lot_id, v_lot.remaining);
        UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
        WHERE l.member_id OPERATOR(pg_catalog.=) absorbed AND l.lot_id OPERATOR(pg_catalog.=) v_lot.lot_id;
        -- one merge entry brings many lots: they number from the ledger's
        -- sequence, so they never collide with a credit's lot (= its entry_id)
        INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at, expires_at)
        VALUES (survivor, pg_catalog.nextval('loyalty.ledger_entry_id_seq'::pg_catalog.regclass), v_in,
                v_lot.remaining, v_lot.remaining, v_lot.vests_at, v_lot.expires_at);
    END LOOP;

    UPDATE loyalty.accounts s SET
        balance = (s.balance::bigint OPERATOR(pg_catalog.+) a_acc.balance::bigint)::loyalty.points,
        debt = (s.debt::bigint OPERATOR(pg_catalog.+) a_acc.debt::bigint)::loyalty.points,
        lifetime_earned = (s.lifetime_earned::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_earned::bigint)::loyalty.points,
        lifetime_redeemed = (s.lifetime_redeemed::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_redeemed::bigint)::loyalty.points,
        lifetime_expired = (s.lifetime_expired::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_expired::bigint)::loyalty.points,
        first_purchase_at = LEAST(s.first_purchase_at, a_acc.first_purchase_at),
        last_purchase_at = GREATEST(s.last_purchase_at, a_acc.last_purchase_at),
        purchase_count = s.purchase_count OPERATOR(pg_catalog.+) a_acc.purchase_count,
        purchase_days = s.purchase_days OPERATOR(pg_catalog.+) a_acc.purchase_days,
        purchase_amount = s.purchase_amount OPERATOR(pg_catalog.+) a_acc.purchase_amount,
        updated_at = now()
    WHERE s.member_id OPERATOR(pg_catalog.=) survivor;
    UPDATE loyalty.accounts a SET
        balance = '0', debt = '0', lifetime_earned = '0', lifetime_redeemed = '0', lifetime_expired = '0',
        first_purchase_at = NULL, last_purchase_at = NULL, purchase_count = 0, purchase_days = 0,
        purchase_amount = 0, status = 'closed', updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;

    UPDATE loyalty.identities i SET member_id = survivor WHERE i.member_id OPERATOR(pg_catalog.=) absorbed;
    UPDATE loyalty.members m SET status = 'closed', merged_into = survivor
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    -- members merged into the absorbed one now point at the survivor
    UPDATE loyalty.members m SET merged_into = survivor WHERE m.merged_into OPERATOR(pg_catalog.=) absorbed;

    IF idempotency_key IS NOT NULL THEN
        INSERT INTO loyalty.idempotency_keys (member_id, idempotency_key, operation, request_hash, result, entry_id)
        VALUES (survivor, idempotency_key, 'merge', v_hash, v_moved, v_in);
    END IF;
    RETURN v_moved::loyalty.points;
END $$;
