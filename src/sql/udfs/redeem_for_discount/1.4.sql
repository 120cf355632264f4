CREATE FUNCTION loyalty.redeem_for_discount(member bigint, order_amount anycompatible, points numeric,
                                            reference text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_value numeric;
    v_rules loyalty.redemption_rules;
    v_discount numeric;
    -- the order's amount as numeric, whatever a driver sent (ints, floats, decimals)
    v_amount numeric := order_amount::numeric;
BEGIN
    PERFORM loyalty.require_member(redeem_for_discount.member);
    IF member IS NULL OR v_amount IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'member, order_amount and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- a whole number of points (integer, numeric or text from the driver)
    PERFORM loyalty.points(points);
    IF v_amount = 'NaN' OR v_amount <= 0 OR v_amount = 'Infinity' THEN
        RAISE EXCEPTION 'order_amount must be a positive, finite amount' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id, p.point_value INTO v_program, v_value
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id = a.program_id
    WHERE a.member_id = member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO v_rules FROM loyalty.redemption_rules r WHERE r.program_id = v_program;
    v_rules.min_points := coalesce(v_rules.min_points, '1');
    IF points::bigint < v_rules.min_points::bigint THEN
        RAISE EXCEPTION 'at least % points must be redeemed on an order, got %', v_rules.min_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_rules.max_points IS NOT NULL AND points::bigint > v_rules.max_points::bigint THEN
        RAISE EXCEPTION 'at most % points can be redeemed on an order, got %', v_rules.max_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_discount := points::bigint * v_value;
    IF v_discount > v_amount THEN
        RAISE EXCEPTION 'a discount of % exceeds the order amount %', v_discount, v_amount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    IF v_rules.max_share_of_order IS NOT NULL AND v_discount > v_amount * v_rules.max_share_of_order THEN
        RAISE EXCEPTION 'points may pay at most % of an order (% of %), got a discount of %',
            v_rules.max_share_of_order, v_amount * v_rules.max_share_of_order, v_amount, v_discount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    PERFORM loyalty.redeem(member, points, NULL, reference, idempotency_key);
    RETURN v_discount;
END $$;
