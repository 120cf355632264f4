-- ---------------------------------------------------------------------------
-- The public API of the ledger core.
-- ---------------------------------------------------------------------------
-- Every API function is SECURITY DEFINER because the application role may
-- call it but has no privilege on the tables it writes (that is the point:
-- every write goes through the checks below).  Each one pins search_path.

-- programs ------------------------------------------------------------------

CREATE FUNCTION loyalty.create_program(
    name            text,
    currency        text DEFAULT 'USD',
    point_value     numeric DEFAULT 0.01,
    earn_rate       numeric DEFAULT 1,
    rounding        text DEFAULT 'floor',
    expiry_period   interval DEFAULT NULL,
    pending_period  interval DEFAULT interval '0',
    refund_policy   text DEFAULT 'forgive',
    max_hold_ttl    interval DEFAULT interval '1 day')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF name IS NULL OR btrim(name) = '' THEN
        RAISE EXCEPTION 'a program needs a name' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF currency IS NULL OR currency !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION 'currency must be an ISO 4217 code such as USD, got %', coalesce(currency, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF point_value IS NULL OR point_value < 0 OR point_value = 'Infinity' OR point_value = 'NaN' THEN
        RAISE EXCEPTION 'point_value must be a finite, non-negative money value, got %', coalesce(point_value::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'One point worth one cent is 0.01.';
    END IF;
    IF earn_rate IS NULL OR earn_rate < 0 OR earn_rate = 'Infinity' OR earn_rate = 'NaN' THEN
        RAISE EXCEPTION 'earn_rate must be a finite, non-negative number of points per currency unit, got %',
            coalesce(earn_rate::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rounding IS NULL OR NOT rounding = ANY (ARRAY['floor', 'round', 'ceil', 'trunc']) THEN
        RAISE EXCEPTION 'unknown rounding rule "%"', coalesce(rounding, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use one of floor, round, ceil or trunc.';
    END IF;
    IF expiry_period IS NOT NULL AND expiry_period <= interval '0' THEN
        RAISE EXCEPTION 'expiry_period must be positive or NULL (never expire)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pending_period IS NULL OR pending_period < interval '0' THEN
        RAISE EXCEPTION 'pending_period must be zero or positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF refund_policy IS NULL OR NOT refund_policy = ANY (ARRAY['forgive', 'debt']) THEN
        RAISE EXCEPTION 'unknown refund policy "%"', coalesce(refund_policy, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use forgive or debt.';
    END IF;
    IF max_hold_ttl IS NULL OR max_hold_ttl <= interval '0' THEN
        RAISE EXCEPTION 'max_hold_ttl must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO loyalty.programs (name, currency, point_value, earn_rate, rounding, expiry_period,
                                  pending_period, refund_policy, max_hold_ttl)
    VALUES (create_program.name, create_program.currency, create_program.point_value,
            create_program.earn_rate, create_program.rounding, create_program.expiry_period,
            create_program.pending_period, create_program.refund_policy, create_program.max_hold_ttl)
    RETURNING program_id INTO v_id;
    RETURN v_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'a program named "%" already exists', create_program.name
        USING ERRCODE = 'unique_violation';
END $$;
COMMENT ON FUNCTION loyalty.create_program(text, text, numeric, numeric, text, interval, interval, text, interval) IS
    'Create a loyalty program (currency, value of a point, base earn rate, rounding, expiry, pending period, refund policy); returns its id';

-- members and identities ----------------------------------------------------

CREATE FUNCTION loyalty.enroll(
    program         bigint,
    channel         text,
    external_id     text,
    joined_at       timestamptz DEFAULT NULL,
    source_channel  text DEFAULT NULL,
    region          text DEFAULT NULL,
    birthday        date DEFAULT NULL,
    referral_code   text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM loyalty.require_program(enroll.program);
    IF program IS NULL OR channel IS NULL OR external_id IS NULL THEN
        RAISE EXCEPTION 'program, channel and external_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(channel) = '' OR btrim(external_id) = '' THEN
        RAISE EXCEPTION 'channel and external_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF joined_at IS NOT NULL AND (NOT isfinite(joined_at) OR joined_at > now() + interval '5 minutes') THEN
        RAISE EXCEPTION 'joined_at must be a finite time, not in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) enroll.program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found',
            HINT = 'Create it with loyalty.create_program().';
    END IF;

    SELECT i.member_id INTO v_id FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) enroll.program
      AND i.channel OPERATOR(pg_catalog.=) enroll.channel
      AND i.external_id OPERATOR(pg_catalog.=) enroll.external_id;
    IF FOUND THEN
        RETURN v_id;
    END IF;

    -- Claim the identity first: a concurrent enrolment of the same identity
    -- waits on the unique key and then finds our member, so one identity
    -- never yields two members (the FK to members is checked at commit).
    v_id := nextval('loyalty.members_member_id_seq');
    INSERT INTO loyalty.identities (program_id, channel, external_id, member_id)
    VALUES (program, channel, external_id, v_id)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        SELECT i.member_id INTO STRICT v_id FROM loyalty.identities i
        WHERE i.program_id OPERATOR(pg_catalog.=) enroll.program
          AND i.channel OPERATOR(pg_catalog.=) enroll.channel
          AND i.external_id OPERATOR(pg_catalog.=) enroll.external_id;
        RETURN v_id;
    END IF;
    INSERT INTO loyalty.members (member_id, program_id, joined_at, source_channel, region, birthday)
    OVERRIDING SYSTEM VALUE
    VALUES (v_id, program, coalesce(joined_at, now()), coalesce(source_channel, channel), region, birthday);
    INSERT INTO loyalty.accounts (member_id, program_id) VALUES (v_id, program);
    PERFORM loyalty.emit_event(v_id, 'member.enrolled',
        pg_catalog.jsonb_build_object('channel', channel, 'external_id', external_id,
                                      'source_channel', coalesce(source_channel, channel)));
    IF referral_code IS NOT NULL THEN
        PERFORM loyalty.refer(v_id, referral_code);   -- a refused code fails the enrolment (LY020)
    END IF;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text) IS
    'Enrol a member under a channel identity (optionally with a referral code); enrolling an existing identity returns the same member (also when two channels race)';

CREATE FUNCTION loyalty.member_id(program bigint, channel text, external_id text)
RETURNS bigint
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.member_id FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) loyalty.require_program($1)
      AND i.channel OPERATOR(pg_catalog.=) $2
      AND i.external_id OPERATOR(pg_catalog.=) $3
$$;
COMMENT ON FUNCTION loyalty.member_id(bigint, text, text) IS
    'The member known under a channel identity, or NULL';

CREATE FUNCTION loyalty.link_identity(member bigint, channel text, external_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_owner bigint;
BEGIN
    PERFORM loyalty.require_member(link_identity.member);
    IF member IS NULL OR channel IS NULL OR external_id IS NULL THEN
        RAISE EXCEPTION 'member, channel and external_id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(channel) = '' OR btrim(external_id) = '' THEN
        RAISE EXCEPTION 'channel and external_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.program_id INTO v_program FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) link_identity.member AND m.status OPERATOR(pg_catalog.<>) 'closed';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist or is closed', member USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO loyalty.identities (program_id, channel, external_id, member_id)
    VALUES (v_program, channel, external_id, member)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    SELECT i.member_id INTO STRICT v_owner FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) v_program
      AND i.channel OPERATOR(pg_catalog.=) link_identity.channel
      AND i.external_id OPERATOR(pg_catalog.=) link_identity.external_id;
    IF v_owner OPERATOR(pg_catalog.=) member THEN
        RETURN false;
    END IF;
    RAISE EXCEPTION 'identity %:% already belongs to member %', channel, external_id, v_owner
        USING ERRCODE = 'unique_violation',
              HINT = 'If both members are the same person, merge them with loyalty.merge_members().';
END $$;
COMMENT ON FUNCTION loyalty.link_identity(bigint, text, text) IS
    'Attach another channel identity to a member; true if added, false if it was already this member''s';

CREATE FUNCTION loyalty.set_member_status(member bigint, status text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_member(set_member_status.member);
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
COMMENT ON FUNCTION loyalty.set_member_status(bigint, text) IS
    'Set a member active, suspended (no earning or spending) or closed';

-- the write path (C, src/ledger.c) -------------------------------------------

CREATE FUNCTION loyalty.earn(
    member bigint, amount numeric,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
    lines jsonb DEFAULT NULL, store text DEFAULT NULL)
RETURNS loyalty.points
AS 'MODULE_PATHNAME', 'loyalty_earn'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.earn(bigint, numeric, text, text, text, timestamptz, jsonb, text) IS
    'Credit points for a purchase of amount, or of order lines (jsonb [{category, product, quantity, amount}]), by the program''s rate and earning rules; the ledger row''s details say why; records purchase statistics; returns the points credited';

CREATE FUNCTION loyalty.award(
    member bigint, points loyalty.points, reason text,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL,
    expires_at timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_award'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.award(bigint, loyalty.points, text, text, text, text, timestamptz, timestamptz) IS
    'Credit points for a non-purchase reason (sign-up, review, goodwill...); returns the ledger entry id';

CREATE FUNCTION loyalty.redeem(
    member bigint, points loyalty.points,
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL, occurred_at timestamptz DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_redeem'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.redeem(bigint, loyalty.points, text, text, text, timestamptz) IS
    'Spend points now, first-to-expire-first; never below zero (LY001); returns the ledger entry id';

CREATE FUNCTION loyalty.hold(
    member bigint, points loyalty.points, ttl interval DEFAULT interval '15 minutes',
    channel text DEFAULT NULL, reference text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_hold'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.hold(bigint, loyalty.points, interval, text, text, text) IS
    'Reserve points for ttl (two-phase redemption); returns the hold id for loyalty.capture() or loyalty.release()';

CREATE FUNCTION loyalty.capture(hold bigint, points loyalty.points DEFAULT NULL,
                                idempotency_key text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_capture'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.capture(bigint, loyalty.points, text) IS
    'Redeem a hold (all of it, or points of it, the rest returning to the member); returns the ledger entry id';

CREATE FUNCTION loyalty.release(hold bigint, idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
AS 'MODULE_PATHNAME', 'loyalty_release'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.release(bigint, text) IS
    'Cancel a hold, returning its points to the lots they came from; returns the points released';

CREATE FUNCTION loyalty.reverse(
    member bigint, entry bigint,
    points loyalty.points DEFAULT NULL, amount numeric DEFAULT NULL,
    reference text DEFAULT NULL, reason text DEFAULT NULL,
    idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
AS 'MODULE_PATHNAME', 'loyalty_reverse'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.reverse(bigint, bigint, loyalty.points, numeric, text, text, text) IS
    'Undo an entry fully or partly (by points, or by refunded amount in proportion); never more than the entry; returns points reversed';

CREATE FUNCTION loyalty.adjust(
    member bigint, points loyalty.points, reason text,
    idempotency_key text DEFAULT NULL, reference text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_adjust'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.adjust(bigint, loyalty.points, text, text, text) IS
    'Administrator correction by a signed number of points, with a reason; returns the ledger entry id';

CREATE FUNCTION loyalty.release_expired(member bigint)
RETURNS bigint
AS 'MODULE_PATHNAME', 'loyalty_release_expired'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.release_expired(bigint) IS
    'Release the member''s holds whose time is up; returns how many';

-- merge ---------------------------------------------------------------------

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
    -- both account rows, always in member_id order, so merges never deadlock;
    -- one statement per member, so that each is routed to its shard on Citus
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) LEAST(survivor, absorbed) FOR UPDATE;
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) GREATEST(survivor, absorbed) FOR UPDATE;

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
                 WHERE l.member_id OPERATOR(pg_catalog.=) absorbed AND l.is_open
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
        -- the moved lots may expire before the survivor's own
        next_expiry_at = LEAST(s.next_expiry_at,
                               (SELECT pg_catalog.min(l.expires_at) FROM loyalty.lots l
                                WHERE l.member_id OPERATOR(pg_catalog.=) survivor
                                  AND l.is_open AND l.entry_id OPERATOR(pg_catalog.=) v_in)),
        updated_at = now()
    WHERE s.member_id OPERATOR(pg_catalog.=) survivor;
    UPDATE loyalty.accounts a SET
        balance = '0', debt = '0', lifetime_earned = '0', lifetime_redeemed = '0', lifetime_expired = '0',
        first_purchase_at = NULL, last_purchase_at = NULL, purchase_count = 0, purchase_days = 0,
        purchase_amount = 0, status = 'closed', next_expiry_at = NULL, updated_at = now()
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
COMMENT ON FUNCTION loyalty.merge_members(bigint, bigint, text) IS
    'Merge two records of one person: lots (with their expiry), debt, statistics and identities move to the survivor through merge ledger entries; the absorbed member is closed; returns the points moved';

-- expiry ----------------------------------------------------------------------

CREATE FUNCTION loyalty.expire_member(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_as_of timestamptz := coalesce(as_of, now());
    v_now timestamptz := now();
    v_program bigint;
    v_bound timestamptz;
    v_next timestamptz;
    v_total bigint;
    v_entry bigint;
BEGIN
    PERFORM loyalty.require_member(expire_member.member);
    IF v_as_of > now() THEN
        RAISE EXCEPTION 'cannot expire points as of a future time %', v_as_of USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id, a.next_expiry_at INTO v_program, v_bound FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT pg_catalog.sum(l.remaining::bigint) INTO v_total FROM loyalty.lots l
    WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.is_open
      AND l.expires_at OPERATOR(pg_catalog.<=) v_as_of;
    IF v_total IS NOT NULL THEN
        INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, occurred_at)
        VALUES (member, v_program, 'expire', (OPERATOR(pg_catalog.-) v_total)::loyalty.points, 'points expired', v_as_of)
        RETURNING entry_id INTO v_entry;
        WITH x AS (
            UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
            FROM (SELECT l2.lot_id, l2.remaining FROM loyalty.lots l2
                  WHERE l2.member_id OPERATOR(pg_catalog.=) member AND l2.is_open
                    AND l2.expires_at OPERATOR(pg_catalog.<=) v_as_of) o
            WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.lot_id OPERATOR(pg_catalog.=) o.lot_id
            RETURNING l.lot_id, o.remaining)
        INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
        SELECT member, v_entry, x.lot_id, x.remaining FROM x;
    END IF;
    -- The expiry bound becomes exact: the job then leaves this member alone
    -- until its next lot expires (running twice changes nothing).
    SELECT pg_catalog.min(l.expires_at) INTO v_next FROM loyalty.lots l
    WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.is_open AND l.expires_at IS NOT NULL;
    IF v_total IS NOT NULL OR v_next IS DISTINCT FROM v_bound THEN
        UPDATE loyalty.accounts a SET
            balance = (a.balance::bigint OPERATOR(pg_catalog.-) coalesce(v_total, 0))::loyalty.points,
            lifetime_expired = (a.lifetime_expired::bigint OPERATOR(pg_catalog.+) coalesce(v_total, 0))::loyalty.points,
            next_expiry_at = v_next,
            -- (a variable, not now(): Citus refuses volatile calls in a CASE)
            updated_at = CASE WHEN v_total IS NULL THEN a.updated_at ELSE v_now END
        WHERE a.member_id OPERATOR(pg_catalog.=) member;
    END IF;
    RETURN coalesce(v_total, 0)::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.expire_member(bigint, timestamptz) IS
    'Write off the unspent remainder of the member''s lots expired by as_of (default now); idempotent';

CREATE FUNCTION loyalty.expire_batch(as_of timestamptz, batch_size integer)
RETURNS TABLE (members bigint, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
    v_pts bigint := 0;
BEGIN
    -- Members whose expiry bound has come: each is expired (or, when the bound
    -- was only a lower one, has it raised), so the next batch moves on.
    FOR v_member IN
        SELECT a.member_id FROM loyalty.accounts a
        WHERE a.next_expiry_at OPERATOR(pg_catalog.<=) as_of
        ORDER BY a.next_expiry_at
        LIMIT batch_size
    LOOP
        v_pts := v_pts OPERATOR(pg_catalog.+) loyalty.expire_member(v_member, as_of)::bigint;
        v_n := v_n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN QUERY SELECT v_n, v_pts::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.expire_batch(timestamptz, integer) IS
    'Expire the lots of up to batch_size members (one step of loyalty.expire_points)';

-- A procedure that COMMITs cannot carry a SET search_path clause (PostgreSQL
-- forbids transaction control there), so this body names every object with
-- its schema and does its work in pinned functions.
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
COMMENT ON PROCEDURE loyalty.expire_points(timestamptz, integer) IS
    'Batch job: write off expired lots as of a time, committing every batch_size members and reporting progress; safe to rerun';

CREATE FUNCTION loyalty.release_expired_batch(batch_size integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
BEGIN
    FOR v_member IN
        SELECT DISTINCT h.member_id FROM loyalty.holds h
        WHERE h.status OPERATOR(pg_catalog.=) 'active' AND h.expires_at OPERATOR(pg_catalog.<=) now()
        LIMIT batch_size
    LOOP
        v_n := v_n OPERATOR(pg_catalog.+) loyalty.release_expired(v_member);
    END LOOP;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.release_expired_batch(integer) IS
    'Release the expired holds of up to batch_size members (one step of loyalty.release_expired_holds)';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
CREATE PROCEDURE loyalty.release_expired_holds(batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_n bigint;
    v_total bigint := 0;
BEGIN
    LOOP
        v_n := loyalty.release_expired_batch(batch_size);
        EXIT WHEN v_n OPERATOR(pg_catalog.=) 0;
        v_total := v_total OPERATOR(pg_catalog.+) v_n;
        COMMIT;
        RAISE NOTICE 'loyalty.release_expired_holds: % holds released so far', v_total;
    END LOOP;
END $$;
COMMENT ON PROCEDURE loyalty.release_expired_holds(integer) IS
    'Batch job: release every hold whose time is up, committing per batch; holds also release themselves on the member''s next write';

-- reads -----------------------------------------------------------------------

CREATE FUNCTION loyalty.balance(member bigint)
RETURNS TABLE (
    member_id bigint, available loyalty.points, pending loyalty.points, held loyalty.points,
    expired_unposted loyalty.points, debt loyalty.points, balance loyalty.points,
    lifetime_earned loyalty.points, lifetime_redeemed loyalty.points, lifetime_expired loyalty.points,
    next_expiry timestamptz, next_expiry_points loyalty.points, as_of timestamptz)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    -- Expiry and hold timeouts are exact at read time: a lot past its expiry
    -- is not available even before the batch runs, and an expired hold's
    -- points are available again before anything releases it.
    -- Every table is filtered by v_member itself, the correlated subquery
    -- too (not through h.member_id): Citus then plans the whole statement as
    -- one task on the member's shard; with the correlation alone it ran the
    -- holds part on every shard (about 0.3 s a call on 3 nodes).
    RETURN QUERY
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = v_member AND lots.is_open
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = v_member AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = v_member AND h.status = 'active' AND h.expires_at <= now()
    )
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::loyalty.points,
           coalesce(l.pending, 0)::loyalty.points,
           (a.held::bigint - coalesce(h.points, 0))::loyalty.points,
           coalesce(l.expired, 0)::loyalty.points,
           a.debt, a.balance, a.lifetime_earned, a.lifetime_redeemed, a.lifetime_expired,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = v_member AND x.expires_at = l.next_expiry
                       AND x.is_open AND x.vests_at <= now()), 0)::loyalty.points,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = v_member;
END $$;
COMMENT ON FUNCTION loyalty.balance(bigint) IS
    'Balances of a member now: available (spendable), pending (vesting), held, expired but not yet written down, debt, posted balance, lifetime totals, next expiry';

CREATE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS loyalty.points
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
    RETURN (SELECT coalesce(pg_catalog.sum(l.points::bigint), 0)::loyalty.points
            FROM loyalty.ledger l
            WHERE l.member_id OPERATOR(pg_catalog.=) v_member
              AND l.created_at OPERATOR(pg_catalog.<=) balance_at.at);
END $$;
COMMENT ON FUNCTION loyalty.balance_at(bigint, timestamptz) IS
    'Posted balance (sum of the ledger) as recorded at a past time; answers disputes and month-end questions from the ledger alone';

CREATE FUNCTION loyalty.history(member bigint, since timestamptz DEFAULT '-infinity', max_rows integer DEFAULT 1000)
RETURNS SETOF loyalty.ledger
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN QUERY
    SELECT * FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.created_at >= coalesce($2, '-infinity')
    ORDER BY l.created_at DESC, l.entry_id DESC
    LIMIT coalesce($3, 1000);
END $$;
COMMENT ON FUNCTION loyalty.history(bigint, timestamptz, integer) IS
    'A member''s ledger entries, newest first';

CREATE FUNCTION loyalty.verify()
RETURNS TABLE (invariant text, member_id bigint, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Every check reads whole tables, so hash joins are right whatever the
-- statistics say.  With statistics from before the ledger grew (analysed
-- while it held only earns), the planner expected no debits and rescanned an
-- aggregate of all allocations for every debit: minutes instead of seconds
-- at 300,000 rows (test/pgtap/plans.sql).
SET enable_nestloop = off
AS $$
    WITH led AS (
        SELECT l.member_id, sum(l.points::bigint) AS points, sum(l.held_delta::bigint) AS held
        FROM loyalty.ledger l GROUP BY l.member_id
    ), lots AS (
        SELECT l.member_id, sum(l.remaining::bigint) AS remaining
        FROM loyalty.lots l GROUP BY l.member_id
    ), holds AS (
        SELECT h.member_id, sum(h.points::bigint) AS held
        FROM loyalty.holds h WHERE h.status = 'active' GROUP BY h.member_id
    ), alloc AS (
        SELECT a.member_id, a.entry_id, sum(a.points::bigint) AS points
        FROM loyalty.allocations a GROUP BY a.member_id, a.entry_id
    )
    SELECT 'balance = sum(ledger)', a.member_id,
           format('balance %s, ledger %s', a.balance, coalesce(led.points, 0))
    FROM loyalty.accounts a LEFT JOIN led USING (member_id)
    WHERE a.balance::bigint <> coalesce(led.points, 0)
    UNION ALL
    SELECT 'balance = sum(lots) - debt', a.member_id,
           format('balance %s, lots %s, debt %s', a.balance, coalesce(lots.remaining, 0), a.debt)
    FROM loyalty.accounts a LEFT JOIN lots USING (member_id)
    WHERE a.balance::bigint <> coalesce(lots.remaining, 0) - a.debt::bigint
    UNION ALL
    SELECT 'held = sum(active holds) = sum(ledger.held_delta)', a.member_id,
           format('held %s, active holds %s, ledger %s', a.held, coalesce(holds.held, 0), coalesce(led.held, 0))
    FROM loyalty.accounts a LEFT JOIN holds USING (member_id) LEFT JOIN led USING (member_id)
    WHERE a.held::bigint <> coalesce(holds.held, 0) OR a.held::bigint <> coalesce(led.held, 0)
    UNION ALL
    SELECT 'no negative balance without debt', a.member_id, format('balance %s, debt %s', a.balance, a.debt)
    FROM loyalty.accounts a
    WHERE a.balance::bigint < 0 AND a.balance::bigint + a.debt::bigint < 0
    UNION ALL
    SELECT 'a debit consumed exactly its points from lots', l.member_id,
           format('entry %s (%s) of %s points, allocations %s', l.entry_id, l.kind, l.points, coalesce(al.points, 0))
    FROM loyalty.ledger l LEFT JOIN alloc al USING (member_id, entry_id)
    WHERE l.kind = ANY (ARRAY['redeem', 'hold', 'expire', 'merge', 'adjust'])
      AND l.points::bigint < 0 AND coalesce(al.points, 0) <> -l.points::bigint
    UNION ALL
    SELECT 'a credit has one lot of its points', l.member_id,
           format('entry %s (%s) of %s points, lots %s', l.entry_id, l.kind, l.points, coalesce(lo.original, 0))
    FROM loyalty.ledger l
    LEFT JOIN (SELECT x.member_id, x.entry_id, sum(x.original::bigint) AS original, count(*) AS n
               FROM loyalty.lots x GROUP BY 1, 2) lo USING (member_id, entry_id)
    WHERE l.kind = ANY (ARRAY['earn', 'award', 'adjust']) AND l.points::bigint > 0
      AND (lo.n IS DISTINCT FROM 1 OR lo.original <> l.points::bigint)
    UNION ALL
    SELECT 'a resolved hold has a resolving entry', h.member_id, format('hold %s is %s', h.hold_id, h.status)
    FROM loyalty.holds h
    WHERE (h.status = 'active') <> (h.resolved_entry IS NULL)
    UNION ALL
    SELECT 'reversals of a debit never exceed it', l.member_id,
           format('entry %s (%s) of %s points, given back %s', l.entry_id, l.kind, l.points, r.back)
    FROM loyalty.ledger l
    JOIN (SELECT x.member_id, x.source_entry, sum(x.points::bigint) AS back FROM loyalty.ledger x
          WHERE x.kind = 'reverse' AND x.points::bigint > 0 GROUP BY 1, 2) r
      ON r.member_id = l.member_id AND r.source_entry = l.entry_id
    WHERE r.back > -l.points::bigint AND l.kind <> 'capture'
    UNION ALL
    SELECT 'a ledger entry has a known kind', l.member_id, format('entry %s has kind %s', l.entry_id, l.kind)
    FROM loyalty.ledger l
    WHERE NOT l.kind = ANY (ARRAY['earn', 'award', 'redeem', 'hold', 'capture', 'release', 'reverse',
                                  'expire', 'adjust', 'merge', 'carry_forward'])
    UNION ALL
    SELECT 'lot bounds: 0 <= reversed, remaining <= original', l.member_id,
           format('lot %s: original %s, remaining %s, reversed %s', l.lot_id, l.original, l.remaining, l.reversed)
    FROM loyalty.lots l
    WHERE NOT (l.original::bigint > 0 AND l.remaining::bigint >= 0 AND l.remaining::bigint <= l.original::bigint
               AND l.reversed::bigint >= 0 AND l.reversed::bigint <= l.original::bigint)
    UNION ALL
    SELECT 'a lot belongs to a ledger entry', l.member_id, format('lot %s, entry %s', l.lot_id, l.entry_id)
    FROM loyalty.lots l
    -- (a lot is recorded with its entry: the entries of lots older than the
    -- archive horizon were archived)
    WHERE l.created_at >= coalesce((SELECT p.archived_before FROM loyalty.ledger_partitioning p), '-infinity')
      AND NOT EXISTS (SELECT 1 FROM loyalty.ledger x WHERE x.member_id = l.member_id AND x.entry_id = l.entry_id)
    UNION ALL
    SELECT 'allocation bounds: 0 <= returned <= points, points > 0', a.member_id,
           format('entry %s lot %s: points %s, returned %s', a.entry_id, a.lot_id, a.points, a.returned)
    FROM loyalty.allocations a
    WHERE NOT (a.points::bigint > 0 AND a.returned::bigint >= 0 AND a.returned::bigint <= a.points::bigint)
    UNION ALL
    SELECT 'an allocation names a lot of its member', a.member_id, format('entry %s, lot %s', a.entry_id, a.lot_id)
    FROM loyalty.allocations a
    WHERE NOT EXISTS (SELECT 1 FROM loyalty.lots l WHERE l.member_id = a.member_id AND l.lot_id = a.lot_id)
    UNION ALL
    SELECT 'no open lot expires before the account''s expiry bound', a.member_id,
           format('next_expiry_at %s, first open lot expires %s', coalesce(a.next_expiry_at::text, 'NULL'), x.first)
    FROM loyalty.accounts a
    JOIN (SELECT l.member_id, min(l.expires_at) AS first FROM loyalty.lots l
          WHERE l.is_open AND l.expires_at IS NOT NULL GROUP BY l.member_id) x USING (member_id)
    WHERE a.next_expiry_at IS NULL OR x.first < a.next_expiry_at
    UNION ALL
    SELECT 'account status = member status', a.member_id, format('account %s, member %s', a.status, m.status)
    FROM loyalty.accounts a JOIN loyalty.members m USING (member_id)
    WHERE a.status <> m.status
    UNION ALL
    SELECT 'at most one effect per idempotency key', l.member_id,
           format('key %s used by %s entries', l.idempotency_key, count(*))
    FROM loyalty.ledger l
    WHERE l.idempotency_key IS NOT NULL AND l.kind <> 'release'
    GROUP BY l.member_id, l.idempotency_key
    HAVING count(*) > 1
$$;
COMMENT ON FUNCTION loyalty.verify() IS
    'Check the ledger invariants; returns one row per violation and no rows when the books are sound';
