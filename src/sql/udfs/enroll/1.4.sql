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
    PERFORM loyalty.check_identity(channel, external_id);
    IF birthday IS NOT NULL AND (NOT isfinite(birthday) OR birthday > current_date OR birthday < date '1900-01-01') THEN
        RAISE EXCEPTION 'birthday % is not a date of birth', birthday USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Send a date between 1900-01-01 and today, or NULL when unknown.';
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
    PERFORM loyalty.open_account(v_id, program);
    PERFORM loyalty.emit_event(v_id, 'member.enrolled',
        pg_catalog.jsonb_build_object('channel', channel, 'external_id', external_id,
                                      'source_channel', coalesce(source_channel, channel)));
    IF referral_code IS NOT NULL THEN
        PERFORM loyalty.refer(v_id, referral_code);   -- a refused code fails the enrolment (LY020)
    END IF;
    RETURN v_id;
END $$;
