-- Households' objects, for the install script and the 1.3 -> 1.4 upgrade.

CREATE TABLE loyalty.households (
    household_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id    bigint NOT NULL REFERENCES loyalty.programs,
    name          text,
    owner         bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dissolved_at  timestamptz,
    pool_member   bigint
);
COMMENT ON TABLE loyalty.households IS
    'Households (family accounts) of a program: an owner and members who redeem from their combined points, or from a pool fed by a share of their earnings; points stay with who earned them';
COMMENT ON COLUMN loyalty.households.pool_member IS
    'The account (a member row with status pool) that holds the household''s pool, in programs that pool a share of earnings; NULL: no pool';
CREATE UNIQUE INDEX households_pool_idx ON loyalty.households (pool_member) WHERE pool_member IS NOT NULL;

-- A household's pool is an account of its own: its lots, expiry, liability
-- and refunds are the ledger's, and no second kind of balance exists.  It is
-- a member row that no person owns (status pool), which every call for
-- members refuses.
ALTER TABLE loyalty.members DROP CONSTRAINT members_status_check,
    ADD CONSTRAINT members_status_check CHECK (status = ANY (ARRAY['active', 'suspended', 'closed', 'pool']));
ALTER TABLE loyalty.programs ADD COLUMN household_pool_share numeric
    CHECK (household_pool_share > 0 AND household_pool_share <= 1);
COMMENT ON COLUMN loyalty.programs.household_pool_share IS
    'Share of each earn also credited to the earner''s household pool (0.1: a tenth, rounded by the program''s rounding); NULL: households redeem from their members'' combined points instead (loyalty.set_household_rules)';

CREATE TABLE loyalty.household_members (
    member_id      bigint NOT NULL,
    membership_id  bigint GENERATED ALWAYS AS IDENTITY,
    household_id   bigint NOT NULL,
    program_id     bigint NOT NULL,
    role           text NOT NULL CHECK (role IN ('owner', 'adult', 'child')),
    joined_at      timestamptz NOT NULL DEFAULT now(),
    left_at        timestamptz,
    PRIMARY KEY (member_id, membership_id)
);
-- a member is in at most one household at a time
CREATE UNIQUE INDEX household_members_current_idx ON loyalty.household_members (member_id) WHERE left_at IS NULL;
CREATE INDEX household_members_household_idx ON loyalty.household_members (household_id) WHERE left_at IS NULL;
COMMENT ON TABLE loyalty.household_members IS
    'Who is in which household, with the role (owner, adult, child), since when and until when (rows stay when members leave)';

CREATE TABLE loyalty.household_invitations (
    member_id     bigint NOT NULL,
    household_id  bigint NOT NULL,
    program_id    bigint NOT NULL,
    role          text NOT NULL CHECK (role IN ('adult', 'child')),
    invited_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (member_id, household_id)
);
COMMENT ON TABLE loyalty.household_invitations IS
    'Open invitations to join a household (loyalty.invite_to_household), accepted with loyalty.join_household within 14 days';

CREATE TABLE loyalty.household_rules (
    program_id            bigint PRIMARY KEY REFERENCES loyalty.programs,
    max_members           integer NOT NULL DEFAULT 6 CHECK (max_members BETWEEN 2 AND 100),
    child_can_redeem      boolean NOT NULL DEFAULT false,
    adult_monthly_points  bigint CHECK (adult_monthly_points > 0),
    child_monthly_points  bigint CHECK (child_monthly_points > 0),
    household_tier        boolean NOT NULL DEFAULT false,
    pool_on_dissolve      text NOT NULL DEFAULT 'split' CHECK (pool_on_dissolve IN ('split', 'forfeit'))
);
COMMENT ON TABLE loyalty.household_rules IS
    'Household rules of a program: size, whether children may redeem, what an adult or a child may redeem from the household per month (NULL: no limit), whether members qualify for tiers on the household''s combined metric, and what happens to a pool when its household is dissolved; without a row the defaults hold';
COMMENT ON COLUMN loyalty.household_rules.pool_on_dissolve IS
    'split: the pool''s spendable points go to the members, in proportion to what their earnings gave it, keeping their expiry; forfeit: they return to the program.  Points not yet spendable are forfeited either way';

-- Which earn fed which pool, by how much: a refund of the purchase takes the
-- share back, and a dissolved pool is split by these contributions.
CREATE TABLE loyalty.household_shares (
    member_id     bigint NOT NULL,
    entry_id      bigint NOT NULL,
    program_id    bigint NOT NULL,
    household_id  bigint NOT NULL,
    pool_member   bigint NOT NULL,
    share_entry   bigint NOT NULL,
    points        bigint NOT NULL CHECK (points > 0),
    reversed      bigint NOT NULL DEFAULT 0 CHECK (reversed BETWEEN 0 AND points),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, entry_id)
);
CREATE INDEX household_shares_household_idx ON loyalty.household_shares (household_id);
COMMENT ON TABLE loyalty.household_shares IS
    'The share of each earn credited to a household pool: the earner''s entry, the pool''s entry, the points and how many of them refunds took back';

SELECT pg_catalog.pg_extension_config_dump('loyalty.households', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.households_household_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.household_members', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.household_members_membership_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.household_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.household_invitations', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.household_shares', '');

#include "udfs/household_lock/1.4.sql"
COMMENT ON FUNCTION loyalty.household_lock(bigint) IS
    'Internal: lock a household (before any of its members) and return it; refuses a dissolved one';
#include "udfs/start_household/1.4.sql"
COMMENT ON FUNCTION loyalty.start_household(bigint, text) IS 'Create a household owned by a member (in no household yet); returns its id';
#include "udfs/add_household_member/1.4.sql"
COMMENT ON FUNCTION loyalty.add_household_member(bigint, bigint, text) IS
    'Add a member of the program (in no household yet) to a household as adult or child';
#include "udfs/invite_to_household/1.4.sql"
COMMENT ON FUNCTION loyalty.invite_to_household(bigint, bigint, text) IS
    'Invite a member of the program into a household as adult or child; returns until when the invitation is open (14 days)';
#include "udfs/join_household/1.4.sql"
COMMENT ON FUNCTION loyalty.join_household(bigint, bigint) IS
    'Accept an open invitation: the member joins the household with the role it was invited as (returned)';
#include "udfs/leave_household/1.4.sql"
COMMENT ON FUNCTION loyalty.leave_household(bigint, bigint) IS
    'A member leaves its household (the owner names a successor or dissolves it first); points stay with who earned them';
#include "udfs/remove_household_member/1.4.sql"
COMMENT ON FUNCTION loyalty.remove_household_member(bigint, bigint) IS
    'Remove a member (not the owner) from a household; its points stay with it';
#include "udfs/change_household_owner/1.4.sql"
COMMENT ON FUNCTION loyalty.change_household_owner(bigint, bigint) IS 'Make an adult of the household its owner (the old owner stays as adult)';
#include "udfs/dissolve_household/1.4.sql"
COMMENT ON FUNCTION loyalty.dissolve_household(bigint) IS 'Dissolve a household: every member leaves, points stay with who earned them; returns how many left';
#include "udfs/household_open_pool/1.4.sql"
COMMENT ON FUNCTION loyalty.household_open_pool(bigint) IS
    'Internal: give a household its pool (an account with status pool) unless it has one; returns it';
#include "udfs/household_close/1.4.sql"
COMMENT ON FUNCTION loyalty.household_close(bigint, text) IS
    'Internal (dissolve_household): split the pool''s spendable points among the members by their contributions, or return them, forfeit the rest and close the pool; returns the points split';
#include "udfs/set_household_rules/1.4.sql"
COMMENT ON FUNCTION loyalty.set_household_rules(bigint, integer, boolean, bigint, bigint, boolean, anycompatible, text) IS
    'Set a program''s household size, whether children may redeem, the monthly redemption limits of adults and children, household tiers (qualification on the household''s combined metric), the share of each earn also credited to a household pool (NULL: pooled redemption instead) and what a dissolved household''s pool does (split or forfeit)';
#include "udfs/household_redeem/1.4.sql"
COMMENT ON FUNCTION loyalty.household_redeem(bigint, numeric, text, text, text) IS
    'Redeem from the household''s combined spendable points, first-to-expire-first across its members (each member''s share a redeem entry of its own); returns the redeemer''s entry';

#include "udfs/household_summary/1.4.sql"
COMMENT ON VIEW loyalty.household_summary IS 'Households with their members, combined points, liability, earnings and redemptions';
COMMENT ON COLUMN loyalty.household_summary.program_id IS 'Program';
COMMENT ON COLUMN loyalty.household_summary.household_id IS 'Household';
COMMENT ON COLUMN loyalty.household_summary.name IS 'Name given at creation';
COMMENT ON COLUMN loyalty.household_summary.owner IS 'Owning member';
COMMENT ON COLUMN loyalty.household_summary.members IS 'Members now (owner included)';
COMMENT ON COLUMN loyalty.household_summary.children IS 'Members with the child role';
COMMENT ON COLUMN loyalty.household_summary.points IS 'Combined posted balance of the members (the pool not included)';
COMMENT ON COLUMN loyalty.household_summary.liability IS 'Combined points at the program''s point value';
COMMENT ON COLUMN loyalty.household_summary.points_earned IS 'Combined lifetime earnings of the current members';
COMMENT ON COLUMN loyalty.household_summary.household_redemptions IS 'Points redeemed from the household (household_redeem)';
COMMENT ON COLUMN loyalty.household_summary.pool_points IS 'Balance of the household''s pool (NULL: no pool)';
COMMENT ON COLUMN loyalty.household_summary.pool_liability IS 'The pool''s balance at the program''s point value';
COMMENT ON COLUMN loyalty.household_summary.pool_earned IS 'Shares of the members'' earnings credited to the pool, net of refunds';
COMMENT ON COLUMN loyalty.household_summary.created_at IS 'When the household was created';

REVOKE ALL ON FUNCTION loyalty.household_lock(bigint), loyalty.start_household(bigint, text),
    loyalty.household_open_pool(bigint), loyalty.household_close(bigint, text),
    loyalty.add_household_member(bigint, bigint, text), loyalty.leave_household(bigint, bigint),
    loyalty.change_household_owner(bigint, bigint), loyalty.dissolve_household(bigint),
    loyalty.invite_to_household(bigint, bigint, text), loyalty.join_household(bigint, bigint),
    loyalty.remove_household_member(bigint, bigint),
    loyalty.set_household_rules(bigint, integer, boolean, bigint, bigint, boolean, anycompatible, text),
    loyalty.household_redeem(bigint, numeric, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.start_household(bigint, text), loyalty.add_household_member(bigint, bigint, text),
    loyalty.leave_household(bigint, bigint), loyalty.change_household_owner(bigint, bigint),
    loyalty.dissolve_household(bigint), loyalty.household_redeem(bigint, numeric, text, text, text),
    loyalty.invite_to_household(bigint, bigint, text), loyalty.join_household(bigint, bigint),
    loyalty.remove_household_member(bigint, bigint)
    TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.set_household_rules(bigint, integer, boolean, bigint, bigint, boolean, anycompatible, text) TO loyalty_admin;
GRANT SELECT ON loyalty.household_summary TO loyalty_analyst, loyalty_admin;
