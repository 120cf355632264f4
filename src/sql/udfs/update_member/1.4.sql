CREATE FUNCTION loyalty.update_member(
    member            bigint,
    birthday          date DEFAULT NULL,
    region            text DEFAULT NULL,
    preferred_channel text DEFAULT NULL,
    consent           jsonb DEFAULT NULL,
    attributes        jsonb DEFAULT NULL,
    reason            text DEFAULT NULL,
    clear             text[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m loyalty.members;
    v_new loyalty.members;
    v_changed integer := 0;
    f text;
BEGIN
    IF member IS NULL THEN
        RAISE EXCEPTION 'member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF clear IS NOT NULL AND NOT clear <@ ARRAY['birthday', 'region', 'preferred_channel', 'consent', 'attributes'] THEN
        RAISE EXCEPTION 'clear names an unknown field: %', clear USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Fields that can be cleared: birthday, region, preferred_channel, consent, attributes.';
    END IF;
    IF birthday IS NOT NULL AND (NOT isfinite(birthday) OR birthday > current_date OR birthday < date '1900-01-01') THEN
        RAISE EXCEPTION 'birthday % is not a date of birth', birthday USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Send a date between 1900-01-01 and today; clear => ''{birthday}'' removes it.';
    END IF;
    IF region = '' OR preferred_channel = '' THEN
        RAISE EXCEPTION 'region and preferred_channel must not be empty' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Send NULL to leave a field as it is, or name it in clear to remove it.';
    END IF;
    IF consent IS NOT NULL AND (jsonb_typeof(consent) <> 'object'
        OR EXISTS (SELECT FROM jsonb_each(consent) e WHERE jsonb_typeof(e.value) NOT IN ('boolean', 'null'))) THEN
        RAISE EXCEPTION 'consent must be a JSON object of channels to true, false or null' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example {"email": true, "sms": false}; null removes a channel''s answer.';
    END IF;
    IF attributes IS NOT NULL AND jsonb_typeof(attributes) <> 'object' THEN
        RAISE EXCEPTION 'attributes must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example {"pet": "dog"}; a key set to null is removed.';
    END IF;

    -- the account's lock first, as every write of the member takes it (and
    -- erase_member, so that no update brings back what an erasure removed)
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) update_member.member FOR NO KEY UPDATE;
    SELECT * INTO m FROM loyalty.members x WHERE x.member_id OPERATOR(pg_catalog.=) update_member.member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM loyalty.require_program(m.program_id);
    IF m.erased_at IS NOT NULL THEN
        RAISE EXCEPTION 'member % was erased', member USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'An erased member''s personal data cannot be recorded again.';
    END IF;

    v_new := m;
    v_new.birthday := CASE WHEN 'birthday' = ANY (clear) THEN NULL ELSE coalesce(birthday, m.birthday) END;
    v_new.region := CASE WHEN 'region' = ANY (clear) THEN NULL ELSE coalesce(region, m.region) END;
    v_new.preferred_channel := CASE WHEN 'preferred_channel' = ANY (clear) THEN NULL
                                    ELSE coalesce(preferred_channel, m.preferred_channel) END;
    v_new.consent := CASE WHEN 'consent' = ANY (clear) THEN '{}'::jsonb
                          ELSE jsonb_strip_nulls(m.consent || coalesce(consent, '{}')) END;
    v_new.attributes := CASE WHEN 'attributes' = ANY (clear) THEN '{}'::jsonb
                             ELSE jsonb_strip_nulls(m.attributes || coalesce(attributes, '{}')) END;

    FOR f IN SELECT unnest(ARRAY['birthday', 'region', 'preferred_channel', 'consent', 'attributes']) LOOP
        IF (to_jsonb(m) -> f) IS DISTINCT FROM (to_jsonb(v_new) -> f) THEN
            INSERT INTO loyalty.member_changes (member_id, program_id, field, old_value, new_value, reason)
            VALUES (m.member_id, m.program_id, f, to_jsonb(m) -> f, to_jsonb(v_new) -> f, update_member.reason);
            v_changed := v_changed + 1;
        END IF;
    END LOOP;
    IF v_changed > 0 THEN
        -- (the values computed here: Citus evaluates no function in an UPDATE's CASE)
        IF v_new.birthday IS DISTINCT FROM m.birthday THEN
            v_new.birthday_changed_at := now();
        END IF;
        UPDATE loyalty.members x
        SET birthday = v_new.birthday, region = v_new.region, preferred_channel = v_new.preferred_channel,
            consent = v_new.consent, attributes = v_new.attributes, birthday_changed_at = v_new.birthday_changed_at
        WHERE x.member_id OPERATOR(pg_catalog.=) m.member_id;
        -- member_mix's rollups count the member again
        IF v_new.region IS DISTINCT FROM m.region THEN
            PERFORM loyalty.account_changed(m.member_id);
        END IF;
    END IF;
    RETURN v_changed;
END $$;
