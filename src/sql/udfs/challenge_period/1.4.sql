CREATE FUNCTION loyalty.challenge_period(period text, period_days integer, valid_from timestamptz,
                                         valid_until timestamptz, at timestamptz, time_zone text, joined_at timestamptz)
RETURNS tstzrange
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- The period of a challenge that a fact at `at` falls in, calendar
    -- periods in the program's time zone: the month or week of `at`; the
    -- first period_days days of membership; the challenge's own window; and
    -- for 'days' and 'streak' the period a first fact at `at` opens (N days
    -- from it; the streak from its week on, open-ended).
    SELECT CASE $1
        WHEN 'month' THEN pg_catalog.tstzrange(
            pg_catalog.timezone($6, pg_catalog.date_trunc('month', pg_catalog.timezone($6, $5))),
            pg_catalog.timezone($6, pg_catalog.date_trunc('month', pg_catalog.timezone($6, $5)) OPERATOR(pg_catalog.+) interval '1 month'))
        WHEN 'week' THEN pg_catalog.tstzrange(
            pg_catalog.timezone($6, pg_catalog.date_trunc('week', pg_catalog.timezone($6, $5))),
            pg_catalog.timezone($6, pg_catalog.date_trunc('week', pg_catalog.timezone($6, $5)) OPERATOR(pg_catalog.+) interval '1 week'))
        WHEN 'joining' THEN pg_catalog.tstzrange($7, $7 OPERATOR(pg_catalog.+) pg_catalog.make_interval(days => $2))
        WHEN 'campaign' THEN pg_catalog.tstzrange(coalesce($3, '-infinity'), $4)
        WHEN 'days' THEN pg_catalog.tstzrange($5, $5 OPERATOR(pg_catalog.+) pg_catalog.make_interval(days => $2))
        WHEN 'streak' THEN pg_catalog.tstzrange(
            pg_catalog.timezone($6, pg_catalog.date_trunc('week', pg_catalog.timezone($6, $5))), NULL)
        END
$$;
