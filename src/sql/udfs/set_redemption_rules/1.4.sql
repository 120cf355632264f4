CREATE FUNCTION loyalty.set_redemption_rules(program bigint, min_points loyalty.points DEFAULT '1',
    max_points loyalty.points DEFAULT NULL, max_share_of_order anycompatible DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- the share as numeric, whatever a driver sent (ints, floats, decimals);
    -- NaN and infinities fail the table's check
    v_share numeric := set_redemption_rules.max_share_of_order::numeric;
BEGIN
    PERFORM loyalty.require_program(set_redemption_rules.program);
    BEGIN
        INSERT INTO loyalty.redemption_rules (program_id, min_points, max_points, max_share_of_order)
        VALUES (set_redemption_rules.program, coalesce(set_redemption_rules.min_points, '1'),
                set_redemption_rules.max_points, v_share)
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
