CREATE FUNCTION loyalty.models_rescore()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- a fit's row changed (set_purchase_model, or parameters edited by
    -- hand): its stored predictions follow, from the summaries stored with
    -- them; a fit that has none (not the latest) has nothing to follow
    PERFORM loyalty.store_member_scores(NEW, array_agg(s.member_id), array_agg(s.x), array_agg(s.t_x), array_agg(s."T"),
                                        array_agg(s.m_x), array_agg(s.last_purchase), array_agg(s.purchase_count),
                                        array_agg(s.purchase_days), array_agg(s.purchase_amount), array_agg(s.last_purchase_at))
    FROM loyalty.member_scores s
    WHERE s.program_id OPERATOR(pg_catalog.=) NEW.program_id AND s.fitted_at OPERATOR(pg_catalog.=) OLD.fitted_at
    HAVING count(*) OPERATOR(pg_catalog.>) 0;
    RETURN NULL;
END $$;
