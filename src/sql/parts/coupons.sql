-- Coupons' objects, for the install script and the 1.3 -> 1.4 upgrade.

CREATE TABLE loyalty.coupon_campaigns (
    campaign_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id       bigint NOT NULL REFERENCES loyalty.programs,
    name             text NOT NULL CHECK (name <> ''),
    offer            text NOT NULL CHECK (offer IN ('percent_off', 'amount_off', 'free_item', 'bonus_points',
                                                    'points_multiplier')),
    value            numeric NOT NULL CHECK (value > 0 AND value < 'Infinity'),
    item             text,
    min_basket       numeric NOT NULL DEFAULT 0 CHECK (min_basket >= 0 AND min_basket < 'Infinity'),
    categories       text[],
    products         text[],
    channels         text[],
    valid_from       timestamptz,
    valid_until      timestamptz,
    min_tier_rank    integer,
    segments         text[],
    tags             text[],
    uses_per_code    integer CHECK (uses_per_code > 0),
    uses_per_member  integer CHECK (uses_per_member > 0),
    max_uses         bigint CHECK (max_uses > 0),
    budget           numeric CHECK (budget > 0 AND budget < 'Infinity'),
    uses             bigint NOT NULL DEFAULT 0 CHECK (uses >= 0),
    spent            numeric NOT NULL DEFAULT 0 CHECK (spent >= 0),
    combinable       boolean NOT NULL DEFAULT false,
    hold_ttl         interval NOT NULL DEFAULT '30 minutes' CHECK (hold_ttl > '0'),
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (offer <> 'percent_off' OR value <= 100),
    CHECK (offer <> 'points_multiplier' OR value > 1),
    CHECK (offer <> 'free_item' OR item IS NOT NULL),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from),
    UNIQUE (program_id, name)
);
COMMENT ON TABLE loyalty.coupon_campaigns IS
    'Coupon campaigns: an offer (percent or amount off, a free item, bonus points, a points multiplier), who and which baskets may use it, and its limits';
COMMENT ON COLUMN loyalty.coupon_campaigns.value IS
    'percent_off: percent (0-100] of the eligible amount; amount_off: money off (at most the eligible amount); free_item: the item''s price; bonus_points: points; points_multiplier: the base points of the eligible amount are multiplied by it (the points beyond the earn are credited)';
COMMENT ON COLUMN loyalty.coupon_campaigns.uses IS 'Uses held or captured (released, expired and reversed ones are given back)';
COMMENT ON COLUMN loyalty.coupon_campaigns.spent IS 'Budget used by held and captured uses: money for discounts and free items, points for point offers';
COMMENT ON COLUMN loyalty.coupon_campaigns.budget IS 'Most money (discount offers) or points (point offers) the campaign gives; NULL: no budget';
COMMENT ON COLUMN loyalty.coupon_campaigns.tags IS 'Only members with one of these tags (loyalty.tag_member) may use it; NULL: any member';
COMMENT ON COLUMN loyalty.coupon_campaigns.combinable IS 'May be used on an order together with other coupons (each of which must be combinable too)';

CREATE TABLE loyalty.coupon_codes (
    program_id   bigint NOT NULL,
    code         text NOT NULL CHECK (code ~ '^[0-9A-Z-]+$'),
    campaign_id  bigint NOT NULL,
    max_uses     integer CHECK (max_uses > 0),
    uses         integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, code),
    CHECK (max_uses IS NULL OR uses <= max_uses)
);
CREATE INDEX coupon_codes_campaign_idx ON loyalty.coupon_codes (campaign_id);
COMMENT ON TABLE loyalty.coupon_codes IS
    'Coupon codes (upper case): a campaign''s public code or its generated single-use codes, with the uses held or captured';

CREATE TABLE loyalty.coupon_redemptions (
    member_id        bigint NOT NULL,
    redemption_id    bigint GENERATED ALWAYS AS IDENTITY,
    program_id       bigint NOT NULL,
    campaign_id      bigint NOT NULL,
    code             text NOT NULL,
    status           text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'captured', 'released', 'expired', 'reversed')),
    channel          text,
    reference        text,
    basket_amount    numeric,
    discount         numeric NOT NULL DEFAULT 0,
    points           bigint NOT NULL DEFAULT 0,
    free_item        text,
    entry_id         bigint,
    idempotency_key  text,
    request_hash     text,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    PRIMARY KEY (member_id, redemption_id)
);
CREATE UNIQUE INDEX coupon_redemptions_key_idx ON loyalty.coupon_redemptions (member_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX coupon_redemptions_reference_idx ON loyalty.coupon_redemptions (member_id, reference)
    WHERE reference IS NOT NULL;
CREATE INDEX coupon_redemptions_held_idx ON loyalty.coupon_redemptions (expires_at) WHERE status = 'held';
COMMENT ON TABLE loyalty.coupon_redemptions IS
    'Uses of coupons: held at checkout, captured with the order (the bonus points credited then), released, expired, or reversed by a refund';
COMMENT ON COLUMN loyalty.coupon_redemptions.discount IS 'Money off the order (percent_off, amount_off, free_item)';
COMMENT ON COLUMN loyalty.coupon_redemptions.points IS 'Bonus points (bonus_points, points_multiplier), credited at capture (entry_id)';

-- Ceilings on stacking, per program: earning rules that multiply each other,
-- and coupons on one order.
ALTER TABLE loyalty.programs ADD COLUMN max_earn_multiplier numeric CHECK (max_earn_multiplier >= 1),
    ADD COLUMN max_coupon_share numeric CHECK (max_coupon_share > 0 AND max_coupon_share <= 1);
COMMENT ON COLUMN loyalty.programs.max_earn_multiplier IS
    'A purchase earns at most its base points (amount x earn_rate) times this, however its rules stack; NULL: no ceiling';
COMMENT ON COLUMN loyalty.programs.max_coupon_share IS
    'The coupons of one order give at most this share of its amount, as discount or as points at point_value; NULL: no ceiling';

SELECT pg_catalog.pg_extension_config_dump('loyalty.coupon_campaigns', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.coupon_campaigns_campaign_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.coupon_codes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.coupon_redemptions', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.coupon_redemptions_redemption_id_seq', '');

INSERT INTO loyalty.event_kinds VALUES
    ('coupon.redeemed', 'A coupon was used on an order (captured): the code, campaign, discount and points');
-- (the programs' default event kinds are set in parts/challenges.sql)

#include "udfs/coupon_check_char/1.4.sql"
COMMENT ON FUNCTION loyalty.coupon_check_char(text) IS
    'The check character (Luhn mod 32 over Crockford''s base 32) that generated coupon codes end with';
#include "udfs/create_coupon_campaign/1.4.sql"
COMMENT ON FUNCTION loyalty.create_coupon_campaign(bigint, text, text, anycompatible, text, text, anycompatible, text[], text[], text[],
    timestamptz, timestamptz, integer, text[], integer, integer, bigint, anycompatible, boolean, interval, text[]) IS
    'Create a coupon campaign (an offer, its conditions and limits), with its public code if given; returns its id';
#include "udfs/generate_coupon_codes/1.4.sql"
COMMENT ON FUNCTION loyalty.generate_coupon_codes(bigint, integer, text, integer) IS
    'Generate unique single-use codes for a campaign (prefix, random characters of Crockford''s base 32, a check character); returns them';
#include "udfs/coupon_check_basket/1.4.sql"
COMMENT ON FUNCTION loyalty.coupon_check_basket(bigint, text, numeric, jsonb) IS
    'Internal: refuse a coupon request without a member or code, or with a bad amount or lines';
#include "udfs/coupon_offer/1.4.sql"
COMMENT ON FUNCTION loyalty.coupon_offer(bigint, text, numeric, jsonb, text, text) IS
    'Internal: whether a coupon applies to a member''s basket and what it gives (validate_coupon and redeem_coupon)';
#include "udfs/coupon_give_back/1.4.sql"
COMMENT ON FUNCTION loyalty.coupon_give_back(bigint, text, bigint, numeric) IS
    'Internal: give a use and its cost back to a code and its campaign';
#include "udfs/expire_coupon_holds/1.4.sql"
COMMENT ON FUNCTION loyalty.expire_coupon_holds(bigint, text) IS
    'Internal: expire a code''s overdue holds, giving their uses back; returns how many';
#include "udfs/release_expired_coupons/1.4.sql"
COMMENT ON PROCEDURE loyalty.release_expired_coupons() IS
    'Expire every overdue coupon hold, code by code, committing after each (ready for pg_cron)';
#include "udfs/validate_coupon/1.4.sql"
COMMENT ON FUNCTION loyalty.validate_coupon(bigint, text, anycompatible, jsonb, text, text) IS
    'Whether a coupon applies to this basket, why not (reason), and what it would give (discount, points, free item); writes nothing';
#include "udfs/redeem_coupon/1.4.sql"
COMMENT ON FUNCTION loyalty.redeem_coupon(bigint, text, anycompatible, jsonb, text, text, text) IS
    'Use a coupon at checkout: hold one use (and its budget) until capture or release; returns the redemption; LY070 when it does not apply, LY071 when a limit is reached';
#include "udfs/capture_coupon/1.4.sql"
COMMENT ON FUNCTION loyalty.capture_coupon(bigint, bigint) IS
    'Complete a held coupon use with the order: its bonus points are credited; returns them';
#include "udfs/release_coupon/1.4.sql"
COMMENT ON FUNCTION loyalty.release_coupon(bigint, bigint, text) IS
    'Give a coupon use back: a held one is released; a captured one (its order refunded) is reversed, its points taken back; returns the new status';
#include "udfs/set_stacking_rules/1.4.sql"
COMMENT ON FUNCTION loyalty.set_stacking_rules(bigint, anycompatible, anycompatible) IS
    'Set a program''s ceilings: the most a purchase earns over its base points however its rules stack, and the most of an order''s amount its coupons give';
#include "udfs/coupons_refunded/1.4.sql"
COMMENT ON FUNCTION loyalty.coupons_refunded(bigint, text) IS
    'Internal (refund, order_trigger): give back the coupons of an order refunded in full or cancelled; returns how many';

#include "udfs/coupon_performance/1.4.sql"
COMMENT ON VIEW loyalty.coupon_performance IS 'Coupon campaigns: uses, members, what they gave and cost, and the revenue of the orders they were used on';
COMMENT ON COLUMN loyalty.coupon_performance.program_id IS 'Program';
COMMENT ON COLUMN loyalty.coupon_performance.campaign_id IS 'Campaign';
COMMENT ON COLUMN loyalty.coupon_performance.campaign IS 'Campaign name';
COMMENT ON COLUMN loyalty.coupon_performance.offer IS 'percent_off, amount_off, free_item, bonus_points or points_multiplier';
COMMENT ON COLUMN loyalty.coupon_performance.active IS 'Whether the campaign is offered';
COMMENT ON COLUMN loyalty.coupon_performance.codes IS 'Codes of the campaign (a public code, or the generated ones)';
COMMENT ON COLUMN loyalty.coupon_performance.uses IS 'Uses captured with an order (and not reversed)';
COMMENT ON COLUMN loyalty.coupon_performance.members IS 'Members with a captured use';
COMMENT ON COLUMN loyalty.coupon_performance.reversed IS 'Uses undone by a refund or a cancelled order';
COMMENT ON COLUMN loyalty.coupon_performance.abandoned IS 'Uses held at checkout, then released or expired';
COMMENT ON COLUMN loyalty.coupon_performance.discount IS 'Money taken off orders by captured uses';
COMMENT ON COLUMN loyalty.coupon_performance.points IS 'Points credited by captured uses';
COMMENT ON COLUMN loyalty.coupon_performance.cost IS 'discount + points at the program''s point value';
COMMENT ON COLUMN loyalty.coupon_performance.revenue IS 'Amounts of the orders the captured uses were on';
COMMENT ON COLUMN loyalty.coupon_performance.cost_per_use IS 'cost / uses';
COMMENT ON COLUMN loyalty.coupon_performance.budget IS 'The campaign''s budget (money or points; NULL: none)';
COMMENT ON COLUMN loyalty.coupon_performance.budget_used IS 'Budget taken by held and captured uses';
REVOKE ALL ON loyalty.coupon_performance FROM PUBLIC;
GRANT SELECT ON loyalty.coupon_performance TO loyalty_analyst, loyalty_admin;

REVOKE ALL ON FUNCTION loyalty.coupon_check_char(text), loyalty.coupons_refunded(bigint, text),
    loyalty.coupon_check_basket(bigint, text, numeric, jsonb),
    loyalty.create_coupon_campaign(bigint, text, text, anycompatible, text, text, anycompatible, text[], text[], text[],
        timestamptz, timestamptz, integer, text[], integer, integer, bigint, anycompatible, boolean, interval, text[]),
    loyalty.generate_coupon_codes(bigint, integer, text, integer),
    loyalty.coupon_offer(bigint, text, numeric, jsonb, text, text), loyalty.coupon_give_back(bigint, text, bigint, numeric),
    loyalty.expire_coupon_holds(bigint, text),
    loyalty.validate_coupon(bigint, text, anycompatible, jsonb, text, text),
    loyalty.redeem_coupon(bigint, text, anycompatible, jsonb, text, text, text), loyalty.capture_coupon(bigint, bigint),
    loyalty.release_coupon(bigint, bigint, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.release_expired_coupons() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.validate_coupon(bigint, text, anycompatible, jsonb, text, text),
    loyalty.redeem_coupon(bigint, text, anycompatible, jsonb, text, text, text), loyalty.capture_coupon(bigint, bigint),
    loyalty.release_coupon(bigint, bigint, text) TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.create_coupon_campaign(bigint, text, text, anycompatible, text, text, anycompatible, text[], text[], text[],
        timestamptz, timestamptz, integer, text[], integer, integer, bigint, anycompatible, boolean, interval, text[]),
    loyalty.generate_coupon_codes(bigint, integer, text, integer) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.release_expired_coupons() TO loyalty_admin;
REVOKE ALL ON FUNCTION loyalty.set_stacking_rules(bigint, anycompatible, anycompatible) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.set_stacking_rules(bigint, anycompatible, anycompatible) TO loyalty_admin;
