-- loyalty 1.0 -> 1.1 (ALTER EXTENSION loyalty UPDATE TO '1.1')
-- Points comparisons as C functions, the direct write path's library, and
-- multi-program isolation: program_roles, bind_role, and the program check
-- in every API function and view, plus row-level security on the tables.
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.1'" to load this file. \quit

-- comparison: C functions of this module (see points.c for why not int8's own)
CREATE OR REPLACE FUNCTION loyalty.points_eq(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_ne(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_lt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_le(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_gt(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_ge(loyalty.points, loyalty.points) RETURNS boolean
    AS 'MODULE_PATHNAME', 'points_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE OR REPLACE FUNCTION loyalty.points_cmp(loyalty.points, loyalty.points) RETURNS integer
    AS 'MODULE_PATHNAME', 'points_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
-- new in 1.1: 32_access.sql
-- ---------------------------------------------------------------------------
-- Multi-program isolation (src/access.c).  A role with a row here, or that
-- inherits from a role with one, is bound: it may call the API only for
-- members of its programs and sees only their rows in the views (and in the
-- tables, through row-level security, if it is ever given direct access).
-- A role with no binding is not restricted, nor are superusers and BYPASSRLS
-- roles, as with PostgreSQL's own row-level security.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.program_roles (
    program_id  bigint NOT NULL REFERENCES loyalty.programs,
    -- a name, not an OID, so that a dump restores into another cluster
    role_name   name NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, role_name)
);
CREATE INDEX program_roles_role_idx ON loyalty.program_roles (role_name);
COMMENT ON TABLE loyalty.program_roles IS 'Roles bound to programs: a bound role (or one inheriting from it) may use and see only these programs';
SELECT pg_catalog.pg_extension_config_dump('loyalty.program_roles', '');

CREATE FUNCTION loyalty.program_roles_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'loyalty_program_roles_changed' LANGUAGE C SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.program_roles_changed() IS
    'Trigger: makes every session re-read program_roles after a change commits';
CREATE TRIGGER program_roles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.program_roles
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.program_roles_changed();

CREATE FUNCTION loyalty.program_visible(program bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'loyalty_program_visible'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.program_visible(bigint) IS
    'Whether the session''s role (SET ROLE included) may use and see the program';
CREATE FUNCTION loyalty.member_visible(member bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'loyalty_member_visible'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.member_visible(bigint) IS
    'Whether the session''s role may use and see the member''s program (row-level security of per-member tables)';
CREATE FUNCTION loyalty.require_program(program bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'loyalty_require_program'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.require_program(bigint) IS
    'Returns the program, or fails with 42501 when the session''s role is bound to other programs';
CREATE FUNCTION loyalty.require_member(member bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'loyalty_require_member'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.require_member(bigint) IS
    'Returns the member, or fails with 42501 when its program is not one the session''s role is bound to';

-- Bind a role to a program (administrators).  SECURITY DEFINER: the
-- administrator role has no rights on the table itself.
CREATE FUNCTION loyalty.bind_role(program bigint, role_name name)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF program IS NULL OR role_name IS NULL THEN
        RAISE EXCEPTION 'program and role must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM loyalty.require_program(program);
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'P0002';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) bind_role.role_name) THEN
        RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = '42704';
    END IF;
    INSERT INTO loyalty.program_roles (program_id, role_name) VALUES (program, bind_role.role_name)
    ON CONFLICT DO NOTHING;
END $$;
COMMENT ON FUNCTION loyalty.bind_role(bigint, name) IS
    'Bind a role to a program: from the next statement it (and roles inheriting from it) may use and see only its bound programs';

CREATE FUNCTION loyalty.unbind_role(program bigint, role_name name)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(program);
    DELETE FROM loyalty.program_roles r
    WHERE r.program_id OPERATOR(pg_catalog.=) program AND r.role_name OPERATOR(pg_catalog.=) unbind_role.role_name;
    RETURN FOUND;
END $$;
COMMENT ON FUNCTION loyalty.unbind_role(bigint, name) IS
    'Remove a binding; a role left with none is no longer restricted to programs';

REVOKE ALL ON FUNCTION loyalty.program_roles_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.program_visible(bigint), loyalty.member_visible(bigint),
    loyalty.require_program(bigint), loyalty.require_member(bigint),
    loyalty.bind_role(bigint, name), loyalty.unbind_role(bigint, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.program_visible(bigint), loyalty.member_visible(bigint),
    loyalty.require_program(bigint), loyalty.require_member(bigint)
    TO loyalty_admin, loyalty_app, loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.bind_role(bigint, name), loyalty.unbind_role(bigint, name) TO loyalty_admin;
-- Internal: used by the extension's own functions (not granted to anyone).
CREATE OR REPLACE FUNCTION loyalty.emit_event(member bigint, kind text, payload jsonb DEFAULT '{}', dedup_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_program bigint;
    v_id bigint;
BEGIN
    PERFORM loyalty.require_member(emit_event.member);
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
-- members and identities ----------------------------------------------------

CREATE OR REPLACE FUNCTION loyalty.enroll(
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
CREATE OR REPLACE FUNCTION loyalty.member_id(program bigint, channel text, external_id text)
RETURNS bigint
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.member_id FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) loyalty.require_program($1)
      AND i.channel OPERATOR(pg_catalog.=) $2
      AND i.external_id OPERATOR(pg_catalog.=) $3
$$;
CREATE OR REPLACE FUNCTION loyalty.link_identity(member bigint, channel text, external_id text)
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
CREATE OR REPLACE FUNCTION loyalty.set_member_status(member bigint, status text)
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
-- merge ---------------------------------------------------------------------

CREATE OR REPLACE FUNCTION loyalty.merge_members(survivor bigint, absorbed bigint, idempotency_key text DEFAULT NULL)
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
-- expiry ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION loyalty.expire_member(member bigint, as_of timestamptz DEFAULT NULL)
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
    PERFORM loyalty.require_member(expire_member.member);
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
-- reads -----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION loyalty.balance(member bigint)
RETURNS TABLE (
    member_id bigint, available loyalty.points, pending loyalty.points, held loyalty.points,
    expired_unposted loyalty.points, debt loyalty.points, balance loyalty.points,
    lifetime_earned loyalty.points, lifetime_redeemed loyalty.points, lifetime_expired loyalty.points,
    next_expiry timestamptz, next_expiry_points loyalty.points, as_of timestamptz)
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- Expiry and hold timeouts are exact at read time: a lot past its expiry
    -- is not available even before the batch runs, and an expired hold's
    -- points are available again before anything releases it.
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = loyalty.require_member($1) AND remaining OPERATOR(loyalty.>) '0'::loyalty.points
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = h.member_id AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = $1 AND h.status = 'active' AND h.expires_at <= now()
    )
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::loyalty.points,
           coalesce(l.pending, 0)::loyalty.points,
           (a.held::bigint - coalesce(h.points, 0))::loyalty.points,
           coalesce(l.expired, 0)::loyalty.points,
           a.debt, a.balance, a.lifetime_earned, a.lifetime_redeemed, a.lifetime_expired,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = $1 AND x.expires_at = l.next_expiry
                       AND x.remaining OPERATOR(loyalty.>) '0'::loyalty.points AND x.vests_at <= now()), 0)::loyalty.points,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = $1
$$;
CREATE OR REPLACE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS loyalty.points
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(l.points::bigint), 0)::loyalty.points
    FROM loyalty.ledger l
    WHERE l.member_id = loyalty.require_member($1) AND l.created_at <= $2
$$;
CREATE OR REPLACE FUNCTION loyalty.history(member bigint, since timestamptz DEFAULT '-infinity', max_rows integer DEFAULT 1000)
RETURNS SETOF loyalty.ledger
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.ledger l
    WHERE l.member_id = loyalty.require_member($1) AND l.created_at >= coalesce($2, '-infinity')
    ORDER BY l.created_at DESC, l.entry_id DESC
    LIMIT coalesce($3, 1000)
$$;
CREATE OR REPLACE FUNCTION loyalty.create_earning_rule(
    program bigint, name text, effect text,
    multiplier numeric DEFAULT NULL, bonus_points loyalty.points DEFAULT NULL,
    stacking text DEFAULT NULL, priority integer DEFAULT 100, stop boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    weekdays integer[] DEFAULT NULL, hour_from integer DEFAULT NULL, hour_to integer DEFAULT NULL,
    channels text[] DEFAULT NULL, stores text[] DEFAULT NULL,
    categories text[] DEFAULT NULL, products text[] DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, segments text[] DEFAULT NULL,
    birthday text DEFAULT NULL, first_purchase boolean DEFAULT false, min_amount numeric DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM loyalty.require_program(create_earning_rule.program);
    IF program IS NULL OR name IS NULL OR effect IS NULL THEN
        RAISE EXCEPTION 'program, name and effect must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF effect NOT IN ('multiply', 'bonus') THEN
        RAISE EXCEPTION 'unknown rule effect "%"', effect USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use multiply (with multiplier) or bonus (with bonus_points).';
    END IF;
    IF effect = 'multiply' AND (multiplier IS NULL OR bonus_points IS NOT NULL) THEN
        RAISE EXCEPTION 'a multiply rule needs a multiplier and no bonus_points' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND (bonus_points IS NULL OR multiplier IS NOT NULL OR bonus_points::bigint <= 0) THEN
        RAISE EXCEPTION 'a bonus rule needs positive bonus_points and no multiplier' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF multiplier IS NOT NULL AND (multiplier = 'NaN' OR multiplier < 0 OR multiplier >= 1000) THEN
        RAISE EXCEPTION 'multiplier must be between 0 and 1000, got %', multiplier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND coalesce(stacking, 'add') = 'multiply' THEN
        RAISE EXCEPTION 'a bonus stacks by add or best_of, not multiply' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    BEGIN
        INSERT INTO loyalty.earning_rules (program_id, name, effect, multiplier, bonus_points, stacking, priority,
            stop, valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores, categories, products,
            min_tier, segments, birthday, first_purchase, min_amount)
        VALUES (program, name, effect, multiplier, bonus_points,
            coalesce(stacking, CASE effect WHEN 'bonus' THEN 'add' ELSE 'multiply' END), coalesce(priority, 100),
            coalesce(stop, false), valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores,
            categories, products, min_tier, segments, birthday, coalesce(first_purchase, false), min_amount)
        RETURNING rule_id INTO v_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a rule named "%"', program, name
                USING ERRCODE = 'unique_violation';
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid earning rule "%": %', name, SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Check stacking, weekdays (1..7), hours (0..24, from < to), the validity window, birthday (day or month).';
    END;
    RETURN v_id;
END $$;
CREATE OR REPLACE FUNCTION loyalty.set_activity_rule(program bigint, activity text, points loyalty.points,
    cap_per_day integer DEFAULT NULL, cap_per_week integer DEFAULT NULL, cap_per_month integer DEFAULT NULL,
    cap_lifetime integer DEFAULT NULL, budget loyalty.points DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM loyalty.require_program(set_activity_rule.program);
    IF program IS NULL OR activity IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'program, activity and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.activity_rules AS r (program_id, activity, points, cap_per_day, cap_per_week,
                                                 cap_per_month, cap_lifetime, budget)
        VALUES (set_activity_rule.program, set_activity_rule.activity, set_activity_rule.points,
                set_activity_rule.cap_per_day, set_activity_rule.cap_per_week, set_activity_rule.cap_per_month,
                set_activity_rule.cap_lifetime, set_activity_rule.budget)
        ON CONFLICT (program_id, activity) DO UPDATE SET points = EXCLUDED.points,
            cap_per_day = EXCLUDED.cap_per_day, cap_per_week = EXCLUDED.cap_per_week,
            cap_per_month = EXCLUDED.cap_per_month, cap_lifetime = EXCLUDED.cap_lifetime,
            budget = EXCLUDED.budget, active = true;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid activity rule for "%": %', activity, SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Activities: signup, profile_completed, review, survey, social_share, app_download, custom:<name>; points, caps and budget positive.';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
CREATE OR REPLACE FUNCTION loyalty.record_activity(member bigint, activity text, reference text DEFAULT NULL,
                                        idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_rule loyalty.activity_rules;
    v_now timestamptz := now();
    v_local timestamp;
    v_tz text;
    v_entry bigint;
    v_outcome text := 'awarded';
    v_key text;
BEGIN
    PERFORM loyalty.require_member(record_activity.member);
    IF member IS NULL OR activity IS NULL THEN
        RAISE EXCEPTION 'member and activity must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the member's lock: caps are counted and written under it
    SELECT a.program_id INTO v_program FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        v_key := 'activity:' || idempotency_key;
        SELECT act.points INTO v_rule.points FROM loyalty.activities act
        JOIN loyalty.ledger l ON l.member_id OPERATOR(pg_catalog.=) act.member_id
                             AND l.entry_id OPERATOR(pg_catalog.=) act.entry_id
        WHERE act.member_id OPERATOR(pg_catalog.=) member AND l.idempotency_key OPERATOR(pg_catalog.=) v_key;
        IF FOUND THEN
            RETURN v_rule.points;   -- a replay: the first award stands
        END IF;
    END IF;
    SELECT * INTO v_rule FROM loyalty.activity_rules r
    WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity AND r.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % awards nothing for activity "%"', v_program, activity
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Define it with loyalty.set_activity_rule().';
    END IF;
    SELECT p.time_zone INTO v_tz FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) v_program;
    v_local := v_now AT TIME ZONE v_tz;
    -- caps count awarded activities in calendar periods of the program's time zone
    IF (v_rule.cap_lifetime IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded') >= v_rule.cap_lifetime)
       OR (v_rule.cap_per_month IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('month', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_month)
       OR (v_rule.cap_per_week IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('week', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_week)
       OR (v_rule.cap_per_day IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('day', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_day) THEN
        v_outcome := 'capped';
    ELSIF v_rule.budget IS NOT NULL THEN
        -- the program budget is one row: take from it atomically
        UPDATE loyalty.activity_rules r
        SET budget_used = (r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint)::loyalty.points
        WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity
          AND r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint OPERATOR(pg_catalog.<=) r.budget::bigint;
        IF NOT FOUND THEN
            v_outcome := 'budget_exhausted';
        END IF;
    END IF;
    IF v_outcome = 'awarded' THEN
        v_entry := loyalty.award(member, v_rule.points, 'activity: ' || activity, NULL, reference, v_key);
    END IF;
    INSERT INTO loyalty.activities (member_id, program_id, activity, points, entry_id, outcome, reference, occurred_at)
    VALUES (member, v_program, activity, CASE WHEN v_outcome = 'awarded' THEN v_rule.points ELSE '0' END,
            v_entry, v_outcome, reference, v_now);
    RETURN CASE WHEN v_outcome = 'awarded' THEN v_rule.points ELSE '0'::loyalty.points END;
END $$;
-- "Why did I get 37 points?": every earn with rules or lines keeps its
-- explanation in the ledger row's details.
CREATE OR REPLACE FUNCTION loyalty.earn_explanation(member bigint, entry bigint)
RETURNS jsonb
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(l.details, jsonb_build_object('earn_base', l.amount, 'points', l.points::bigint, 'rules', '[]'::jsonb))
    FROM loyalty.ledger l
    WHERE l.member_id = loyalty.require_member($1) AND l.entry_id = $2 AND l.kind = 'earn'
$$;
CREATE OR REPLACE FUNCTION loyalty.set_tier_policy(program bigint, metric text, tier_window text DEFAULT 'rolling',
    window_months integer DEFAULT 12, downgrade text DEFAULT 'one_step', grace interval DEFAULT interval '0',
    refund_demotes boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(set_tier_policy.program);
    IF program IS NULL OR metric IS NULL THEN
        RAISE EXCEPTION 'program and metric must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF tier_window = 'calendar' AND 12 % window_months <> 0 THEN
        RAISE EXCEPTION 'a calendar window must divide the year (1, 2, 3, 4, 6 or 12 months), got %', window_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        UPDATE loyalty.programs p SET tier_metric = metric, tier_window = coalesce(set_tier_policy.tier_window, 'rolling'),
            tier_window_months = coalesce(window_months, 12), tier_downgrade = coalesce(downgrade, 'one_step'),
            tier_grace = coalesce(grace, interval '0'), tier_refund_demotes = coalesce(refund_demotes, false)
        WHERE p.program_id OPERATOR(pg_catalog.=) program;
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'invalid tier policy: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
            HINT = 'metric: spend, points or visits; window: rolling, calendar or anniversary (1..120 months); downgrade: one_step or to_qualified; grace >= 0.';
    END;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
END $$;
CREATE OR REPLACE FUNCTION loyalty.define_tier(program bigint, rank integer, name text, threshold numeric,
    earn_multiplier numeric DEFAULT 1, invitation_only boolean DEFAULT false, benefits jsonb DEFAULT '{}')
RETURNS loyalty.tier
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tier loyalty.tier;
BEGIN
    PERFORM loyalty.require_program(define_tier.program);
    IF program IS NULL OR rank IS NULL OR name IS NULL OR threshold IS NULL THEN
        RAISE EXCEPTION 'program, rank, name and threshold must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_tier := loyalty.tier(rank, name);       -- the tier type's own checks on rank and name
    BEGIN
        INSERT INTO loyalty.tiers (program_id, rank, name, threshold, earn_multiplier, invitation_only, benefits)
        VALUES (define_tier.program, define_tier.rank, define_tier.name, define_tier.threshold,
                coalesce(define_tier.earn_multiplier, 1), coalesce(define_tier.invitation_only, false),
                coalesce(define_tier.benefits, '{}'))
        ON CONFLICT (program_id, rank) DO UPDATE SET name = EXCLUDED.name, threshold = EXCLUDED.threshold,
            earn_multiplier = EXCLUDED.earn_multiplier, invitation_only = EXCLUDED.invitation_only,
            benefits = EXCLUDED.benefits;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid tier %: %', v_tier, SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a tier named "%"', program, name USING ERRCODE = 'unique_violation';
    END;
    RETURN v_tier;
END $$;
-- Start of the qualification window ending at as_of.
CREATE OR REPLACE FUNCTION loyalty.tier_window_start(member bigint, as_of timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p.tier_window
        WHEN 'rolling' THEN $2 - make_interval(months => p.tier_window_months)
        WHEN 'calendar' THEN
            ((date_trunc('year', $2 AT TIME ZONE p.time_zone)
              + make_interval(months => ((extract(month FROM $2 AT TIME ZONE p.time_zone)::integer - 1)
                                          / p.tier_window_months) * p.tier_window_months))
             AT TIME ZONE p.time_zone)
        ELSE (SELECT m.joined_at + make_interval(months => p.tier_window_months
                    * floor((extract(year FROM age($2, m.joined_at)) * 12 + extract(month FROM age($2, m.joined_at)))
                            / p.tier_window_months)::integer))
    END
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = loyalty.require_member($1)
$$;
CREATE OR REPLACE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH w AS (
        SELECT p.tier_metric AS metric, p.tier_window AS kind,
               loyalty.tier_window_start(loyalty.require_member($1), coalesce($2, now())) AS start, coalesce($2, now()) AS stop
        FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
        WHERE m.member_id = $1
    ), e AS (
        SELECT l.occurred_at, coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM w, loyalty.ledger l
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
        WHERE l.member_id = $1 AND l.kind = 'earn' AND l.occurred_at <= w.stop
          AND (l.occurred_at > w.start OR (w.kind <> 'rolling' AND l.occurred_at = w.start))
    )
    SELECT CASE w.metric
        WHEN 'spend' THEN coalesce((SELECT sum(spend) FROM e), 0)
        WHEN 'points' THEN coalesce((SELECT sum(points) FROM e), 0)
        WHEN 'visits' THEN (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM e WHERE spend > 0)
    END
    FROM w
$$;
CREATE OR REPLACE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.tier
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.tier(t.rank, t.name)
    FROM loyalty.members m JOIN loyalty.tiers t ON t.program_id = m.program_id
    WHERE m.member_id = loyalty.require_member($1) AND NOT t.invitation_only AND t.threshold <= loyalty.tier_metric($1, $2)
    ORDER BY t.rank DESC LIMIT 1
$$;
-- Internal: record a change on the locked account.
CREATE OR REPLACE FUNCTION loyalty.tier_change(member bigint, new_tier loyalty.tier, reason text,
                                    locked_until timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old loyalty.tier;
BEGIN
    PERFORM loyalty.require_member(tier_change.member);
    SELECT a.tier INTO v_old FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    -- (IS DISTINCT FROM cannot name the operator's schema)
    IF (v_old IS NULL AND new_tier IS NULL) OR v_old OPERATOR(loyalty.=) new_tier THEN
        UPDATE loyalty.accounts a SET tier_locked_until = locked_until, tier_grace_until = NULL
        WHERE a.member_id OPERATOR(pg_catalog.=) member AND locked_until IS NOT NULL;
        RETURN false;
    END IF;
    UPDATE loyalty.accounts a SET tier = new_tier, tier_since = now(), tier_locked_until = locked_until,
        tier_grace_until = NULL, updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason) VALUES (member, v_old, new_tier, reason);
    PERFORM loyalty.emit_event(member, 'tier.changed',
        jsonb_build_object('from', v_old::text, 'to', new_tier::text, 'reason', reason));
    RETURN true;
END $$;
-- Internal: called by the C write path after an earn (upgrade) or a refund
-- (demotion only when the program allows it), with the account locked.
CREATE OR REPLACE FUNCTION loyalty.tier_after_write(member bigint, cause text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acc loyalty.accounts;
    v_q loyalty.tier;
    v_demote boolean;
BEGIN
    PERFORM loyalty.require_member(tier_after_write.member);
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT p.tier_refund_demotes INTO v_demote FROM loyalty.programs p
    WHERE p.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND p.tier_metric IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    v_q := loyalty.qualified_tier(member);
    IF v_q IS NOT NULL AND (v_acc.tier IS NULL OR v_q OPERATOR(loyalty.>) v_acc.tier) THEN
        -- an upgrade never waits, and ends a manual or invitation lock below it
        RETURN loyalty.tier_change(member, v_q, 'qualified (' || cause || ')');
    END IF;
    IF cause = 'refund' AND v_demote AND v_acc.tier IS NOT NULL
       AND (v_q IS NULL OR v_q OPERATOR(loyalty.<) v_acc.tier)
       AND (v_acc.tier_locked_until IS NULL OR v_acc.tier_locked_until <= now()) THEN
        RETURN loyalty.tier_change(member, v_q, 'refund lowered the qualifying metric');
    END IF;
    RETURN false;
END $$;
CREATE OR REPLACE FUNCTION loyalty.evaluate_tier(member bigint)
RETURNS TABLE (tier loyalty.tier, qualified_tier loyalty.tier, metric text, value numeric,
               next_tier loyalty.tier, distance numeric, changed boolean)
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_changed boolean;
    v_metric text;
    v_value numeric;
    v_cur loyalty.tier;
    v_next record;
BEGIN
    PERFORM loyalty.require_member(evaluate_tier.member);
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT p.tier_metric INTO v_metric FROM loyalty.members m JOIN loyalty.programs p USING (program_id)
    WHERE m.member_id OPERATOR(pg_catalog.=) member;
    IF v_metric IS NULL THEN
        RAISE EXCEPTION 'the program of member % has no tiers', member USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;
    v_changed := loyalty.tier_after_write(member, 'evaluation');
    v_value := loyalty.tier_metric(member);
    SELECT a.tier INTO v_cur FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT t.rank, t.name, t.threshold INTO v_next FROM loyalty.tiers t
    JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
    WHERE m.member_id OPERATOR(pg_catalog.=) member AND NOT t.invitation_only
      AND t.rank OPERATOR(pg_catalog.>) coalesce(loyalty.tier_rank(v_cur), -1)
    ORDER BY t.rank LIMIT 1;
    RETURN QUERY SELECT v_cur, loyalty.qualified_tier(member), v_metric, v_value,
        CASE WHEN v_next.rank IS NOT NULL THEN loyalty.tier(v_next.rank, v_next.name) END,
        CASE WHEN v_next.rank IS NOT NULL THEN greatest(v_next.threshold OPERATOR(pg_catalog.-) v_value, 0) END,
        v_changed;
END $$;
CREATE OR REPLACE FUNCTION loyalty.assign_tier(member bigint, tier loyalty.tier, until timestamptz DEFAULT 'infinity', reason text DEFAULT 'assigned')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_member(assign_tier.member);
    IF member IS NULL OR tier IS NULL THEN
        RAISE EXCEPTION 'member and tier must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.tiers t JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
                   WHERE m.member_id OPERATOR(pg_catalog.=) member
                     AND t.rank OPERATOR(pg_catalog.=) loyalty.tier_rank(assign_tier.tier)
                     AND t.name OPERATOR(pg_catalog.=) loyalty.tier_name(assign_tier.tier)) THEN
        RAISE EXCEPTION 'tier % is not on the ladder of member %''s program', tier, member
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF until IS NULL OR until <= now() THEN
        RAISE EXCEPTION 'until must lie in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty.tier_change(member, tier, coalesce(reason, 'assigned'), until);
END $$;
CREATE OR REPLACE FUNCTION loyalty.tier_at(member bigint, at timestamptz)
RETURNS loyalty.tier
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.to_tier FROM loyalty.tier_history h
    WHERE h.member_id = loyalty.require_member($1) AND h.changed_at <= $2
    ORDER BY h.changed_at DESC, h.change_id DESC LIMIT 1
$$;
-- The review, set-based: up to batch_size members of a program after a
-- member id, locked together (in member_id order), their metric computed in
-- one query; only members whose tier changes go through tier_change (history
-- and event).  Returns the last member id reviewed, how many were reviewed
-- and how many changed tier.
CREATE OR REPLACE FUNCTION loyalty.review_tiers_batch(program bigint, as_of timestamptz, after_member bigint, batch_size integer)
RETURNS TABLE (last_member bigint, reviewed bigint, changed bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p loyalty.programs;
    v_as_of timestamptz := coalesce(as_of, now());
    v_last bigint;
    v_n bigint;
    v_c bigint := 0;
    v_ids bigint[];
    r2 bigint;
    r bigint;
BEGIN
    PERFORM loyalty.require_program(review_tiers_batch.program);
    SELECT * INTO v_p FROM loyalty.programs p WHERE p.program_id = program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    IF v_p.tier_metric IS NULL THEN
        RAISE EXCEPTION 'program % has no tiers', program USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;

    -- Lock the batch first, in its own statement: the next statement then
    -- reads with a snapshot taken after the locks were granted, so it sees
    -- what a concurrent earn committed while the review waited for it.  (No
    -- temporary table: a caller's own pg_temp table of the same name would
    -- be used by this SECURITY DEFINER function.)
    SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}') INTO v_ids
    FROM (SELECT a.member_id FROM loyalty.accounts a
          WHERE a.program_id = program AND a.member_id > after_member
          ORDER BY a.member_id LIMIT batch_size
          FOR NO KEY UPDATE OF a) x;
    v_n := cardinality(v_ids);
    v_last := v_ids[v_n];

    -- one statement: metrics, decisions, grace updates, tier changes,
    -- history and tier.changed events of the whole batch
    WITH batch AS (
        SELECT a.member_id, a.tier, a.status, a.tier_locked_until, a.tier_grace_until
        FROM loyalty.accounts a WHERE a.member_id = ANY (v_ids)
    ), win AS (
        SELECT b.*, CASE v_p.tier_window
            WHEN 'rolling' THEN v_as_of - make_interval(months => v_p.tier_window_months)
            WHEN 'calendar' THEN
                ((date_trunc('year', v_as_of AT TIME ZONE v_p.time_zone)
                  + make_interval(months => ((extract(month FROM v_as_of AT TIME ZONE v_p.time_zone)::integer - 1)
                                              / v_p.tier_window_months) * v_p.tier_window_months))
                 AT TIME ZONE v_p.time_zone)
            ELSE m.joined_at + make_interval(months => v_p.tier_window_months
                    * floor((extract(year FROM age(v_as_of, m.joined_at)) * 12 + extract(month FROM age(v_as_of, m.joined_at)))
                            / v_p.tier_window_months)::integer)
            END AS start
        FROM batch b JOIN loyalty.members m ON m.member_id = b.member_id
    ), e AS (
        SELECT w.member_id, l.occurred_at,
               coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM win w
        JOIN loyalty.ledger l ON l.member_id = w.member_id AND l.kind = 'earn' AND l.occurred_at <= v_as_of
             AND (l.occurred_at > w.start OR (v_p.tier_window <> 'rolling' AND l.occurred_at = w.start))
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
    ), met AS (
        SELECT w.member_id, CASE v_p.tier_metric
            WHEN 'spend' THEN coalesce(sum(e.spend), 0)
            WHEN 'points' THEN coalesce(sum(e.points), 0)
            ELSE count(DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date) FILTER (WHERE e.spend > 0)
            END AS value
        FROM win w LEFT JOIN e ON e.member_id = w.member_id
        GROUP BY w.member_id
    ), d AS (
        SELECT b.member_id, b.status, b.tier_locked_until, b.tier_grace_until,
               loyalty.tier_rank(b.tier) AS cur,
               (SELECT max(t.rank) FROM loyalty.tiers t
                WHERE t.program_id = program AND NOT t.invitation_only AND t.threshold <= met.value) AS q
        FROM batch b JOIN met ON met.member_id = b.member_id
    )
    , res AS (
    SELECT d.member_id, d.cur, d.q, x.new_rank, x.grace_until, x.action
    FROM d, LATERAL (
        SELECT * FROM (VALUES
            -- closed members are left alone
            (d.status = 'closed', NULL::integer, NULL::timestamptz, 'none'),
            -- qualified for more: up at once; for the same: end any grace
            (d.q IS NOT NULL AND (d.cur IS NULL OR d.q > d.cur), d.q, NULL, 'change'),
            (d.cur IS NULL OR (d.q IS NOT NULL AND d.q >= d.cur),
                NULL, NULL, CASE WHEN d.tier_grace_until IS NOT NULL THEN 'clear_grace' ELSE 'none' END),
            -- below: a manual or invitation lock holds
            (d.tier_locked_until > v_as_of, NULL, NULL, 'none'),
            -- grace starts, or runs
            (d.tier_grace_until IS NULL AND v_p.tier_grace > interval '0', NULL, v_as_of + v_p.tier_grace, 'start_grace'),
            (d.tier_grace_until > v_as_of, NULL, NULL, 'none'),
            -- down: to the qualified tier, or one step (never below the qualified tier)
            (true,
                CASE WHEN v_p.tier_downgrade = 'to_qualified' THEN d.q
                     ELSE greatest(d.q, (SELECT max(t.rank) FROM loyalty.tiers t
                                         WHERE t.program_id = program AND NOT t.invitation_only AND t.rank < d.cur)) END,
                NULL, 'change')
        ) AS v(cond, new_rank, grace_until, action)
        WHERE v.cond LIMIT 1
    ) x
    )
    , gr AS (
        UPDATE loyalty.accounts a SET tier_grace_until = res.grace_until
        FROM res WHERE a.member_id = res.member_id AND res.action IN ('start_grace', 'clear_grace')
        RETURNING a.member_id
    ), ch AS (
        SELECT res.member_id, b.tier AS from_tier,
               (SELECT loyalty.tier(x.rank, x.name) FROM loyalty.tiers x
                WHERE x.program_id = program AND x.rank = res.new_rank) AS to_tier,
               CASE WHEN res.new_rank > coalesce(res.cur, -1) THEN 'qualified (review)'
                    ELSE 'review: below the threshold' END AS reason
        FROM res JOIN batch b ON b.member_id = res.member_id
        WHERE res.action = 'change' AND res.new_rank IS DISTINCT FROM res.cur
    ), up AS (
        UPDATE loyalty.accounts a SET tier = ch.to_tier, tier_since = now(), tier_locked_until = NULL,
            tier_grace_until = NULL, updated_at = now()
        FROM ch WHERE a.member_id = ch.member_id
        RETURNING a.member_id
    ), hist AS (
        INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason)
        SELECT ch.member_id, ch.from_tier, ch.to_tier, ch.reason FROM ch
    ), ev AS (
        INSERT INTO loyalty.events (member_id, program_id, kind, payload)
        SELECT ch.member_id, program, 'tier.changed',
               jsonb_build_object('from', ch.from_tier::text, 'to', ch.to_tier::text, 'reason', ch.reason)
        FROM ch WHERE 'tier.changed' = ANY (v_p.event_kinds)
        RETURNING event_id, member_id
    )
    SELECT (SELECT count(*) FROM up),
           (SELECT count(pg_notify('loyalty_events',
                jsonb_build_object('event_id', ev.event_id, 'member_id', ev.member_id, 'kind', 'tier.changed')::text))
            FROM ev),
           (SELECT count(*) FROM gr)
    INTO v_c, r, r2;
    RETURN QUERY SELECT v_last, v_n, v_c;
END $$;
-- Review one member (locking it): the batch review of just that member.
CREATE OR REPLACE FUNCTION loyalty.review_member_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_metric text;
    v_changed bigint;
BEGIN
    PERFORM loyalty.require_member(review_member_tier.member);
    SELECT a.program_id, p.tier_metric INTO v_program, v_metric
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) a.program_id
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_metric IS NULL THEN
        RETURN false;
    END IF;
    SELECT b.changed INTO v_changed
    FROM loyalty.review_tiers_batch(v_program, as_of, member OPERATOR(pg_catalog.-) 1, 1) b;
    RETURN v_changed OPERATOR(pg_catalog.>) 0;
END $$;
-- No SET search_path: the procedure commits (see loyalty.expire_points).
CREATE OR REPLACE PROCEDURE loyalty.review_tiers(program bigint, as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_as_of timestamptz := COALESCE(as_of, pg_catalog.now());
    v_after bigint := -1;
    v_step record;
    v_n bigint := 0;
    v_c bigint := 0;
BEGIN
    PERFORM loyalty.require_program(review_tiers.program);
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        SELECT * INTO v_step FROM loyalty.review_tiers_batch(program, v_as_of, v_after, batch_size);
        EXIT WHEN v_step.reviewed OPERATOR(pg_catalog.=) 0;
        v_after := v_step.last_member;
        v_n := v_n OPERATOR(pg_catalog.+) v_step.reviewed;
        v_c := v_c OPERATOR(pg_catalog.+) v_step.changed;
        COMMIT;
        RAISE NOTICE 'loyalty.review_tiers: % members reviewed, % tiers changed so far', v_n, v_c;
    END LOOP;
    RAISE NOTICE 'loyalty.review_tiers: done: % members reviewed, % tiers changed', v_n, v_c;
END $$;
CREATE OR REPLACE FUNCTION loyalty.create_reward(program bigint, code text, name text, point_cost loyalty.points,
    stock bigint DEFAULT NULL, valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, per_member_limit integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_id bigint;
BEGIN
    PERFORM loyalty.require_program(create_reward.program);
    IF program IS NULL OR code IS NULL OR name IS NULL OR point_cost IS NULL THEN
        RAISE EXCEPTION 'program, code, name and point_cost must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.rewards (program_id, code, name, point_cost, stock, valid_from, valid_until,
                                     min_tier, per_member_limit)
        VALUES (create_reward.program, create_reward.code, create_reward.name, create_reward.point_cost,
                create_reward.stock, create_reward.valid_from, create_reward.valid_until,
                create_reward.min_tier, create_reward.per_member_limit)
        RETURNING reward_id INTO v_id;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid reward "%": %', code, SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'code: letters, digits, _ . -; point_cost > 0; stock >= 0; valid_until after valid_from; per_member_limit > 0.';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a reward with code "%"', program, code USING ERRCODE = 'unique_violation';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
    RETURN v_id;
END $$;
CREATE OR REPLACE FUNCTION loyalty.redeem_reward(member bigint, reward bigint, idempotency_key text DEFAULT NULL,
                                      channel text DEFAULT NULL)
RETURNS TABLE (redemption_id bigint, voucher text, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_acc loyalty.accounts;
    v_r loyalty.rewards;
    v_prev loyalty.redemptions;
    v_used bigint;
    v_entry bigint;
    v_id bigint;
    v_voucher text;
BEGIN
    PERFORM loyalty.require_member(redeem_reward.member);
    IF member IS NULL OR reward IS NULL THEN
        RAISE EXCEPTION 'member and reward must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id = redeem_reward.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO v_prev FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.idempotency_key = redeem_reward.idempotency_key;
        IF FOUND THEN
            IF v_prev.reward_id <> reward THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN QUERY SELECT v_prev.redemption_id, v_prev.voucher, v_prev.points;
            RETURN;
        END IF;
    END IF;
    SELECT * INTO v_r FROM loyalty.rewards r WHERE r.reward_id = reward AND r.program_id = v_acc.program_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reward % does not exist in the program of member %', reward, member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT v_r.active OR (v_r.valid_from IS NOT NULL AND now() < v_r.valid_from)
       OR (v_r.valid_until IS NOT NULL AND now() >= v_r.valid_until) THEN
        RAISE EXCEPTION 'reward "%" is not available now', v_r.code USING ERRCODE = 'LY011',
            DETAIL = format('active: %s, valid from %s until %s', v_r.active, coalesce(v_r.valid_from::text, '-'),
                            coalesce(v_r.valid_until::text, '-'));
    END IF;
    IF v_r.min_tier IS NOT NULL
       AND (v_acc.tier IS NULL OR loyalty.tier_rank(v_acc.tier) < loyalty.tier_rank(v_r.min_tier)) THEN
        RAISE EXCEPTION 'reward "%" needs tier % or above', v_r.code, v_r.min_tier USING ERRCODE = 'LY012',
            DETAIL = format('The member''s tier is %s.', coalesce(v_acc.tier::text, 'none'));
    END IF;
    IF v_r.per_member_limit IS NOT NULL THEN
        SELECT count(*) INTO v_used FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.reward_id = reward AND x.status = 'issued';
        IF v_used >= v_r.per_member_limit THEN
            RAISE EXCEPTION 'member % already redeemed reward "%" % times (the limit)', member, v_r.code, v_used
                USING ERRCODE = 'LY013';
        END IF;
    END IF;
    IF v_r.stock IS NOT NULL THEN
        -- waits for a concurrent buyer of the same reward, then re-checks the stock
        UPDATE loyalty.rewards r SET stock = r.stock - 1 WHERE r.reward_id = reward AND r.stock > 0;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'reward "%" is out of stock', v_r.code USING ERRCODE = 'LY010';
        END IF;
    END IF;
    v_entry := loyalty.redeem(member, v_r.point_cost, channel, 'reward:' || v_r.code,
                              CASE WHEN idempotency_key IS NOT NULL THEN 'reward:' || idempotency_key END);
    -- 64 bits from the strong random source; the unique index is the last word
    LOOP
        v_voucher := upper(substr(md5(gen_random_uuid()::text), 1, 16));
        EXIT WHEN NOT EXISTS (SELECT FROM loyalty.redemptions x WHERE x.voucher = v_voucher);
    END LOOP;
    INSERT INTO loyalty.redemptions (member_id, reward_id, points, entry_id, voucher, idempotency_key, channel)
    VALUES (member, reward, v_r.point_cost, v_entry, v_voucher, idempotency_key, channel)
    RETURNING redemptions.redemption_id INTO v_id;
    PERFORM loyalty.emit_event(member, 'reward.redeemed',
        jsonb_build_object('reward_id', reward, 'reward_code', v_r.code, 'redemption_id', v_id,
                           'voucher', v_voucher, 'points', v_r.point_cost::bigint));
    RETURN QUERY SELECT v_id, v_voucher, v_r.point_cost;
END $$;
CREATE OR REPLACE FUNCTION loyalty.cancel_redemption(member bigint, redemption bigint, reason text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_x loyalty.redemptions;
    v_back loyalty.points;
    v_cancel bigint;
BEGIN
    PERFORM loyalty.require_member(cancel_redemption.member);
    IF member IS NULL OR redemption IS NULL THEN
        RAISE EXCEPTION 'member and redemption must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    SELECT * INTO v_x FROM loyalty.redemptions x WHERE x.member_id = member AND x.redemption_id = redemption;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'redemption % of member % does not exist', redemption, member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_x.status = 'cancelled' THEN
        RAISE EXCEPTION 'redemption % is already cancelled', redemption USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- the points go back to the lots they came from
    v_back := loyalty.reverse(member, v_x.entry_id, NULL, NULL, 'redemption:' || redemption,
                              coalesce(reason, 'redemption cancelled'));
    -- the reverse entry just written (a redemption is cancelled once, under the lock)
    SELECT l.entry_id INTO v_cancel FROM loyalty.ledger l
    WHERE l.member_id = member AND l.reference = 'redemption:' || redemption
      AND l.kind = 'reverse' AND l.source_entry = v_x.entry_id;
    UPDATE loyalty.rewards r SET stock = r.stock + 1 WHERE r.reward_id = v_x.reward_id AND r.stock IS NOT NULL;
    UPDATE loyalty.redemptions x SET status = 'cancelled', cancelled_at = now(), cancel_entry = v_cancel
    WHERE x.member_id = member AND x.redemption_id = redemption;
    RETURN v_back;
END $$;
CREATE OR REPLACE FUNCTION loyalty.set_redemption_rules(program bigint, min_points loyalty.points DEFAULT '1',
    max_points loyalty.points DEFAULT NULL, max_share_of_order numeric DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM loyalty.require_program(set_redemption_rules.program);
    BEGIN
        INSERT INTO loyalty.redemption_rules (program_id, min_points, max_points, max_share_of_order)
        VALUES (set_redemption_rules.program, coalesce(set_redemption_rules.min_points, '1'),
                set_redemption_rules.max_points, set_redemption_rules.max_share_of_order)
        ON CONFLICT (program_id) DO UPDATE SET min_points = EXCLUDED.min_points, max_points = EXCLUDED.max_points,
            max_share_of_order = EXCLUDED.max_share_of_order;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid redemption rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'min_points > 0, max_points >= min_points, 0 < max_share_of_order <= 1.';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
CREATE OR REPLACE FUNCTION loyalty.redeem_for_discount(member bigint, order_amount numeric, points loyalty.points,
                                            reference text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_value numeric;
    v_rules loyalty.redemption_rules;
    v_discount numeric;
BEGIN
    PERFORM loyalty.require_member(redeem_for_discount.member);
    IF member IS NULL OR order_amount IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'member, order_amount and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF order_amount = 'NaN' OR order_amount <= 0 OR order_amount = 'Infinity' THEN
        RAISE EXCEPTION 'order_amount must be a positive, finite amount' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id, p.point_value INTO v_program, v_value
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id = a.program_id
    WHERE a.member_id = member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO v_rules FROM loyalty.redemption_rules r WHERE r.program_id = v_program;
    v_rules.min_points := coalesce(v_rules.min_points, '1');
    IF points::bigint < v_rules.min_points::bigint THEN
        RAISE EXCEPTION 'at least % points must be redeemed on an order, got %', v_rules.min_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_rules.max_points IS NOT NULL AND points::bigint > v_rules.max_points::bigint THEN
        RAISE EXCEPTION 'at most % points can be redeemed on an order, got %', v_rules.max_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_discount := points::bigint * v_value;
    IF v_discount > order_amount THEN
        RAISE EXCEPTION 'a discount of % exceeds the order amount %', v_discount, order_amount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    IF v_rules.max_share_of_order IS NOT NULL AND v_discount > order_amount * v_rules.max_share_of_order THEN
        RAISE EXCEPTION 'points may pay at most % of an order (% of %), got a discount of %',
            v_rules.max_share_of_order, order_amount * v_rules.max_share_of_order, order_amount, v_discount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    PERFORM loyalty.redeem(member, points, NULL, reference, idempotency_key);
    RETURN v_discount;
END $$;
CREATE OR REPLACE FUNCTION loyalty.set_referral_rules(program bigint, referrer_points loyalty.points, referee_points loyalty.points,
    min_purchase_amount numeric DEFAULT 0, max_referrals_per_referrer integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM loyalty.require_program(set_referral_rules.program);
    IF program IS NULL OR referrer_points IS NULL OR referee_points IS NULL THEN
        RAISE EXCEPTION 'program and both bonuses must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.referral_rules (program_id, referrer_points, referee_points, min_purchase_amount,
                                            max_referrals_per_referrer)
        VALUES (set_referral_rules.program, set_referral_rules.referrer_points, set_referral_rules.referee_points,
                coalesce(set_referral_rules.min_purchase_amount, 0), set_referral_rules.max_referrals_per_referrer)
        ON CONFLICT (program_id) DO UPDATE SET referrer_points = EXCLUDED.referrer_points,
            referee_points = EXCLUDED.referee_points, min_purchase_amount = EXCLUDED.min_purchase_amount,
            max_referrals_per_referrer = EXCLUDED.max_referrals_per_referrer;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid referral rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
CREATE OR REPLACE FUNCTION loyalty.referral_code(member bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_code text;
    -- no 0/O, 1/I/L: codes are read aloud and typed by hand
    c_alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
BEGIN
    PERFORM loyalty.require_member(referral_code.member);
    SELECT a.program_id INTO v_program FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.code INTO v_code FROM loyalty.referral_codes c WHERE c.member_id = member ORDER BY c.created_at LIMIT 1;
    IF FOUND THEN
        RETURN v_code;
    END IF;
    LOOP
        SELECT string_agg(substr(c_alphabet, 1 + floor(random() * length(c_alphabet))::integer, 1), '')
        INTO v_code FROM generate_series(1, 8);
        BEGIN
            INSERT INTO loyalty.referral_codes (member_id, code, program_id) VALUES (member, v_code, v_program);
            RETURN v_code;
        EXCEPTION WHEN unique_violation THEN
            NULL;           -- another member's code: draw again
        END;
    END LOOP;
END $$;
-- Internal: why new_member may not be referred by referrer, or NULL.  Each
-- reason, once true, stays true (referrals are never deleted, purchases never
-- uncounted), so refer checks them before it locks anything as well as after.
CREATE OR REPLACE FUNCTION loyalty.referral_refusal(new_member bigint, referrer bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_member(referral_refusal.new_member);
    PERFORM loyalty.require_member(referral_refusal.referrer);
    IF EXISTS (SELECT FROM loyalty.referrals r WHERE r.member_id = new_member) THEN
        RETURN format('member %s was already referred', new_member);
    END IF;
    IF (SELECT a.purchase_count FROM loyalty.accounts a WHERE a.member_id = new_member) > 0 THEN
        RETURN format('member %s has already made a purchase', new_member);
    END IF;
    -- a loop: the referrer was itself referred, directly or further up, by the new member
    IF EXISTS (WITH RECURSIVE up(m, depth) AS (
                   SELECT r.referrer, 1 FROM loyalty.referrals r WHERE r.member_id = referral_refusal.referrer
                   UNION ALL
                   SELECT r.referrer, up.depth + 1 FROM loyalty.referrals r JOIN up ON r.member_id = up.m
                   WHERE up.depth < 1000)
               SELECT FROM up WHERE up.m = new_member) THEN
        RETURN format('member %s is in the referral chain of member %s', new_member, referrer);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION loyalty.refer(new_member bigint, code text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog bigint;
    v_referrer bigint;
    v_rules loyalty.referral_rules;
    v_n bigint;
    v_why text;
BEGIN
    PERFORM loyalty.require_member(refer.new_member);
    IF new_member IS NULL OR code IS NULL THEN
        RAISE EXCEPTION 'new_member and code must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.program_id INTO v_prog FROM loyalty.accounts a WHERE a.member_id = new_member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', new_member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.member_id INTO v_referrer FROM loyalty.referral_codes c
    WHERE c.program_id = v_prog AND c.code = upper(refer.code);
    IF NOT FOUND THEN
        IF EXISTS (SELECT FROM loyalty.referral_codes c WHERE c.code = upper(refer.code)) THEN
            RAISE EXCEPTION 'referral refused: code "%" belongs to a member of another program', code
                USING ERRCODE = 'LY020', DETAIL = format('Member %s is in program %s.', new_member, v_prog);
        END IF;
        RAISE EXCEPTION 'referral refused: no member of program % has code "%"', v_prog, code USING ERRCODE = 'LY020';
    END IF;
    IF v_referrer = new_member THEN
        RAISE EXCEPTION 'referral refused: member % cannot refer itself', new_member USING ERRCODE = 'LY020';
    END IF;
    -- A refusal for good is raised before any lock: a purchase of a referred
    -- member locks it, then its referrer, so the reverse pair (the referrer
    -- entering its referee's code) must not wait for a lock.
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    -- both members, in member_id order (no deadlock with another referral)
    PERFORM FROM loyalty.accounts a WHERE a.member_id IN (new_member, v_referrer) ORDER BY a.member_id FOR NO KEY UPDATE;
    SELECT * INTO v_rules FROM loyalty.referral_rules r WHERE r.program_id = v_prog;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'referral refused: program % has no referral rules', v_prog USING ERRCODE = 'LY020',
            HINT = 'Set them with loyalty.set_referral_rules().';
    END IF;
    -- again under the locks: a racing referral or purchase has committed by now
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    IF v_rules.max_referrals_per_referrer IS NOT NULL THEN
        SELECT count(*) INTO v_n FROM loyalty.referrals r WHERE r.referrer = v_referrer;
        IF v_n >= v_rules.max_referrals_per_referrer THEN
            RAISE EXCEPTION 'referral refused: member % has reached % referrals', v_referrer, v_n USING ERRCODE = 'LY020',
                DETAIL = format('The program allows %s referrals per member.', v_rules.max_referrals_per_referrer);
        END IF;
    END IF;
    INSERT INTO loyalty.referrals (member_id, referrer, code) VALUES (new_member, v_referrer, upper(refer.code));
    UPDATE loyalty.accounts a SET referral_pending = true WHERE a.member_id = new_member;
    RETURN v_referrer;
END $$;
-- Internal: called by the C earn path with the member's account locked.
CREATE OR REPLACE FUNCTION loyalty.referral_purchase(member bigint, entry bigint, amount numeric)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ref loyalty.referrals;
    v_rules loyalty.referral_rules;
BEGIN
    PERFORM loyalty.require_member(referral_purchase.member);
    SELECT * INTO v_ref FROM loyalty.referrals r WHERE r.member_id = member AND r.status = 'pending';
    IF NOT FOUND THEN
        UPDATE loyalty.accounts a SET referral_pending = false WHERE a.member_id = member;
        RETURN false;
    END IF;
    SELECT r.* INTO v_rules FROM loyalty.referral_rules r JOIN loyalty.accounts a ON a.program_id = r.program_id
    WHERE a.member_id = member;
    IF amount < coalesce(v_rules.min_purchase_amount, 0) THEN
        RETURN false;           -- not a qualifying purchase: wait for the next one
    END IF;
    IF v_rules.referee_points::bigint > 0 THEN
        PERFORM loyalty.award(member, v_rules.referee_points, 'referral: welcome', NULL, 'referral:' || v_ref.code,
                              'referral:' || member);
    END IF;
    -- a referrer who left (or was merged away) gets nothing, and never blocks the sale
    IF v_rules.referrer_points::bigint > 0
       AND (SELECT a.status FROM loyalty.accounts a WHERE a.member_id = v_ref.referrer) = 'active' THEN
        -- the referrer may be locked after the new member: referrals never form loops
        PERFORM loyalty.award(v_ref.referrer, v_rules.referrer_points, 'referral: member ' || member || ' bought',
                              NULL, 'referral:' || v_ref.code, 'referral:' || member);
    END IF;
    UPDATE loyalty.referrals r SET status = 'rewarded', rewarded_at = now(), entry_id = entry WHERE r.member_id = member;
    UPDATE loyalty.accounts a SET referral_pending = false WHERE a.member_id = member;
    RETURN true;
END $$;
CREATE OR REPLACE VIEW loyalty.member_rfm AS
WITH q AS MATERIALIZED (
    -- quintile boundaries per program: three sorts of one narrow column each
    -- (the account keeps every member's purchase statistics up to date, so
    -- no purchase is rescanned here)
    SELECT a.program_id,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.last_purchase_at) AS r,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_count) AS f,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_amount) AS m
    FROM loyalty.accounts a
    WHERE a.purchase_count > 0 AND a.status <> 'closed' AND loyalty.program_visible(a.program_id)
    GROUP BY a.program_id
), s AS (
    -- score = 1 + the number of quintile boundaries the value lies above,
    -- so equal values always get equal scores
    SELECT a.program_id, a.member_id, a.first_purchase_at, a.last_purchase_at, a.purchase_count,
           a.purchase_days, a.purchase_amount,
           1 + (a.last_purchase_at > q.r[1])::int + (a.last_purchase_at > q.r[2])::int
             + (a.last_purchase_at > q.r[3])::int + (a.last_purchase_at > q.r[4])::int AS r_score,
           1 + (a.purchase_count > q.f[1])::int + (a.purchase_count > q.f[2])::int
             + (a.purchase_count > q.f[3])::int + (a.purchase_count > q.f[4])::int AS f_score,
           1 + (a.purchase_amount > q.m[1])::int + (a.purchase_amount > q.m[2])::int
             + (a.purchase_amount > q.m[3])::int + (a.purchase_amount > q.m[4])::int AS m_score
    FROM loyalty.accounts a JOIN q ON q.program_id = a.program_id
    WHERE a.purchase_count > 0 AND a.status <> 'closed'
), cells AS MATERIALIZED (
    -- the mapping resolved once for the 25 (R, FM) cells, then joined
    SELECT r, fm, (SELECT g.segment FROM loyalty.rfm_segment_map g
                   WHERE r BETWEEN g.r_min AND g.r_max AND fm BETWEEN g.fm_min AND g.fm_max
                   ORDER BY g.priority LIMIT 1) AS segment
    FROM generate_series(1, 5) r, generate_series(1, 5) fm
)
SELECT s.program_id, s.member_id,
       s.first_purchase_at::date AS first_purchase, s.last_purchase_at::date AS last_purchase,
       (current_date - s.last_purchase_at::date)::bigint AS recency_days,
       s.purchase_count AS frequency, s.purchase_days AS purchase_days, s.purchase_amount AS monetary,
       s.r_score::bigint AS r_score, s.f_score::bigint AS f_score, s.m_score::bigint AS m_score,
       (s.r_score * 100 + s.f_score * 10 + s.m_score)::text AS rfm_cell,
       coalesce(c.segment, 'Other') AS segment
FROM s JOIN cells c ON c.r = s.r_score AND c.fm = round((s.f_score + s.m_score) / 2.0);
-- Customer summaries for the models, from the ledger: one purchase per day
-- (in the program's time zone), calibration up to and including `calibration_end`.
CREATE OR REPLACE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week')
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH days AS (
        SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
        FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
        WHERE l.program_id = loyalty.require_program($1) AND l.kind = 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date <= $2
        GROUP BY 1, 2
    ), f AS (
        SELECT d.*, min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, count(*) - 1,
           (max(f.day) - min(f.day))::numeric / u.days,
           ($2 - min(f.day))::numeric / u.days,
           avg(f.spend) FILTER (WHERE f.day > f.first_day),
           min(f.day), max(f.day)
    FROM f, (SELECT CASE $3 WHEN 'day' THEN 1 WHEN 'week' THEN 7 END AS days) u
    WHERE u.days IS NOT NULL
    GROUP BY f.member_id, u.days
$$;
CREATE OR REPLACE FUNCTION loyalty.fit_models(program bigint, calibration_end date DEFAULT current_date, time_unit text DEFAULT 'week')
RETURNS loyalty.models
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v loyalty.models;
BEGIN
    PERFORM loyalty.require_program(fit_models.program);
    IF time_unit IS NULL OR time_unit NOT IN ('day', 'week') THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id = program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    v.program_id := program;
    v.fitted_at := clock_timestamp();
    v.calibration_end := coalesce(calibration_end, current_date);
    v.time_unit := time_unit;
    SELECT loyalty.bgnbd_fit(s.x, s.t_x, s."T") INTO v.bgnbd
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s."T" > 0;
    IF v.bgnbd IS NULL THEN
        RAISE EXCEPTION 'program % has no purchases before %', program, v.calibration_end
            USING ERRCODE = 'LY030';
    END IF;
    SELECT loyalty.gamma_gamma_fit(s.x, s.m_x) INTO v.gamma_gamma
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s.x > 0;
    INSERT INTO loyalty.models VALUES (v.*);
    RETURN v;
END $$;
CREATE OR REPLACE VIEW loyalty.member_predictions AS
WITH m AS (
    SELECT DISTINCT ON (x.program_id) x.* FROM loyalty.models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.program_id, x.fitted_at DESC
)
SELECT m.program_id, s.member_id, m.fitted_at, m.time_unit,
       s.x::bigint AS repeat_purchases, round(s.t_x, 2) AS t_x, round(s."T", 2) AS customer_age,
       round(loyalty.bgnbd_p_alive((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T")::numeric, 4) AS p_alive,
       round(loyalty.bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T",
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END)::numeric, 4) AS expected_purchases_year,
       round(loyalty.gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, s.x, coalesce(s.m_x, 0))::numeric, 2)
           AS expected_avg_spend,
       round(loyalty.clv(m, s.x, s.t_x, s."T", s.m_x,
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END,
             CASE m.time_unit WHEN 'week' THEN 0.0019 ELSE 0.00026 END)::numeric, 2) AS clv_year
FROM m, LATERAL loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit) s;
-- KPI and distribution views --------------------------------------------------------

CREATE OR REPLACE VIEW loyalty.kpi_daily AS
WITH l AS (
    SELECT l.program_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, l.kind, l.points::bigint AS points,
           l.amount, l.member_id
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
    WHERE loyalty.program_visible(l.program_id)
), n AS (
    SELECT m.program_id, (m.joined_at AT TIME ZONE p.time_zone)::date AS day, count(*) AS new_members
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE loyalty.program_visible(m.program_id) GROUP BY 1, 2
), d AS (
    SELECT l.program_id, l.day,
           count(DISTINCT l.member_id) FILTER (WHERE l.kind = 'earn') AS active_members,
           count(*) FILTER (WHERE l.kind = 'earn') AS purchases,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'earn'), 0) AS revenue,
           coalesce(sum(l.points) FILTER (WHERE l.kind IN ('earn', 'award') OR (l.kind = 'adjust' AND l.points > 0)), 0) AS issued,
           coalesce(-sum(l.points) FILTER (WHERE l.kind IN ('redeem', 'hold')), 0)
             - coalesce(sum(l.points) FILTER (WHERE l.kind = 'release'), 0) AS redeemed,
           coalesce(-sum(l.points) FILTER (WHERE l.kind = 'expire'), 0) AS expired
    FROM l GROUP BY 1, 2
)
SELECT coalesce(d.program_id, n.program_id) AS program_id, coalesce(d.day, n.day) AS day,
       coalesce(n.new_members, 0)::bigint AS new_members, coalesce(d.active_members, 0)::bigint AS active_members,
       coalesce(d.purchases, 0)::bigint AS purchases, coalesce(d.revenue, 0) AS revenue,
       CASE WHEN d.purchases > 0 THEN round(d.revenue / d.purchases, 2) END AS avg_order_value,
       coalesce(d.issued, 0)::bigint AS points_issued, coalesce(d.redeemed, 0)::bigint AS points_redeemed,
       coalesce(d.expired, 0)::bigint AS points_expired
FROM d FULL JOIN n ON n.program_id = d.program_id AND n.day = d.day;
CREATE OR REPLACE VIEW loyalty.kpi_monthly AS
WITH k AS (
    SELECT program_id, date_trunc('month', day)::date AS month, sum(new_members) AS new_members,
           sum(purchases) AS purchases, sum(revenue) AS revenue, sum(points_issued) AS points_issued,
           sum(points_redeemed) AS points_redeemed, sum(points_expired) AS points_expired
    FROM loyalty.kpi_daily GROUP BY 1, 2
), b AS (
    -- buyers of the month, and those of them who had bought before it
    SELECT x.program_id, x.month, count(*) AS buyers,
           count(*) FILTER (WHERE x.first_month < x.month) AS repeat_buyers
    FROM (SELECT DISTINCT l.program_id, l.member_id,
                 date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month,
                 min(date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date)
                     OVER (PARTITION BY l.member_id) AS first_month
          FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
          WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)) x
    GROUP BY 1, 2
)
SELECT k.program_id, k.month, k.new_members::bigint AS new_members, coalesce(b.buyers, 0)::bigint AS active_members,
       k.purchases::bigint AS purchases, k.revenue,
       CASE WHEN k.purchases > 0 THEN round(k.revenue / k.purchases, 2) END AS avg_order_value,
       CASE WHEN b.buyers > 0 THEN round(b.repeat_buyers * 1.0 / b.buyers, 4) END AS repeat_purchase_rate,
       k.points_issued::bigint AS points_issued, k.points_redeemed::bigint AS points_redeemed,
       k.points_expired::bigint AS points_expired,
       CASE WHEN k.points_issued > 0 THEN round(k.points_redeemed * 1.0 / k.points_issued, 4) END AS redemption_rate,
       CASE WHEN k.points_issued > 0 THEN round(k.points_expired * 1.0 / k.points_issued, 4) END AS breakage
FROM k LEFT JOIN b ON b.program_id = k.program_id AND b.month = k.month;
CREATE OR REPLACE VIEW loyalty.kpi_summary AS
SELECT p.program_id, p.name AS program, p.currency,
       count(a.member_id)::bigint AS members,
       count(a.member_id) FILTER (WHERE a.last_purchase_at > now() - interval '90 days')::bigint AS active_members_90d,
       CASE WHEN count(a.member_id) FILTER (WHERE a.purchase_count > 0) > 0
            THEN round(count(a.member_id) FILTER (WHERE a.purchase_count > 1) * 1.0
                       / count(a.member_id) FILTER (WHERE a.purchase_count > 0), 4) END AS repeat_purchase_rate,
       CASE WHEN sum(a.purchase_count) > 0 THEN round(sum(a.purchase_amount) / sum(a.purchase_count), 2) END AS avg_order_value,
       coalesce(sum(a.balance::bigint), 0)::bigint AS points_outstanding,
       coalesce(sum(a.held::bigint), 0)::bigint AS points_held,
       (SELECT coalesce(sum(l.remaining::bigint), 0) FROM loyalty.lots l JOIN loyalty.accounts x ON x.member_id = l.member_id
        WHERE x.program_id = p.program_id AND l.remaining::bigint > 0 AND l.vests_at > now())::bigint AS points_pending,
       coalesce(sum(a.lifetime_earned::bigint), 0)::bigint AS points_issued,
       coalesce(sum(a.lifetime_redeemed::bigint), 0)::bigint AS points_redeemed,
       coalesce(sum(a.lifetime_expired::bigint), 0)::bigint AS points_expired,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_redeemed::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS redemption_rate,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_expired::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS breakage,
       round(coalesce(sum(a.balance::bigint + a.held::bigint), 0) * p.point_value, 2) AS liability
FROM loyalty.programs p LEFT JOIN loyalty.accounts a ON a.program_id = p.program_id AND a.status <> 'closed'
WHERE loyalty.program_visible(p.program_id)
GROUP BY p.program_id;
CREATE OR REPLACE VIEW loyalty.tier_distribution AS
SELECT a.program_id, coalesce(loyalty.tier_name(a.tier), 'none') AS tier, loyalty.tier_rank(a.tier)::bigint AS tier_rank,
       count(*)::bigint AS members, round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY a.program_id), 4) AS share
FROM loyalty.accounts a WHERE a.status <> 'closed' AND loyalty.program_visible(a.program_id)
GROUP BY a.program_id, a.tier;
CREATE OR REPLACE VIEW loyalty.channel_distribution AS
SELECT l.program_id, coalesce(l.channel, 'unknown') AS channel, count(*)::bigint AS purchases,
       count(DISTINCT l.member_id)::bigint AS members, sum(l.amount) AS revenue,
       sum(l.points::bigint)::bigint AS points_issued
FROM loyalty.ledger l WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)
GROUP BY 1, 2;
CREATE OR REPLACE VIEW loyalty.member_mix AS
SELECT m.program_id, coalesce(m.source_channel, 'unknown') AS source_channel, coalesce(m.region, 'unknown') AS region,
       count(*)::bigint AS members, count(*) FILTER (WHERE a.purchase_count > 0)::bigint AS buyers
FROM loyalty.members m JOIN loyalty.accounts a ON a.member_id = m.member_id
WHERE m.status <> 'closed' AND loyalty.program_visible(m.program_id)
GROUP BY 1, 2, 3;
CREATE OR REPLACE VIEW loyalty.cohort_retention AS
WITH buys AS (
    SELECT DISTINCT l.program_id, l.member_id, date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
    WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)
), c AS (
    SELECT b.*, min(b.month) OVER (PARTITION BY b.member_id) AS cohort FROM buys b
)
SELECT c.program_id, c.cohort AS cohort_month,
       ((extract(year FROM c.month) - extract(year FROM c.cohort)) * 12
         + extract(month FROM c.month) - extract(month FROM c.cohort))::bigint AS months_since_first,
       count(*)::bigint AS active_members,
       max(s.size)::bigint AS cohort_size,
       round(count(*) * 1.0 / max(s.size), 4) AS retention
FROM c JOIN (SELECT c2.program_id, c2.cohort, count(DISTINCT c2.member_id) AS size FROM c c2 GROUP BY 1, 2) s
  ON s.program_id = c.program_id AND s.cohort = c.cohort
GROUP BY 1, 2, 3;
CREATE OR REPLACE VIEW loyalty.reward_popularity AS
SELECT r.program_id, r.reward_id, r.code, r.name, count(x.redemption_id)::bigint AS redemptions,
       count(x.redemption_id) FILTER (WHERE x.status = 'cancelled')::bigint AS cancelled,
       coalesce(sum(x.points::bigint) FILTER (WHERE x.status = 'issued'), 0)::bigint AS points_spent,
       count(DISTINCT x.member_id)::bigint AS members, r.stock
FROM loyalty.rewards r LEFT JOIN loyalty.redemptions x ON x.reward_id = r.reward_id
WHERE loyalty.program_visible(r.program_id)
GROUP BY r.reward_id;


-- Row-level security (see 32_access.sql): every table of a program's data
-- shows a role bound to programs only their rows.  The extension's functions
-- and views run as the extension owner, who is exempt, and apply the same
-- test themselves; these policies hold for any role a DBA ever gives direct
-- table access to.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.relname,
               bool_or(a.attname = 'program_id') AS has_program,
               bool_or(a.attname = 'member_id') AS has_member
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind IN ('r', 'p')
        GROUP BY c.relname
        HAVING bool_or(a.attname IN ('program_id', 'member_id'))
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE loyalty.%I ENABLE ROW LEVEL SECURITY', t.relname);
        EXECUTE format('CREATE POLICY program_isolation ON loyalty.%I USING (%s)', t.relname,
                       CASE WHEN t.has_program THEN 'loyalty.program_visible(program_id)'
                            ELSE 'loyalty.member_visible(member_id)' END);
    END LOOP;
END $$;

-- 90_security.sql grants administrators read access to every table
REVOKE ALL ON loyalty.program_roles FROM PUBLIC;
GRANT SELECT ON loyalty.program_roles TO loyalty_admin;
