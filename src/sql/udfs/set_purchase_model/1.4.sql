CREATE FUNCTION loyalty.set_purchase_model(program bigint, model text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m loyalty.models;
    v_choice text;
BEGIN
    IF program IS NULL OR model IS NULL THEN
        RAISE EXCEPTION 'program and model must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.require_program(set_purchase_model.program);
    IF model NOT IN ('auto', 'bgnbd', 'mbgnbd') THEN
        RAISE EXCEPTION 'model must be auto, bgnbd or mbgnbd, not %', model USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE loyalty.programs p SET purchase_model = set_purchase_model.model
    WHERE p.program_id OPERATOR(pg_catalog.=) set_purchase_model.program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    -- the latest fit stores both models: the predictions follow now, not at
    -- the next fit
    SELECT * INTO m FROM loyalty.models x WHERE x.program_id OPERATOR(pg_catalog.=) set_purchase_model.program
    ORDER BY x.fitted_at DESC LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_choice := loyalty.purchase_model_choice(model, m.bgnbd, m.mbgnbd);
    IF (v_choice = 'bgnbd' AND m.bgnbd IS NULL) OR (v_choice = 'mbgnbd' AND m.mbgnbd IS NULL) THEN
        RAISE EXCEPTION 'the latest fit of program % has no % model', program,
                        CASE WHEN v_choice = 'bgnbd' THEN 'BG/NBD' ELSE 'MBG/NBD' END
            USING ERRCODE = 'LY030',
                  DETAIL = coalesce(CASE WHEN v_choice = 'bgnbd' THEN m.bgnbd_failure ELSE m.mbgnbd_failure END, ''),
                  HINT = 'Refit (loyalty.fit_models), or keep auto.';
    END IF;
    UPDATE loyalty.models x SET purchase_model = v_choice
    WHERE x.program_id OPERATOR(pg_catalog.=) m.program_id AND x.fitted_at OPERATOR(pg_catalog.=) m.fitted_at;
    RETURN v_choice;
END $$;
