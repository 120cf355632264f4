CREATE FUNCTION loyalty.remove_household_member(household bigint, member bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF household IS NULL OR member IS NULL THEN
        RAISE EXCEPTION 'household and member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.leave_household(member, household);
END $$;
