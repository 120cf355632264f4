CREATE FUNCTION loyalty.challenge_period(period text, period_days integer, valid_from timestamptz,
                                         valid_until timestamptz, at timestamptz, time_zone text, joined_at timestamptz)
RETURNS tstzrange
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The period of a challenge that a fact at `at` falls in, calendar
    -- periods in the program's time zone: the month or week of `at`; the
    -- first period_days days of membership; the challenge's own window; and
    -- for 'days' and 'streak' the period a first fact at `at` opens (N days
    -- from it; the streak from its week on, open-ended).
    SELECT CASE $1
        WHEN 'month' THEN tstzrange(date_trunc('month', $5 AT TIME ZONE $6) AT TIME ZONE $6,
                                    (date_trunc('month', $5 AT TIME ZONE $6) + interval '1 month') AT TIME ZONE $6)
        WHEN 'week' THEN tstzrange(date_trunc('week', $5 AT TIME ZONE $6) AT TIME ZONE $6,
                                   (date_trunc('week', $5 AT TIME ZONE $6) + interval '1 week') AT TIME ZONE $6)
        WHEN 'joining' THEN tstzrange($7, $7 + make_interval(days => $2))
        WHEN 'campaign' THEN tstzrange(coalesce($3, '-infinity'), $4)
        WHEN 'days' THEN tstzrange($5, $5 + make_interval(days => $2))
        WHEN 'streak' THEN tstzrange(date_trunc('week', $5 AT TIME ZONE $6) AT TIME ZONE $6, NULL)
        END
$$;
