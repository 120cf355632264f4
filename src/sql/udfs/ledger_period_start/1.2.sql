CREATE FUNCTION loyalty.ledger_period_start(t timestamptz, period interval)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_months integer := (pg_catalog.date_part('year', period) * 12 + pg_catalog.date_part('month', period))::integer;
    v_days integer := pg_catalog.date_part('day', period)::integer;
    v_utc timestamp := t AT TIME ZONE 'UTC';
    v_k bigint;
BEGIN
    IF v_months > 0 THEN
        v_k := (pg_catalog.date_part('year', v_utc)::integer - 2000) * 12 + pg_catalog.date_part('month', v_utc)::integer - 1;
        v_k := pg_catalog.floor(v_k::numeric / v_months)::bigint * v_months;
        RETURN ('2000-01-01'::timestamp + pg_catalog.make_interval(months => v_k::integer)) AT TIME ZONE 'UTC';
    END IF;
    v_k := pg_catalog.floor(pg_catalog.date_part('epoch', v_utc - '2000-01-03'::timestamp)::numeric / 86400)::bigint;
    v_k := pg_catalog.floor(v_k::numeric / v_days)::bigint * v_days;
    RETURN ('2000-01-03'::timestamp + pg_catalog.make_interval(days => v_k::integer)) AT TIME ZONE 'UTC';
END $$;
