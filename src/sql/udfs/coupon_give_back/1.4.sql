CREATE FUNCTION loyalty.coupon_give_back(program bigint, code text, campaign bigint, cost numeric)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE loyalty.coupon_codes k SET uses = k.uses - 1
    WHERE k.program_id OPERATOR(pg_catalog.=) coupon_give_back.program AND k.code OPERATOR(pg_catalog.=) coupon_give_back.code;
    UPDATE loyalty.coupon_campaigns c SET uses = c.uses - 1, spent = c.spent - coupon_give_back.cost
    WHERE c.campaign_id OPERATOR(pg_catalog.=) coupon_give_back.campaign;
$$;
