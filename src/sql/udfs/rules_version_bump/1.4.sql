CREATE FUNCTION loyalty.rules_version_bump() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_programs text;
    v_ids bigint[] := ARRAY[
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.program_id END,
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.program_id END];
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.=) ANY (ARRAY['loyalty.earning_rules'::regclass, 'loyalty.tiers'::regclass,
                                                   'loyalty.challenges'::regclass]::oid[]) THEN
        UPDATE loyalty.programs p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
        WHERE p.program_id OPERATOR(pg_catalog.=) ANY (v_ids);
        RETURN NULL;
    END IF;
    -- a shard of a Citus reference table (Citus's catalog is read by EXECUTE:
    -- it does not exist without Citus)
    EXECUTE 'SELECT pg_catalog.shard_name(s.logicalrelid, s.shardid) FROM pg_catalog.pg_dist_shard s
             WHERE s.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.programs''::pg_catalog.regclass'
        INTO v_programs;
    IF v_programs IS NULL OR pg_catalog.to_regclass(v_programs) IS NULL THEN
        RAISE EXCEPTION 'no copy of loyalty.programs on this node to record the change of %.% in', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Rule, tier and challenge changes bump loyalty.programs.rules_version on the node of the changed copy.',
                  HINT = 'Replicate the reference tables to this node: SELECT replicate_reference_tables().';
    END IF;
    EXECUTE pg_catalog.format('UPDATE %s p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
                               WHERE p.program_id OPERATOR(pg_catalog.=) ANY ($1)', v_programs)
        USING v_ids;
    RETURN NULL;
END $$;
