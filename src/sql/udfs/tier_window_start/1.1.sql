CREATE FUNCTION loyalty.tier_window_start(member bigint, as_of timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p.tier_window
        WHEN 'rolling' THEN $2 - make_interval(months => p.tier_window_months)
        WHEN 'calendar' THEN
            ((date_trunc('year', $2 AT TIME ZONE p.time_zone)
              + make_interval(months => ((extract(month FROM $2 AT TIME ZONE p.time_zone)::integer - 1)
                                          / p.tier_window_months) * p.tier_window_months))
             AT TIME ZONE p.time_zone)
        ELSE (SELECT m.joined_at + make_interval(months => p.tier_window_months
                    * floor((extract(year FROM age($2, m.joined_at)) * 12 + extract(month FROM age($2, m.joined_at)))
                            / p.tier_window_months)::integer))
    END
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = loyalty.require_member($1)
$$;
