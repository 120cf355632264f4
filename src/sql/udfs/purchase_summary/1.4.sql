CREATE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week',
                                         member_from bigint DEFAULT NULL, member_to bigint DEFAULT NULL)
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF time_unit IS NULL OR time_unit NOT IN ('day', 'week') THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Dynamic so that every call is planned with its own values: a member
    -- range, or a small program in a large ledger, reads the ledger through
    -- its primary key (member_id, entry_id) from the program's members, and a
    -- large program scans it.  The ledger has no program index (each index
    -- costs every write), the members table has one.
    RETURN QUERY EXECUTE $q$
    WITH days AS (
        SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
        FROM loyalty.programs p
        JOIN loyalty.members mb ON mb.program_id OPERATOR(pg_catalog.=) p.program_id
        JOIN loyalty.ledger l ON l.member_id OPERATOR(pg_catalog.=) mb.member_id
        WHERE p.program_id OPERATOR(pg_catalog.=) $1 AND l.program_id OPERATOR(pg_catalog.=) $1
          AND mb.member_id OPERATOR(pg_catalog.>=) $4 AND mb.member_id OPERATOR(pg_catalog.<=) $5
          AND l.member_id OPERATOR(pg_catalog.>=) $4 AND l.member_id OPERATOR(pg_catalog.<=) $5
          AND l.kind OPERATOR(pg_catalog.=) 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date OPERATOR(pg_catalog.<=) $2
        GROUP BY 1, 2
    ), f AS (
        SELECT d.*, min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, count(*) - 1,
           (max(f.day) - min(f.day))::numeric / $3,
           ($2 - min(f.day))::numeric / $3,
           avg(f.spend) FILTER (WHERE f.day > f.first_day),
           min(f.day), max(f.day)
    FROM f
    GROUP BY f.member_id
    $q$
    USING loyalty.require_program(program), calibration_end,
          CASE WHEN time_unit = 'day' THEN 1 ELSE 7 END,
          coalesce(member_from, -9223372036854775808), coalesce(member_to, 9223372036854775807);
END $$;
