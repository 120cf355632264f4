CREATE FUNCTION loyalty.purchase_summary_rows(program bigint, calibration_end date, unit_days integer,
                                              member_from bigint, member_to bigint)
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE sql STABLE PARALLEL SAFE
-- a standard body, its names bound at creation, and no SET clause: so the
-- planner inlines it into purchase_summary's queries and sees their values
BEGIN ATOMIC
    WITH days AS (
        -- from the program's members (an index) into the ledger through its
        -- primary key (member_id, entry_id), or a scan of the ledger where
        -- the program is most of it
        SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
        FROM loyalty.programs p
        JOIN loyalty.members mb ON mb.program_id OPERATOR(pg_catalog.=) p.program_id
        JOIN loyalty.ledger l ON l.member_id OPERATOR(pg_catalog.=) mb.member_id
        WHERE p.program_id OPERATOR(pg_catalog.=) purchase_summary_rows.program
          AND l.program_id OPERATOR(pg_catalog.=) purchase_summary_rows.program
          AND mb.member_id OPERATOR(pg_catalog.>=) purchase_summary_rows.member_from
          AND mb.member_id OPERATOR(pg_catalog.<=) purchase_summary_rows.member_to
          AND l.member_id OPERATOR(pg_catalog.>=) purchase_summary_rows.member_from
          AND l.member_id OPERATOR(pg_catalog.<=) purchase_summary_rows.member_to
          AND l.kind OPERATOR(pg_catalog.=) 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date OPERATOR(pg_catalog.<=) purchase_summary_rows.calibration_end
        GROUP BY 1, 2
    ), f AS (
        SELECT d.member_id, d.day, d.spend, min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, count(*) - 1,
           (max(f.day) - min(f.day))::numeric / purchase_summary_rows.unit_days,
           (purchase_summary_rows.calibration_end - min(f.day))::numeric / purchase_summary_rows.unit_days,
           avg(f.spend) FILTER (WHERE f.day > f.first_day),
           min(f.day), max(f.day)
    FROM f
    GROUP BY f.member_id;
END;
