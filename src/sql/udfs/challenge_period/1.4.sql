CREATE FUNCTION loyalty.challenge_period(period text, period_days integer, valid_from timestamptz,
                                         valid_until timestamptz, at timestamptz, time_zone text, joined_at timestamptz)
RETURNS tstzrange
AS 'MODULE_PATHNAME', 'loyalty_challenge_period'
LANGUAGE C STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp;
