-- ---------------------------------------------------------------------------
-- Referrals: codes per member, links from new members, bonuses on the new
-- member's first qualifying purchase.
-- ---------------------------------------------------------------------------
-- loyalty.refer links a new member (no purchase yet) to the owner of a code
-- and sets accounts.referral_pending; the C earn path then calls
-- loyalty.referral_purchase on each purchase while it is pending, in the
-- purchase's transaction, and the first purchase that reaches the program's
-- minimum pays both bonuses (awards keyed per referral, so never twice).

CREATE TABLE loyalty.referral_rules (
    program_id                  bigint PRIMARY KEY REFERENCES loyalty.programs,
    referrer_points             loyalty.points NOT NULL CHECK (referrer_points::bigint >= 0),
    referee_points              loyalty.points NOT NULL CHECK (referee_points::bigint >= 0),
    min_purchase_amount         numeric NOT NULL DEFAULT 0 CHECK (min_purchase_amount >= 0),
    max_referrals_per_referrer  integer CHECK (max_referrals_per_referrer > 0)
);
COMMENT ON TABLE loyalty.referral_rules IS 'Referral bonuses of a program, the qualifying purchase amount, and the cap per referrer';

CREATE TABLE loyalty.referral_codes (
    member_id   bigint NOT NULL,
    code        text NOT NULL,
    program_id  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, code)
);
-- codes are looked up by their text; unique per program
CREATE UNIQUE INDEX referral_codes_code_idx ON loyalty.referral_codes (program_id, code);
COMMENT ON TABLE loyalty.referral_codes IS 'Referral codes of members (unique per program)';

CREATE TABLE loyalty.referrals (
    member_id    bigint NOT NULL PRIMARY KEY,
    referrer     bigint NOT NULL,
    code         text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'rewarded')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewarded_at  timestamptz,
    entry_id     bigint
);
CREATE INDEX referrals_referrer_idx ON loyalty.referrals (referrer);
COMMENT ON TABLE loyalty.referrals IS 'Who referred whom (one referrer per member), and whether the bonuses were paid';

#include "udfs/set_referral_rules/1.4.sql"
COMMENT ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer) IS
    'Set a program''s referral bonuses, qualifying purchase amount and cap per referrer';

#include "udfs/referral_code/1.1.sql"
COMMENT ON FUNCTION loyalty.referral_code(bigint) IS 'The member''s referral code (8 unambiguous characters), created on first call';

-- Internal: why new_member may not be referred by referrer, or NULL.  Each
-- reason, once true, stays true (referrals are never deleted, purchases never
-- uncounted), so refer checks them before it locks anything as well as after.
#include "udfs/referral_refusal/1.3.sql"
COMMENT ON FUNCTION loyalty.referral_refusal(bigint, bigint) IS
    'Internal: the reason a referral of new_member by referrer is refused for good (already referred, already bought, a loop), or NULL';

#include "udfs/refer/1.4.sql"
COMMENT ON FUNCTION loyalty.refer(bigint, text) IS
    'Link a new member (before any purchase) to the owner of a referral code; refuses self-referral, a second referrer, loops and capped referrers (LY020); returns the referrer';

-- Internal: whether a referral waits for a purchase, through the C write path.
#include "udfs/set_referral_pending/1.4.sql"
COMMENT ON FUNCTION loyalty.set_referral_pending(bigint, boolean) IS
    'Internal: mark whether the member''s referral still waits for a qualifying purchase (accounts.referral_pending), under its lock';

-- Internal: called by the C earn path with the member's account locked.
#include "udfs/referral_purchase/1.4.sql"
COMMENT ON FUNCTION loyalty.referral_purchase(bigint, bigint, numeric) IS
    'Internal: on a referred member''s purchase, pay both referral bonuses once the purchase qualifies';

SELECT pg_catalog.pg_extension_config_dump('loyalty.referral_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.referral_codes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.referrals', '');

REVOKE ALL ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer),
    loyalty.referral_code(bigint), loyalty.refer(bigint, text),
    loyalty.referral_refusal(bigint, bigint),
    loyalty.referral_purchase(bigint, bigint, numeric),
    loyalty.set_referral_pending(bigint, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.referral_code(bigint), loyalty.refer(bigint, text) TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, anycompatible, integer) TO loyalty_admin;
