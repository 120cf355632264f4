CREATE FUNCTION loyalty.set_earning_rule_active(rule bigint, active boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE loyalty.earning_rules r SET active = set_earning_rule_active.active
    WHERE r.rule_id OPERATOR(pg_catalog.=) rule;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'earning rule % does not exist', rule USING ERRCODE = 'no_data_found';
    END IF;
END $$;
