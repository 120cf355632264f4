CREATE FUNCTION loyalty.create_reward(program bigint, code text, name text, point_cost loyalty.points,
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
