CREATE FUNCTION loyalty.rules_version_bump() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE loyalty.programs p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
    WHERE p.program_id OPERATOR(pg_catalog.=) ANY (ARRAY[
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.program_id END,
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.program_id END]);
    RETURN NULL;
END $$;
