CREATE FUNCTION loyalty.purchase_model_choice(setting text, bgnbd loyalty.bgnbd_params, mbgnbd loyalty.bgnbd_params)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- both have four parameters: the likelihoods compare as they are
    SELECT CASE WHEN $1 IS DISTINCT FROM 'auto' THEN $1
                WHEN ($2).loglik IS NULL AND ($3).loglik IS NULL THEN NULL
                WHEN ($2).loglik IS NULL OR ($3).loglik > ($2).loglik THEN 'mbgnbd'
                ELSE 'bgnbd' END
$$;
