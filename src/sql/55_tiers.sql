-- ---------------------------------------------------------------------------
-- Tiers: ladders, qualification windows, upgrades at once, downgrades at
-- review with grace, benefits, history.
-- ---------------------------------------------------------------------------
-- A program with a tier policy (programs.tier_metric not NULL) has a ladder
-- in loyalty.tiers.  The qualifying metric is computed from the ledger and
-- lots over the program's window:
--   spend   purchase amounts less refunded amounts (earn entries)
--   points  points earned by purchases less their reversals (never the
--           spendable balance; awards and adjustments do not qualify)
--   visits  distinct UTC days with a purchase not fully refunded
-- A purchase counts while its occurred_at lies inside the window; for a
-- rolling window of N months it ages out exactly N months after it happened
-- (window = (as_of - N months, as_of]).
--
-- Upgrades happen in the transaction of the qualifying earn (the C earn path
-- calls loyalty.tier_after_write).  Downgrades happen only at review
-- (loyalty.review_tiers), after the grace period, by one step or to the
-- qualified tier as the program says; manual assignments with an end date
-- and invitation-only tiers are kept until that date.

ALTER TABLE loyalty.programs
    ADD COLUMN tier_metric text CHECK (tier_metric IN ('spend', 'points', 'visits')),
    ADD COLUMN tier_window text NOT NULL DEFAULT 'rolling' CHECK (tier_window IN ('rolling', 'calendar', 'anniversary')),
    ADD COLUMN tier_window_months integer NOT NULL DEFAULT 12 CHECK (tier_window_months BETWEEN 1 AND 120),
    ADD COLUMN tier_downgrade text NOT NULL DEFAULT 'one_step' CHECK (tier_downgrade IN ('one_step', 'to_qualified')),
    ADD COLUMN tier_grace interval NOT NULL DEFAULT interval '0' CHECK (tier_grace >= interval '0'),
    ADD COLUMN tier_refund_demotes boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN loyalty.programs.tier_metric IS 'Tier qualification metric: spend, points (earned by purchases) or visits (purchase days); NULL: no tiers';
COMMENT ON COLUMN loyalty.programs.tier_window IS 'rolling (the last N months), calendar (N-month periods from 1 January) or anniversary (N-month periods from the join date)';
COMMENT ON COLUMN loyalty.programs.tier_downgrade IS 'At review, a member who no longer qualifies falls one_step or to_qualified';
COMMENT ON COLUMN loyalty.programs.tier_grace IS 'A member who stops qualifying keeps the tier this long before a review may lower it';
COMMENT ON COLUMN loyalty.programs.tier_refund_demotes IS 'Whether a refund that lowers the metric can demote at once (otherwise only at review)';

CREATE TABLE loyalty.tiers (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    rank            integer NOT NULL CHECK (rank BETWEEN 0 AND 32767),
    name            text NOT NULL,
    threshold       numeric NOT NULL CHECK (threshold >= 0 AND threshold < 'Infinity'),
    earn_multiplier numeric NOT NULL DEFAULT 1 CHECK (earn_multiplier >= 0 AND earn_multiplier < 100),
    invitation_only boolean NOT NULL DEFAULT false,
    benefits        jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (program_id, rank),
    UNIQUE (program_id, name)
);
COMMENT ON TABLE loyalty.tiers IS 'Tier ladders: rank, name, qualification threshold, earn multiplier (applied by the earning rules), invitation-only flag, custom benefits';

ALTER TABLE loyalty.accounts
    ADD COLUMN tier_since timestamptz,
    ADD COLUMN tier_locked_until timestamptz,
    ADD COLUMN tier_grace_until timestamptz;
COMMENT ON COLUMN loyalty.accounts.tier_locked_until IS 'A manually assigned or invitation tier is kept until then (infinity: until changed by hand)';
COMMENT ON COLUMN loyalty.accounts.tier_grace_until IS 'The member stopped qualifying; a review may lower the tier from then on';

CREATE TABLE loyalty.tier_history (
    member_id       bigint NOT NULL,
    change_id       bigint GENERATED ALWAYS AS IDENTITY,
    from_tier       loyalty.tier,
    to_tier         loyalty.tier,
    reason          text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, change_id)
);
CREATE INDEX tier_history_time_idx ON loyalty.tier_history (member_id, changed_at);
COMMENT ON TABLE loyalty.tier_history IS 'Every tier change of a member: from, to, why, when';

-- a tier change moves the earn multiplier the rules engine caches
CREATE TRIGGER tiers_bump AFTER INSERT OR UPDATE OR DELETE ON loyalty.tiers
    FOR EACH ROW EXECUTE FUNCTION loyalty.rules_version_bump();

#include "udfs/set_tier_policy/1.4.sql"
COMMENT ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean) IS
    'Set how a program''s members qualify for tiers: metric, window, downgrade rule, grace period, refund effect';

#include "udfs/define_tier/1.4.sql"
COMMENT ON FUNCTION loyalty.define_tier(bigint, integer, text, anycompatible, anycompatible, boolean, jsonb) IS
    'Add or change a rung of a program''s tier ladder; returns the tier value';

-- Start of the qualification window ending at as_of.
#include "udfs/tier_window_start/1.2.sql"
COMMENT ON FUNCTION loyalty.tier_window_start(bigint, timestamptz) IS
    'Start of the member''s qualification window ending at as_of (rolling: exclusive; calendar and anniversary: inclusive)';

#include "udfs/member_tier_metric/1.4.sql"
COMMENT ON FUNCTION loyalty.member_tier_metric(bigint, timestamptz) IS
    'Internal: the member''s own tier metric in its current qualification window (tier_metric adds up a household''s)';
#include "udfs/tier_metric/1.4.sql"
COMMENT ON FUNCTION loyalty.tier_metric(bigint, timestamptz) IS
    'The member''s qualifying metric (spend, points earned or visits, net of refunds) over the window ending at as_of (default now); with household tiers, its household''s';

#include "udfs/qualified_tier/1.3.sql"
COMMENT ON FUNCTION loyalty.qualified_tier(bigint, timestamptz) IS
    'The highest tier (not invitation-only) whose threshold the member''s metric reaches at as_of';

-- Internal: the tier rules' writes, through the C write path.
#include "udfs/tier_change/1.4.sql"
COMMENT ON FUNCTION loyalty.tier_change(bigint, loyalty.tier, text, timestamptz) IS
    'Internal: set the member''s tier under its lock, write history and the tier.changed event; the same tier only renews a lock given (locked_until); returns whether the tier changed';
#include "udfs/set_tier_grace/1.4.sql"
COMMENT ON FUNCTION loyalty.set_tier_grace(bigint, timestamptz) IS
    'Internal: start (until grace_until) or end (NULL) the member''s tier grace period, under its lock';

-- Internal: called by the C write path after an earn (upgrade) or a refund
-- (demotion only when the program allows it), with the account locked.
#include "udfs/tier_after_write/1.3.sql"
COMMENT ON FUNCTION loyalty.tier_after_write(bigint, text) IS
    'Internal: upgrade at once after an earn; after a refund, demote only if the program says so';

#include "udfs/evaluate_tier/1.1.sql"
COMMENT ON FUNCTION loyalty.evaluate_tier(bigint) IS
    'The member''s tier now, the tier the metric qualifies for, the metric and its value, the next tier and the distance to it; applies an upgrade';

#include "udfs/assign_tier/1.1.sql"
COMMENT ON FUNCTION loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text) IS
    'Assign a tier by hand (status match, invitation); reviews keep it until the end date';

#include "udfs/tier_at/1.2.sql"
COMMENT ON FUNCTION loyalty.tier_at(bigint, timestamptz) IS 'The member''s tier at a past time (NULL: none then)';

-- The review, set-based: up to batch_size members of a program after a
-- member id, locked together (in member_id order), their metric computed in
-- one query; only members whose tier changes go through tier_change (history
-- and event).  Returns the last member id reviewed, how many were reviewed
-- and how many changed tier.  On Citus (a locking query cannot span shards)
-- the same rules run member by member, each with single-shard statements.
#include "udfs/apply_tiers/1.4.sql"
COMMENT ON FUNCTION loyalty.apply_tiers(bigint[], boolean[], loyalty.tier[], timestamptz[]) IS
    'Internal: a tier review''s decisions for a batch of locked members, in one writer: changes[i] moves members[i] to tiers[i] (no lock, no grace), else its grace period becomes grace_until[i]; the caller writes history and events';
#include "udfs/review_tiers_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) IS
    'One step of loyalty.review_tiers: review up to batch_size members of a program after a member id, set-based (on Citus member by member, same rules)';

-- Review one member (locking it): the batch review of just that member.
#include "udfs/review_member_tier/1.1.sql"
COMMENT ON FUNCTION loyalty.review_member_tier(bigint, timestamptz) IS
    'Review one member''s tier as of a time: upgrade if qualified, start or honour grace, then downgrade by the program''s rule';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/review_tiers/1.1.sql"
COMMENT ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) IS
    'Batch job: review every member''s tier as of a time (default now), committing every batch_size members and reporting progress; safe to rerun or run concurrently';

SELECT pg_catalog.pg_extension_config_dump('loyalty.tiers', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history_change_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean),
    loyalty.define_tier(bigint, integer, text, anycompatible, anycompatible, boolean, jsonb),
    loyalty.tier_window_start(bigint, timestamptz),
    loyalty.tier_metric(bigint, timestamptz),
    loyalty.member_tier_metric(bigint, timestamptz),
    loyalty.qualified_tier(bigint, timestamptz),
    loyalty.tier_change(bigint, loyalty.tier, text, timestamptz),
    loyalty.set_tier_grace(bigint, timestamptz),
    loyalty.apply_tiers(bigint[], boolean[], loyalty.tier[], timestamptz[]),
    loyalty.tier_after_write(bigint, text),
    loyalty.evaluate_tier(bigint),
    loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text),
    loyalty.tier_at(bigint, timestamptz),
    loyalty.review_member_tier(bigint, timestamptz),
    loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.evaluate_tier(bigint), loyalty.tier_at(bigint, timestamptz),
    loyalty.tier_metric(bigint, timestamptz), loyalty.qualified_tier(bigint, timestamptz)
TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean),
    loyalty.define_tier(bigint, integer, text, anycompatible, anycompatible, boolean, jsonb),
    loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text),
    loyalty.review_member_tier(bigint, timestamptz),
    loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer)
TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) TO loyalty_admin;
