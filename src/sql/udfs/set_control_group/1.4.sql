CREATE FUNCTION loyalty.set_control_group(campaign_kind text, campaign bigint, share anycompatible, seed text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_share numeric := share::numeric;     -- (a float from a driver too)
BEGIN
    IF campaign_kind IS NULL OR campaign IS NULL OR share IS NULL THEN
        RAISE EXCEPTION 'campaign_kind, campaign and share must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_share = 'NaN' OR v_share < 0 OR v_share >= 1 THEN
        RAISE EXCEPTION 'share must be at least 0 and below 1, got %', share USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed IS NOT NULL AND (seed = '' OR length(seed) > 400) THEN
        RAISE EXCEPTION 'a seed is 1 to 400 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- a new seed draws a new group; without one the group stays as it was
    CASE campaign_kind
        WHEN 'rule' THEN
            UPDATE loyalty.earning_rules x SET control_share = v_share, control_seed = coalesce(seed, x.control_seed)
            WHERE x.rule_id = campaign RETURNING x.program_id INTO v_program;
        WHEN 'coupon' THEN
            UPDATE loyalty.coupon_campaigns x SET control_share = v_share, control_seed = coalesce(seed, x.control_seed)
            WHERE x.campaign_id = campaign RETURNING x.program_id INTO v_program;
        WHEN 'challenge' THEN
            UPDATE loyalty.challenges x SET control_share = v_share, control_seed = coalesce(seed, x.control_seed)
            WHERE x.challenge_id = campaign RETURNING x.program_id INTO v_program;
        WHEN 'journey' THEN
            UPDATE loyalty.journey_steps x SET control_share = v_share, control_seed = coalesce(seed, x.control_seed)
            WHERE x.step_id = campaign RETURNING x.program_id INTO v_program;
        ELSE
            RAISE EXCEPTION 'unknown campaign kind "%"', campaign_kind USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Use rule, coupon, challenge or journey.';
    END CASE;
    IF v_program IS NULL THEN
        RAISE EXCEPTION '% % does not exist', campaign_kind, campaign USING ERRCODE = 'no_data_found';
    END IF;
    -- (after the write: a role bound to other programs fails here, and the
    -- statement's change is rolled back with the error)
    PERFORM loyalty.require_program(v_program);
END $$;
