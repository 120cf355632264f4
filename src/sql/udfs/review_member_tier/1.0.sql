CREATE FUNCTION loyalty.review_member_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_metric text;
    v_changed bigint;
BEGIN
    SELECT a.program_id, p.tier_metric INTO v_program, v_metric
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) a.program_id
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_metric IS NULL THEN
        RETURN false;
    END IF;
    SELECT b.changed INTO v_changed
    FROM loyalty.review_tiers_batch(v_program, as_of, member OPERATOR(pg_catalog.-) 1, 1) b;
    RETURN v_changed OPERATOR(pg_catalog.>) 0;
END $$;
