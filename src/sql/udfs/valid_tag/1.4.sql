CREATE FUNCTION loyalty.valid_tag(tag text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT tag OPERATOR(pg_catalog.~) '^[a-z0-9][a-z0-9_.:-]{0,62}$'
$$;
