CREATE FUNCTION loyalty.change_household_owner(household bigint, member bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h loyalty.households;
BEGIN
    IF member IS NULL THEN
        RAISE EXCEPTION 'member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    h := loyalty.household_lock(household);
    IF NOT EXISTS (SELECT FROM loyalty.household_members m WHERE m.member_id OPERATOR(pg_catalog.=) change_household_owner.member
                   AND m.household_id OPERATOR(pg_catalog.=) change_household_owner.household AND m.left_at IS NULL
                   AND m.role IN ('adult', 'owner')) THEN
        RAISE EXCEPTION 'member % is no adult of household %', member, household USING ERRCODE = 'LY060';
    END IF;
    UPDATE loyalty.household_members m SET role = 'adult'
    WHERE m.member_id OPERATOR(pg_catalog.=) h.owner AND m.household_id OPERATOR(pg_catalog.=) h.household_id
      AND m.left_at IS NULL;
    UPDATE loyalty.household_members m SET role = 'owner'
    WHERE m.member_id OPERATOR(pg_catalog.=) change_household_owner.member
      AND m.household_id OPERATOR(pg_catalog.=) h.household_id AND m.left_at IS NULL;
    UPDATE loyalty.households x SET owner = change_household_owner.member
    WHERE x.household_id OPERATOR(pg_catalog.=) h.household_id;
END $$;
