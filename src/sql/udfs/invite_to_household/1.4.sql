CREATE FUNCTION loyalty.invite_to_household(household bigint, member bigint, role text DEFAULT 'adult')
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h loyalty.households;
    v_until timestamptz := now() + interval '14 days';
BEGIN
    IF member IS NULL OR role IS NULL THEN
        RAISE EXCEPTION 'member and role must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF role NOT IN ('adult', 'child') THEN
        RAISE EXCEPTION 'unknown household role "%"', role USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Members are invited as adult or child.';
    END IF;
    h := loyalty.household_lock(household);
    IF NOT EXISTS (SELECT FROM loyalty.members m WHERE m.member_id OPERATOR(pg_catalog.=) invite_to_household.member
                   AND m.program_id OPERATOR(pg_catalog.=) h.program_id) THEN
        RAISE EXCEPTION 'member % is no member of household %''s program', member, household USING ERRCODE = 'no_data_found';
    END IF;
    -- a new invitation replaces an open one of the same household
    INSERT INTO loyalty.household_invitations AS i (member_id, household_id, program_id, role, expires_at)
    VALUES (member, household, h.program_id, role, v_until)
    ON CONFLICT (member_id, household_id) DO UPDATE SET role = EXCLUDED.role, expires_at = EXCLUDED.expires_at,
        invited_at = EXCLUDED.invited_at;
    RETURN v_until;
END $$;
