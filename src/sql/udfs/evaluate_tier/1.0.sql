CREATE FUNCTION loyalty.evaluate_tier(member bigint)
RETURNS TABLE (tier loyalty.tier, qualified_tier loyalty.tier, metric text, value numeric,
               next_tier loyalty.tier, distance numeric, changed boolean)
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_changed boolean;
    v_metric text;
    v_value numeric;
    v_cur loyalty.tier;
    v_next record;
BEGIN
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT p.tier_metric INTO v_metric FROM loyalty.members m JOIN loyalty.programs p USING (program_id)
    WHERE m.member_id OPERATOR(pg_catalog.=) member;
    IF v_metric IS NULL THEN
        RAISE EXCEPTION 'the program of member % has no tiers', member USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;
    v_changed := loyalty.tier_after_write(member, 'evaluation');
    v_value := loyalty.tier_metric(member);
    SELECT a.tier INTO v_cur FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT t.rank, t.name, t.threshold INTO v_next FROM loyalty.tiers t
    JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
    WHERE m.member_id OPERATOR(pg_catalog.=) member AND NOT t.invitation_only
      AND t.rank OPERATOR(pg_catalog.>) coalesce(loyalty.tier_rank(v_cur), -1)
    ORDER BY t.rank LIMIT 1;
    RETURN QUERY SELECT v_cur, loyalty.qualified_tier(member), v_metric, v_value,
        CASE WHEN v_next.rank IS NOT NULL THEN loyalty.tier(v_next.rank, v_next.name) END,
        CASE WHEN v_next.rank IS NOT NULL THEN greatest(v_next.threshold OPERATOR(pg_catalog.-) v_value, 0) END,
        v_changed;
END $$;
