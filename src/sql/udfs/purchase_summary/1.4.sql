CREATE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week')
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY SELECT * FROM loyalty.purchase_days(loyalty.require_program($1), $2, $3);
END $$;
