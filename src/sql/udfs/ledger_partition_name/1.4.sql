CREATE FUNCTION loyalty.ledger_partition_name(start timestamptz, stop timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'ledger_p' || pg_catalog.to_char(start AT TIME ZONE 'UTC',
               CASE WHEN p.months > 0 AND p.months % 12 = 0 THEN 'YYYY'
                    WHEN p.months = 3 THEN 'YYYY"q"Q'
                    WHEN p.months > 0 THEN 'YYYY_MM'
                    WHEN p.days = 7 THEN 'IYYY"w"IW'
                    ELSE 'YYYY_MM_DD' END)
    FROM (SELECT (pg_catalog.date_part('year', a.period) * 12 + pg_catalog.date_part('month', a.period))::integer AS months,
                 pg_catalog.date_part('day', a.period)::integer AS days
          FROM (SELECT pg_catalog.age(stop AT TIME ZONE 'UTC', start AT TIME ZONE 'UTC') AS period) a) p
$$;
