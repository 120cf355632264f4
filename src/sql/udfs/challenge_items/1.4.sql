CREATE FUNCTION loyalty.challenge_items(items jsonb, more jsonb, sign integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- counts per item (a day, a week, a category) added (sign 1) or taken
    -- away (-1); an item whose count falls to zero is gone
    SELECT coalesce(jsonb_object_agg(k, n), '{}')
    FROM (SELECT u.k, sum(u.n) AS n
          FROM (SELECT e.key AS k, e.value::numeric AS n FROM jsonb_each_text(coalesce($1, '{}')) e
                UNION ALL
                SELECT e.key, $3 * e.value::numeric FROM jsonb_each_text(coalesce($2, '{}')) e) u
          GROUP BY u.k) g
    WHERE g.n > 0
$$;
