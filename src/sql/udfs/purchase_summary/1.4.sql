CREATE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week',
                                         member_from bigint DEFAULT NULL, member_to bigint DEFAULT NULL)
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- the member-range statement keeps one plan for every range (a few members:
-- the ledger's primary key), planned once per session
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_days integer := CASE WHEN time_unit = 'day' THEN 1 WHEN time_unit = 'week' THEN 7 END;
BEGIN
    IF v_days IS NULL THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty.require_program(program);
    IF member_from IS NULL AND member_to IS NULL THEN
        -- the whole program: planned with its values on every call, so that a
        -- small program in a large ledger goes through the members' index
        -- and the ledger's key, and a large one scans the ledger
        RETURN QUERY EXECUTE 'SELECT * FROM loyalty.purchase_summary_rows($1, $2, $3, $4, $5)'
            USING program, calibration_end, v_days, '-9223372036854775808'::bigint, '9223372036854775807'::bigint;
    ELSE
        RETURN QUERY SELECT * FROM loyalty.purchase_summary_rows(program, calibration_end, v_days,
                                                                 coalesce(member_from, '-9223372036854775808'::bigint),
                                                                 coalesce(member_to, '9223372036854775807'::bigint));
    END IF;
END $$;
