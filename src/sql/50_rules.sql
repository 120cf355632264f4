-- ---------------------------------------------------------------------------
-- Earning rules (evaluated in C by src/rules.c) and non-purchase activities.
-- ---------------------------------------------------------------------------
-- How an earn is computed (README "Earning rules"):
--   1. The earn base is the purchase: one implicit line of `amount`, or the
--      order lines given ({category, product, quantity, amount}); a line's
--      amount is what the program earns on (net of discounts; send tax and
--      shipping as lines of their own category and give them a x0 rule to
--      exclude them).
--   2. Base points of a line = amount x programs.earn_rate (exact).
--   3. Multiplier rules are taken in (priority, name) order; each that
--      applies to a line contributes by its stacking:
--        multiply  M := M x m          (compounds)
--        add       A := A + (m - 1)    (adds its extra only)
--        best_of   B := max(B, m)      (only the best of these counts)
--      and the line earns base x (M x B + A).  A rule with stop = true ends
--      the evaluation for what it applied to (later rules are skipped).
--   4. Bonus rules (fixed points: first purchase, spend threshold...) apply
--      once per earn; `add` bonuses sum, of the `best_of` ones the largest
--      counts.
--   5. The sum of the lines is rounded once by the program's rounding rule,
--      then bonuses are added.  The ledger row's details record every step.

ALTER TABLE loyalty.programs
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN rules_version bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN loyalty.programs.time_zone IS 'Time zone in which rule weekdays, hours and birthdays are read';
COMMENT ON COLUMN loyalty.programs.rules_version IS 'Bumped by every change of the program''s earning rules, tiers and challenges; backends cache them per version';

ALTER TABLE loyalty.accounts ADD COLUMN segment text;
COMMENT ON COLUMN loyalty.accounts.segment IS 'The member''s current segment (set by the analytics refresh or by the application); earning rules can target it';

CREATE TABLE loyalty.earning_rules (
    rule_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    name            text NOT NULL CHECK (name <> ''),
    effect          text NOT NULL CHECK (effect IN ('multiply', 'bonus')),
    multiplier      numeric CHECK (multiplier >= 0 AND multiplier < 1000),
    bonus_points    loyalty.points,
    stacking        text NOT NULL DEFAULT 'multiply' CHECK (stacking IN ('multiply', 'add', 'best_of')),
    priority        integer NOT NULL DEFAULT 100,
    stop            boolean NOT NULL DEFAULT false,
    active          boolean NOT NULL DEFAULT true,
    valid_from      timestamptz,
    valid_until     timestamptz,
    weekdays        integer[] CHECK (weekdays <@ ARRAY[1, 2, 3, 4, 5, 6, 7]),
    hour_from       integer CHECK (hour_from BETWEEN 0 AND 23),
    hour_to         integer CHECK (hour_to BETWEEN 1 AND 24),
    channels        text[],
    stores          text[],
    categories      text[],
    products        text[],
    min_tier        loyalty.tier,
    segments        text[],
    birthday        text CHECK (birthday IN ('day', 'month')),
    first_purchase  boolean NOT NULL DEFAULT false,
    min_amount      numeric CHECK (min_amount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, name),
    CHECK ((effect = 'multiply' AND multiplier IS NOT NULL AND bonus_points IS NULL)
        OR (effect = 'bonus' AND bonus_points IS NOT NULL AND multiplier IS NULL
            AND bonus_points::bigint > 0 AND stacking <> 'multiply')),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from),
    CHECK ((hour_from IS NULL) = (hour_to IS NULL) AND (hour_from IS NULL OR hour_to > hour_from))
);
COMMENT ON TABLE loyalty.earning_rules IS 'Multiplier and bonus rules of a program with their conditions; evaluated in C in (priority, name) order';
COMMENT ON COLUMN loyalty.earning_rules.effect IS 'multiply: scales the base points of the lines it applies to; bonus: fixed points once per earn';
COMMENT ON COLUMN loyalty.earning_rules.stacking IS 'multiply (compounds), add (adds its extra), best_of (only the best best_of rule counts)';
COMMENT ON COLUMN loyalty.earning_rules.stop IS 'When the rule applies, later rules are not evaluated for the same lines (bonus: for the earn)';
COMMENT ON COLUMN loyalty.earning_rules.weekdays IS 'ISO weekdays (1 = Monday .. 7 = Sunday) in the program time zone; NULL: any day';
COMMENT ON COLUMN loyalty.earning_rules.hour_from IS 'Applies from this hour (inclusive, program time zone) to hour_to (exclusive)';
COMMENT ON COLUMN loyalty.earning_rules.categories IS 'Lines of these categories only (a bonus: the basket must contain one); NULL: every line';
COMMENT ON COLUMN loyalty.earning_rules.birthday IS 'day: only on the member''s birthday; month: in the birthday month (program time zone)';
COMMENT ON COLUMN loyalty.earning_rules.min_amount IS 'Spend threshold: the earn base of the matching lines must reach this amount';

CREATE INDEX earning_rules_program_idx ON loyalty.earning_rules (program_id) WHERE active;

-- Every change of a program's rules (and of its tiers, whose earn multipliers
-- the rules engine applies) bumps its version, so each backend's cached copy
-- is replaced on the next earn.
-- After loyalty.distribute() the three are Citus reference tables: the
-- trigger fires on every node's copy (shard) of earning_rules or tiers, where
-- an UPDATE of loyalty.programs would be a distributed query from inside a
-- shard, which Citus refuses.  There it bumps the copy of programs on its own
-- node instead (Citus's pattern for triggers between reference tables): every
-- node applies the same change to its copy of the rules, so every copy of
-- programs is bumped once, in the same two-phase-committed transaction.
#include "udfs/rules_version_bump/1.4.sql"
COMMENT ON FUNCTION loyalty.rules_version_bump() IS 'Trigger: bump programs.rules_version when an earning rule, a tier or a challenge changes';
CREATE TRIGGER earning_rules_bump AFTER INSERT OR UPDATE OR DELETE ON loyalty.earning_rules
    FOR EACH ROW EXECUTE FUNCTION loyalty.rules_version_bump();

#include "udfs/create_earning_rule/1.4.sql"
COMMENT ON FUNCTION loyalty.create_earning_rule(bigint, text, text, anycompatible, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, anycompatible, jsonb, text[], text[], text[], text[]) IS
    'Add a multiplier or bonus rule to a program; returns its id (see README "Earning rules" for stacking)';

#include "udfs/set_earning_rule_active/1.0.sql"
COMMENT ON FUNCTION loyalty.set_earning_rule_active(bigint, boolean) IS 'Switch an earning rule on or off (history keeps the rule name in each earn''s details)';

-- Non-purchase activities ---------------------------------------------------

CREATE TABLE loyalty.activity_rules (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    activity        text NOT NULL CHECK (activity ~ '^(signup|profile_completed|review|survey|social_share|app_download|custom:[a-z0-9_.-]+)$'),
    points          loyalty.points NOT NULL CHECK (points::bigint > 0),
    cap_per_day     integer CHECK (cap_per_day > 0),
    cap_per_week    integer CHECK (cap_per_week > 0),
    cap_per_month   integer CHECK (cap_per_month > 0),
    cap_lifetime    integer CHECK (cap_lifetime > 0),
    budget          loyalty.points CHECK (budget::bigint > 0),
    budget_used     loyalty.points NOT NULL DEFAULT '0',
    active          boolean NOT NULL DEFAULT true,
    PRIMARY KEY (program_id, activity),
    CHECK (budget IS NULL OR budget_used::bigint <= budget::bigint)
);
COMMENT ON TABLE loyalty.activity_rules IS 'Points for non-purchase activities, with per-member caps (day, ISO week, month, lifetime) and a program budget';

CREATE TABLE loyalty.activities (
    member_id       bigint NOT NULL,
    activity_id     bigint GENERATED ALWAYS AS IDENTITY,
    program_id      bigint NOT NULL,
    activity        text NOT NULL,
    points          loyalty.points NOT NULL,
    entry_id        bigint,
    outcome         text NOT NULL CHECK (outcome IN ('awarded', 'capped', 'budget_exhausted')),
    reference       text,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, activity_id)
);
CREATE INDEX activities_member_idx ON loyalty.activities (member_id, activity, occurred_at) WHERE outcome = 'awarded';
COMMENT ON TABLE loyalty.activities IS 'Every recorded activity and its outcome (awarded, capped, budget_exhausted)';

#include "udfs/set_activity_rule/1.1.sql"
COMMENT ON FUNCTION loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points) IS
    'Define (or replace) the points, caps and budget of a non-purchase activity';

#include "udfs/record_activity/1.4.sql"
COMMENT ON FUNCTION loyalty.record_activity(bigint, text, text, text) IS
    'Record a non-purchase activity (signup, review, survey...); awards its points unless a cap or the budget is reached (then 0); the outcome is kept in loyalty.activities';

#include "udfs/preview_earn/1.4.sql"
#include "udfs/preview_earn/1.4-float8.sql"
COMMENT ON FUNCTION loyalty.preview_earn(bigint, numeric, anycompatible, text, text, timestamptz) IS
    'The points a purchase (amount, numeric or double precision, or order lines as jsonb, json or text, or an array of lines) would earn and why, as jsonb, without writing anything';
COMMENT ON FUNCTION loyalty.preview_earn(bigint, double precision, anycompatible, text, text, timestamptz) IS
    'The points a purchase (amount, numeric or double precision, or order lines as jsonb, json or text, or an array of lines) would earn and why, as jsonb, without writing anything';

-- "Why did I get 37 points?": every earn with rules or lines keeps its
-- explanation in the ledger row's details.
#include "udfs/earn_explanation/1.2.sql"
COMMENT ON FUNCTION loyalty.earn_explanation(bigint, bigint) IS
    'Why an earn entry credited what it did: earn base, rate, every rule applied with its effect and lines, rounding and bonuses';

SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activity_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activities', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activities_activity_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.rules_version_bump(),
    loyalty.create_earning_rule(bigint, text, text, anycompatible, loyalty.points, text, integer, boolean,
        timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, anycompatible, jsonb, text[], text[], text[], text[]),
    loyalty.set_earning_rule_active(bigint, boolean),
    loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points),
    loyalty.record_activity(bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.create_earning_rule(bigint, text, text, anycompatible, loyalty.points, text, integer, boolean,
        timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, anycompatible, jsonb, text[], text[], text[], text[]),
    loyalty.set_earning_rule_active(bigint, boolean),
    loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points)
TO loyalty_admin;
REVOKE ALL ON FUNCTION loyalty.preview_earn(bigint, numeric, anycompatible, text, text, timestamptz),
    loyalty.preview_earn(bigint, double precision, anycompatible, text, text, timestamptz),
    loyalty.earn_explanation(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.record_activity(bigint, text, text, text),
    loyalty.preview_earn(bigint, numeric, anycompatible, text, text, timestamptz),
    loyalty.preview_earn(bigint, double precision, anycompatible, text, text, timestamptz),
    loyalty.earn_explanation(bigint, bigint) TO loyalty_app, loyalty_admin;

-- The channel trigger --------------------------------------------------------

-- SECURITY DEFINER: the trigger runs in the application's transaction as the
-- role that writes the orders table, which has no rights on the extension's
-- tables; the function only ever earns and reverses through the ledger API.
-- Only loyalty_admin may attach it (EXECUTE is checked at CREATE TRIGGER).
CREATE FUNCTION loyalty.order_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'loyalty_order_trigger'
LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.order_trigger() IS
    'AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW trigger for an application''s orders table: order_trigger(member_col, amount_col, reference_col, status_col [, channel_col, occurred_at_col] [, ''cancel=s1,s2''] [, ''earn=s1,s2'']); earns on insert, reverses on cancel status, lowered amount or delete; idempotent by order reference';
REVOKE ALL ON FUNCTION loyalty.order_trigger() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.order_trigger() TO loyalty_admin;
