CREATE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week',
                                         member_from bigint DEFAULT NULL, member_to bigint DEFAULT NULL)
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- a program's summary planned with its values on every call: a small
-- program in a large ledger goes from the members' index into the ledger's
-- primary key, a large one scans the ledger
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    v_days integer := CASE WHEN time_unit = 'day' THEN 1 WHEN time_unit = 'week' THEN 7 END;
    v_from bigint := coalesce(member_from, '-9223372036854775808'::bigint);
    v_to bigint := coalesce(member_to, '9223372036854775807'::bigint);
BEGIN
    IF v_days IS NULL THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty.require_program(program);
    IF member_from IS NOT NULL AND member_to IS NOT NULL
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'citus') THEN
        -- a member range (one member, for the views): one plan for every
        -- range, through the primary keys, kept for the session instead of
        -- planned again per member (undone when the function returns); not
        -- on Citus, which cannot plan a distributed query with parameters
        PERFORM pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true);
    END IF;
    RETURN QUERY
    WITH days AS (
        -- the program's members (an index), and their ledger rows through
        -- its primary key (member_id, entry_id): the ledger has no program
        -- index, each index costing every write
        SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
        FROM loyalty.programs p
        JOIN loyalty.members mb ON mb.program_id OPERATOR(pg_catalog.=) p.program_id
        JOIN loyalty.ledger l ON l.member_id OPERATOR(pg_catalog.=) mb.member_id
        WHERE p.program_id OPERATOR(pg_catalog.=) $1 AND l.program_id OPERATOR(pg_catalog.=) $1
          AND mb.member_id OPERATOR(pg_catalog.>=) v_from AND mb.member_id OPERATOR(pg_catalog.<=) v_to
          AND l.member_id OPERATOR(pg_catalog.>=) v_from AND l.member_id OPERATOR(pg_catalog.<=) v_to
          AND l.kind OPERATOR(pg_catalog.=) 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date OPERATOR(pg_catalog.<=) $2
        GROUP BY 1, 2
    ), f AS (
        SELECT d.member_id, d.day, d.spend, min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, count(*) - 1,
           (max(f.day) - min(f.day))::numeric / v_days,
           ($2 - min(f.day))::numeric / v_days,
           avg(f.spend) FILTER (WHERE f.day > f.first_day),
           min(f.day), max(f.day)
    FROM f
    GROUP BY f.member_id;
END $$;
