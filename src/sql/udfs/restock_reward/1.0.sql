CREATE FUNCTION loyalty.restock_reward(reward bigint, units bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stock bigint;
BEGIN
    UPDATE loyalty.rewards r SET stock = r.stock + units
    WHERE r.reward_id = reward AND r.stock IS NOT NULL AND r.stock + units >= 0
    RETURNING r.stock INTO v_stock;
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT FROM loyalty.rewards r WHERE r.reward_id = reward) THEN
            RAISE EXCEPTION 'reward % does not exist', reward USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'reward % has unlimited stock, or would go below zero', reward USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_stock;
END $$;
