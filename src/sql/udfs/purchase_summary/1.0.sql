CREATE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week')
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH days AS (
        SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
        FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
        WHERE l.program_id = $1 AND l.kind = 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date <= $2
        GROUP BY 1, 2
    ), f AS (
        SELECT d.*, min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, count(*) - 1,
           (max(f.day) - min(f.day))::numeric / u.days,
           ($2 - min(f.day))::numeric / u.days,
           avg(f.spend) FILTER (WHERE f.day > f.first_day),
           min(f.day), max(f.day)
    FROM f, (SELECT CASE $3 WHEN 'day' THEN 1 WHEN 'week' THEN 7 END AS days) u
    WHERE u.days IS NOT NULL
    GROUP BY f.member_id, u.days
$$;
