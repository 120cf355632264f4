CREATE FUNCTION loyalty.store_member_scores(m loyalty.models, member_id bigint[], x bigint[], t_x numeric[], "T" numeric[],
                                            m_x numeric[], last_purchase date[], purchase_count bigint[],
                                            purchase_days bigint[], purchase_amount numeric[],
                                            last_purchase_at timestamptz[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    -- one statement each, set-based: the program's rows of the previous fit
    -- go, the new ones come in the caller's transaction (with the model)
    DELETE FROM loyalty.member_scores s WHERE s.program_id OPERATOR(pg_catalog.=) m.program_id;
    INSERT INTO loyalty.member_scores (member_id, program_id, fitted_at, x, t_x, "T", m_x, last_purchase,
                                       purchase_count, purchase_days, purchase_amount, last_purchase_at,
                                       p_alive, expected_purchases_year, expected_avg_spend, clv_year,
                                       purchase_model, prediction_failure)
    SELECT u.member_id, m.program_id, m.fitted_at, u.x, u.t_x, u."T", u.m_x, u.last_purchase,
           u.purchase_count, u.purchase_days, u.purchase_amount, u.last_purchase_at,
           sc.p_alive, sc.expected_purchases_year, sc.expected_avg_spend, sc.clv_year, sc.purchase_model, sc.prediction_failure
    FROM unnest($2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             u(member_id, x, t_x, "T", m_x, last_purchase, purchase_count, purchase_days, purchase_amount, last_purchase_at)
    JOIN loyalty.score_members(m, $2, $3, $4, $5, $6) sc ON sc.member_id OPERATOR(pg_catalog.=) u.member_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
