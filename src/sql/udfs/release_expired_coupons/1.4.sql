CREATE PROCEDURE loyalty.release_expired_coupons()
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    -- code by code, each in a transaction of its own (ready for pg_cron)
    FOR r IN SELECT DISTINCT x.program_id, x.code FROM loyalty.coupon_redemptions x
             WHERE x.status = 'held' AND x.expires_at <= now() ORDER BY 1, 2
    LOOP
        PERFORM loyalty.expire_coupon_holds(r.program_id, r.code);
        COMMIT;
    END LOOP;
END $$;
