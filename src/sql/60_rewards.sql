-- ---------------------------------------------------------------------------
-- Rewards catalog, redemptions with voucher codes, money off an order.
-- ---------------------------------------------------------------------------
-- A redemption checks, under the member's lock: the reward is active and in
-- its window, the member's tier reaches its gate, the per-member limit; then
-- it takes a unit of stock with one conditional UPDATE (the reward row lock
-- orders concurrent buyers of the last unit: the second sees 0 and fails),
-- and spends the points through loyalty.redeem (first-to-expire-first).  Any
-- failure rolls all of it back.

CREATE TABLE loyalty.rewards (
    reward_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id       bigint NOT NULL REFERENCES loyalty.programs,
    code             text NOT NULL CHECK (code ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name             text NOT NULL CHECK (name <> ''),
    point_cost       loyalty.points NOT NULL CHECK (point_cost::bigint > 0),
    stock            bigint CHECK (stock >= 0),
    valid_from       timestamptz,
    valid_until      timestamptz,
    min_tier         loyalty.tier,
    per_member_limit integer CHECK (per_member_limit > 0),
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, code),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from)
);
COMMENT ON TABLE loyalty.rewards IS 'Reward catalog: point cost, stock (NULL: unlimited), validity window, tier gate, per-member limit';

CREATE TABLE loyalty.redemptions (
    member_id       bigint NOT NULL,
    redemption_id   bigint GENERATED ALWAYS AS IDENTITY,
    reward_id       bigint NOT NULL,
    points          loyalty.points NOT NULL,
    entry_id        bigint NOT NULL,
    voucher         text NOT NULL,
    status          text NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'cancelled')),
    idempotency_key text,
    channel         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz,
    cancel_entry    bigint,
    PRIMARY KEY (member_id, redemption_id),
    UNIQUE (member_id, idempotency_key)
);
-- A voucher is presented at the till, so it is looked up by itself.  Unique
-- keys of per-member tables include member_id (they must hold on a sharded
-- cluster, issue 8), so the index on the voucher alone is not UNIQUE.  A
-- voucher starts with its member's id, so vouchers of two members differ by
-- construction and the unique index below keeps a member's vouchers
-- distinct; the member id also lets a lookup go to one shard on Citus.
-- (Vouchers issued before 1.3 are 16 hex digits without the member id,
-- checked distinct across all members when they were issued.)
CREATE UNIQUE INDEX redemptions_member_voucher_idx ON loyalty.redemptions (member_id, voucher);
CREATE INDEX redemptions_voucher_idx ON loyalty.redemptions (voucher);
CREATE INDEX redemptions_reward_idx ON loyalty.redemptions (member_id, reward_id) WHERE status = 'issued';
COMMENT ON TABLE loyalty.redemptions IS 'Rewards redeemed by members, with their voucher code and the redeem ledger entry';
COMMENT ON COLUMN loyalty.redemptions.voucher IS 'Voucher code: the member id in hex, a dash, 16 random hex digits (gen_random_uuid); distinct across redemptions by construction';
COMMENT ON COLUMN loyalty.redemptions.entry_id IS 'The redeem ledger entry that paid for the reward';
COMMENT ON COLUMN loyalty.redemptions.cancel_entry IS 'The reverse ledger entry that gave the points back (cancelled redemptions)';

CREATE TABLE loyalty.redemption_rules (
    program_id          bigint PRIMARY KEY REFERENCES loyalty.programs,
    min_points          loyalty.points NOT NULL DEFAULT '1' CHECK (min_points::bigint > 0),
    max_points          loyalty.points CHECK (max_points::bigint > 0),
    max_share_of_order  numeric CHECK (max_share_of_order > 0 AND max_share_of_order <= 1),
    CHECK (max_points IS NULL OR max_points::bigint >= min_points::bigint)
);
COMMENT ON TABLE loyalty.redemption_rules IS 'Limits on paying part of an order with points: minimum and maximum points per order, maximum share of the order';

#include "udfs/create_reward/1.1.sql"
COMMENT ON FUNCTION loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer) IS
    'Add a reward to a program''s catalog; returns its id';

#include "udfs/restock_reward/1.0.sql"
COMMENT ON FUNCTION loyalty.restock_reward(bigint, bigint) IS 'Add (or, negative, remove) units of a reward''s stock; returns the new stock';

#include "udfs/redeem_reward/1.4.sql"
COMMENT ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) IS
    'Redeem a catalog reward: checks window, tier gate, per-member limit and stock atomically, spends the points, issues a voucher code';

#include "udfs/cancel_redemption/1.4.sql"
COMMENT ON FUNCTION loyalty.cancel_redemption(bigint, bigint, text) IS
    'Cancel a redemption: points back to their original lots, the unit back to stock; returns the points given back';

#include "udfs/set_redemption_rules/1.4.sql"
COMMENT ON FUNCTION loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible) IS
    'Limits on paying part of an order with points: minimum and maximum points per order, maximum share of the order amount';

#include "udfs/redeem_for_discount/1.4.sql"
COMMENT ON FUNCTION loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text) IS
    'Pay part of an order with points within the program''s limits; returns the discount (points x point value)';

SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rewards_reward_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.redemptions', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.redemptions_redemption_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.redemption_rules', '');

REVOKE ALL ON FUNCTION
    loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer),
    loyalty.restock_reward(bigint, bigint),
    loyalty.redeem_reward(bigint, bigint, text, text),
    loyalty.cancel_redemption(bigint, bigint, text),
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible),
    loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.redeem_reward(bigint, bigint, text, text),
    loyalty.cancel_redemption(bigint, bigint, text),
    loyalty.redeem_for_discount(bigint, anycompatible, numeric, text, text)
TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer),
    loyalty.restock_reward(bigint, bigint),
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, anycompatible)
TO loyalty_admin;
