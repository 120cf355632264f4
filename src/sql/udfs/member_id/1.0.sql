CREATE FUNCTION loyalty.member_id(program bigint, channel text, external_id text)
RETURNS bigint
LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.member_id FROM loyalty.identities i
    WHERE i.program_id OPERATOR(pg_catalog.=) $1
      AND i.channel OPERATOR(pg_catalog.=) $2
      AND i.external_id OPERATOR(pg_catalog.=) $3
$$;
