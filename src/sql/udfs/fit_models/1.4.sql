CREATE FUNCTION loyalty.fit_models(program bigint, calibration_end date DEFAULT current_date, time_unit text DEFAULT 'week',
                                   penalizer anycompatible DEFAULT NULL)
RETURNS loyalty.models
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v loyalty.models;
    v_penalizer numeric := penalizer::numeric;
    -- the penalizers each model is fitted with, in turn, until one fits:
    -- the one given, or (NULL) none and then stronger ones
    v_tries float8[];
    v_setting text;
    v_model text;
    v_fit loyalty.bgnbd_params;
    v_pen float8;
    v_used float8;
    v_err text;
    -- the customers, read once for every fit and the stored predictions:
    -- member, x, t_x, T, mean repeat spend, last purchase day, and the
    -- account's purchase figures read in the same snapshot
    v_member bigint[];
    v_x bigint[];
    v_tx numeric[];
    v_age numeric[];
    v_m numeric[];
    v_last date[];
    v_count bigint[];
    v_days bigint[];
    v_amount numeric[];
    v_last_at timestamptz[];
BEGIN
    PERFORM loyalty.require_program(fit_models.program);
    IF time_unit IS NULL OR time_unit NOT IN ('day', 'week') THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (v_penalizer >= 0 AND v_penalizer < 'Infinity') THEN
        RAISE EXCEPTION 'penalizer must be a finite number, not negative, not %', v_penalizer
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL: none, or the least of 0.001, 0.01 and 0.1 that fits.';
    END IF;
    SELECT p.purchase_model INTO v_setting FROM loyalty.programs p WHERE p.program_id = program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    v_tries := CASE WHEN v_penalizer IS NULL THEN ARRAY[0, 0.001, 0.01, 0.1]::float8[] ELSE ARRAY[v_penalizer::float8] END;
    v.program_id := program;
    v.fitted_at := clock_timestamp();
    v.calibration_end := coalesce(calibration_end, current_date);
    v.time_unit := time_unit;
    SELECT array_agg(s.member_id), array_agg(s.x), array_agg(s.t_x), array_agg(s."T"), array_agg(s.m_x),
           array_agg(s.last_purchase), array_agg(a.purchase_count), array_agg(a.purchase_days),
           array_agg(a.purchase_amount), array_agg(a.last_purchase_at)
    INTO v_member, v_x, v_tx, v_age, v_m, v_last, v_count, v_days, v_amount, v_last_at
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s
    LEFT JOIN loyalty.accounts a ON a.member_id OPERATOR(pg_catalog.=) s.member_id;
    -- the fits take the customers of some age (a first purchase on the
    -- calibration end says nothing yet); the predictions are for everyone
    IF NOT EXISTS (SELECT FROM unnest(v_age) t WHERE t > 0) THEN
        RAISE EXCEPTION 'program % has no purchases before %', program, v.calibration_end
            USING ERRCODE = 'LY030';
    END IF;

    -- the purchase models, each on its own: one the data cannot identify
    -- leaves the other
    FOREACH v_model IN ARRAY ARRAY['bgnbd', 'mbgnbd'] LOOP
        v_fit := NULL;
        v_used := NULL;
        v_err := NULL;
        FOREACH v_pen IN ARRAY v_tries LOOP
            BEGIN
                IF v_model = 'bgnbd' THEN
                    v_fit := (SELECT loyalty.bgnbd_fit(u.x::float8, u.t_x::float8, u."T"::float8, v_pen)
                              FROM unnest(v_x, v_tx, v_age) u(x, t_x, "T") WHERE u."T" > 0);
                ELSE
                    v_fit := (SELECT loyalty.mbgnbd_fit(u.x::float8, u.t_x::float8, u."T"::float8, v_pen)
                              FROM unnest(v_x, v_tx, v_age) u(x, t_x, "T") WHERE u."T" > 0);
                END IF;
                v_used := v_pen;
                EXIT;
            EXCEPTION WHEN SQLSTATE 'LY030' THEN
                v_err := coalesce(v_err, SQLERRM);
            END;
        END LOOP;
        IF v_fit IS NULL AND v_penalizer IS NULL THEN
            v_err := v_err || ' (nor with a penalizer of 0.001, 0.01 or 0.1)';
        END IF;
        IF v_model = 'bgnbd' THEN
            v.bgnbd := v_fit;
            v.bgnbd_penalizer := v_used;
            v.bgnbd_failure := CASE WHEN v_fit IS NULL THEN v_err END;
        ELSE
            v.mbgnbd := v_fit;
            v.mbgnbd_penalizer := v_used;
            v.mbgnbd_failure := CASE WHEN v_fit IS NULL THEN v_err END;
        END IF;
    END LOOP;
    -- the one the program predicts with: LY030 (and nothing stored, so the
    -- program keeps its last fit) when the data identify neither or not the
    -- one the program asks for
    v.purchase_model := loyalty.purchase_model_choice(v_setting, v.bgnbd, v.mbgnbd);
    IF v.purchase_model IS NULL THEN
        RAISE EXCEPTION '%', v.bgnbd_failure
            USING ERRCODE = 'LY030', DETAIL = format('Nor MBG/NBD: %s.', v.mbgnbd_failure);
    ELSIF v.purchase_model = 'bgnbd' AND v.bgnbd IS NULL OR v.purchase_model = 'mbgnbd' AND v.mbgnbd IS NULL THEN
        RAISE EXCEPTION '%', CASE WHEN v.purchase_model = 'bgnbd' THEN v.bgnbd_failure ELSE v.mbgnbd_failure END
            USING ERRCODE = 'LY030',
                  DETAIL = format('Program %s predicts with %s (loyalty.set_purchase_model).', program, v.purchase_model),
                  HINT = 'loyalty.set_purchase_model(program, ''auto'') lets it predict with the model the data identify.';
    END IF;

    -- the spend model on its own too: when the data cannot identify it, or
    -- identify one without an expected value (q <= 1: spend too
    -- heavy-tailed), the purchase models are kept and the failure recorded
    v_err := NULL;
    FOREACH v_pen IN ARRAY v_tries LOOP
        BEGIN
            v.gamma_gamma := (SELECT loyalty.gamma_gamma_fit(u.x::float8, u.m_x::float8, v_pen)
                              FROM unnest(v_x, v_m, v_age) u(x, m_x, "T") WHERE u.x > 0 AND u."T" > 0);
            v.gamma_gamma_penalizer := v_pen;
            EXIT;
        EXCEPTION WHEN SQLSTATE 'LY030' THEN
            v_err := coalesce(v_err, SQLERRM);
        END;
    END LOOP;
    IF v.gamma_gamma IS NULL AND v_err IS NOT NULL THEN
        v.gamma_gamma_failure := v_err || CASE WHEN v_penalizer IS NULL THEN ' (nor with a penalizer of 0.001, 0.01 or 0.1)' ELSE '' END;
    ELSIF v.gamma_gamma IS NULL THEN
        v.gamma_gamma_failure := 'no customer with a repeat purchase';
        v.gamma_gamma_penalizer := NULL;
    ELSIF NOT (v.gamma_gamma).q > 1 THEN
        v.gamma_gamma_failure := format('q = %s: spend this heavy-tailed has no expected value (q must exceed 1)',
                                        round((v.gamma_gamma).q::numeric, 4));
        v.gamma_gamma := NULL;
        v.gamma_gamma_penalizer := NULL;
    END IF;
    INSERT INTO loyalty.models VALUES (v.*);
    -- every member's predictions by this fit, in this transaction: the views
    -- read them instead of summarising the ledger again
    PERFORM loyalty.store_member_scores(v, v_member, v_x, v_tx, v_age, v_m, v_last, v_count, v_days, v_amount, v_last_at);
    RETURN v;
END $$;
