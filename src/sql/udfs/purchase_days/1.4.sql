CREATE FUNCTION loyalty.purchase_days(program bigint, calibration_end date, time_unit text)
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH days AS (
        SELECT l.member_id, pg_catalog.timezone(p.time_zone, l.occurred_at)::pg_catalog.date AS day,
               pg_catalog.sum(l.amount) AS spend
        FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) l.program_id
        WHERE l.program_id OPERATOR(pg_catalog.=) $1 AND l.kind OPERATOR(pg_catalog.=) 'earn'
          AND pg_catalog.timezone(p.time_zone, l.occurred_at)::pg_catalog.date OPERATOR(pg_catalog.<=) $2
        GROUP BY 1, 2
    ), f AS (
        SELECT d.*, pg_catalog.min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, pg_catalog.count(*) OPERATOR(pg_catalog.-) 1,
           (pg_catalog.max(f.day) OPERATOR(pg_catalog.-) pg_catalog.min(f.day))::pg_catalog.numeric
               OPERATOR(pg_catalog./) u.days,
           ($2 OPERATOR(pg_catalog.-) pg_catalog.min(f.day))::pg_catalog.numeric OPERATOR(pg_catalog./) u.days,
           pg_catalog.avg(f.spend) FILTER (WHERE f.day OPERATOR(pg_catalog.>) f.first_day),
           pg_catalog.min(f.day), pg_catalog.max(f.day)
    FROM f, (SELECT CASE $3 WHEN 'day' THEN 1::pg_catalog.numeric WHEN 'week' THEN 7::pg_catalog.numeric END AS days) u
    WHERE u.days IS NOT NULL
    GROUP BY f.member_id, u.days
$$;
