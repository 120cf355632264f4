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
COMMENT ON COLUMN loyalty.programs.rules_version IS 'Bumped by every change of the program''s earning rules; backends cache rules per version';

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
CREATE FUNCTION loyalty.rules_version_bump() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_programs text;
    v_ids bigint[] := ARRAY[
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.program_id END,
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.program_id END];
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.=) ANY (ARRAY['loyalty.earning_rules'::regclass, 'loyalty.tiers'::regclass]::oid[]) THEN
        UPDATE loyalty.programs p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
        WHERE p.program_id OPERATOR(pg_catalog.=) ANY (v_ids);
        RETURN NULL;
    END IF;
    -- a shard of a Citus reference table (Citus's catalog is read by EXECUTE:
    -- it does not exist without Citus)
    EXECUTE 'SELECT pg_catalog.shard_name(s.logicalrelid, s.shardid) FROM pg_catalog.pg_dist_shard s
             WHERE s.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.programs''::pg_catalog.regclass'
        INTO v_programs;
    IF v_programs IS NULL OR pg_catalog.to_regclass(v_programs) IS NULL THEN
        RAISE EXCEPTION 'no copy of loyalty.programs on this node to record the change of %.% in', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Rule and tier changes bump loyalty.programs.rules_version on the node of the changed copy.',
                  HINT = 'Replicate the reference tables to this node: SELECT replicate_reference_tables().';
    END IF;
    EXECUTE pg_catalog.format('UPDATE %s p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
                               WHERE p.program_id OPERATOR(pg_catalog.=) ANY ($1)', v_programs)
        USING v_ids;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION loyalty.rules_version_bump() IS 'Trigger: bump programs.rules_version when an earning rule or a tier changes';
CREATE TRIGGER earning_rules_bump AFTER INSERT OR UPDATE OR DELETE ON loyalty.earning_rules
    FOR EACH ROW EXECUTE FUNCTION loyalty.rules_version_bump();

CREATE FUNCTION loyalty.create_earning_rule(
    program bigint, name text, effect text,
    multiplier numeric DEFAULT NULL, bonus_points loyalty.points DEFAULT NULL,
    stacking text DEFAULT NULL, priority integer DEFAULT 100, stop boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    weekdays integer[] DEFAULT NULL, hour_from integer DEFAULT NULL, hour_to integer DEFAULT NULL,
    channels text[] DEFAULT NULL, stores text[] DEFAULT NULL,
    categories text[] DEFAULT NULL, products text[] DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, segments text[] DEFAULT NULL,
    birthday text DEFAULT NULL, first_purchase boolean DEFAULT false, min_amount numeric DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM loyalty.require_program(create_earning_rule.program);
    IF program IS NULL OR name IS NULL OR effect IS NULL THEN
        RAISE EXCEPTION 'program, name and effect must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF effect NOT IN ('multiply', 'bonus') THEN
        RAISE EXCEPTION 'unknown rule effect "%"', effect USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use multiply (with multiplier) or bonus (with bonus_points).';
    END IF;
    IF effect = 'multiply' AND (multiplier IS NULL OR bonus_points IS NOT NULL) THEN
        RAISE EXCEPTION 'a multiply rule needs a multiplier and no bonus_points' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND (bonus_points IS NULL OR multiplier IS NOT NULL OR bonus_points::bigint <= 0) THEN
        RAISE EXCEPTION 'a bonus rule needs positive bonus_points and no multiplier' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF multiplier IS NOT NULL AND (multiplier = 'NaN' OR multiplier < 0 OR multiplier >= 1000) THEN
        RAISE EXCEPTION 'multiplier must be between 0 and 1000, got %', multiplier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND coalesce(stacking, 'add') = 'multiply' THEN
        RAISE EXCEPTION 'a bonus stacks by add or best_of, not multiply' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    BEGIN
        INSERT INTO loyalty.earning_rules (program_id, name, effect, multiplier, bonus_points, stacking, priority,
            stop, valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores, categories, products,
            min_tier, segments, birthday, first_purchase, min_amount)
        VALUES (program, name, effect, multiplier, bonus_points,
            coalesce(stacking, CASE WHEN effect OPERATOR(pg_catalog.=) 'bonus' THEN 'add' ELSE 'multiply' END), coalesce(priority, 100),
            coalesce(stop, false), valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores,
            categories, products, min_tier, segments, birthday, coalesce(first_purchase, false), min_amount)
        RETURNING rule_id INTO v_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a rule named "%"', program, name
                USING ERRCODE = 'unique_violation';
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid earning rule "%": %', name, SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Check stacking, weekdays (1..7), hours (0..24, from < to), the validity window, birthday (day or month).';
    END;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric) IS
    'Add a multiplier or bonus rule to a program; returns its id (see README "Earning rules" for stacking)';

CREATE FUNCTION loyalty.set_earning_rule_active(rule bigint, active boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE loyalty.earning_rules r SET active = set_earning_rule_active.active
    WHERE r.rule_id OPERATOR(pg_catalog.=) rule;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'earning rule % does not exist', rule USING ERRCODE = 'no_data_found';
    END IF;
END $$;
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

CREATE FUNCTION loyalty.set_activity_rule(program bigint, activity text, points loyalty.points,
    cap_per_day integer DEFAULT NULL, cap_per_week integer DEFAULT NULL, cap_per_month integer DEFAULT NULL,
    cap_lifetime integer DEFAULT NULL, budget loyalty.points DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM loyalty.require_program(set_activity_rule.program);
    IF program IS NULL OR activity IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'program, activity and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.activity_rules AS r (program_id, activity, points, cap_per_day, cap_per_week,
                                                 cap_per_month, cap_lifetime, budget)
        VALUES (set_activity_rule.program, set_activity_rule.activity, set_activity_rule.points,
                set_activity_rule.cap_per_day, set_activity_rule.cap_per_week, set_activity_rule.cap_per_month,
                set_activity_rule.cap_lifetime, set_activity_rule.budget)
        ON CONFLICT (program_id, activity) DO UPDATE SET points = EXCLUDED.points,
            cap_per_day = EXCLUDED.cap_per_day, cap_per_week = EXCLUDED.cap_per_week,
            cap_per_month = EXCLUDED.cap_per_month, cap_lifetime = EXCLUDED.cap_lifetime,
            budget = EXCLUDED.budget, active = true;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid activity rule for "%": %', activity, SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Activities: signup, profile_completed, review, survey, social_share, app_download, custom:<name>; points, caps and budget positive.';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
COMMENT ON FUNCTION loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points) IS
    'Define (or replace) the points, caps and budget of a non-purchase activity';

CREATE FUNCTION loyalty.record_activity(member bigint, activity text, reference text DEFAULT NULL,
                                        idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_rule loyalty.activity_rules;
    v_now timestamptz := now();
    v_local timestamp;
    v_tz text;
    v_entry bigint;
    v_outcome text := 'awarded';
    v_key text;
BEGIN
    PERFORM loyalty.require_member(record_activity.member);
    IF member IS NULL OR activity IS NULL THEN
        RAISE EXCEPTION 'member and activity must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- the member's lock: caps are counted and written under it
    SELECT a.program_id INTO v_program FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        v_key := 'activity:' || idempotency_key;
        SELECT act.points INTO v_rule.points FROM loyalty.activities act
        JOIN loyalty.ledger l ON l.member_id OPERATOR(pg_catalog.=) act.member_id
                             AND l.entry_id OPERATOR(pg_catalog.=) act.entry_id
        WHERE act.member_id OPERATOR(pg_catalog.=) member AND l.idempotency_key OPERATOR(pg_catalog.=) v_key;
        IF FOUND THEN
            RETURN v_rule.points;   -- a replay: the first award stands
        END IF;
    END IF;
    SELECT * INTO v_rule FROM loyalty.activity_rules r
    WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity AND r.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % awards nothing for activity "%"', v_program, activity
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Define it with loyalty.set_activity_rule().';
    END IF;
    SELECT p.time_zone INTO v_tz FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) v_program;
    v_local := v_now AT TIME ZONE v_tz;
    -- caps count awarded activities in calendar periods of the program's time zone
    IF (v_rule.cap_lifetime IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded') >= v_rule.cap_lifetime)
       OR (v_rule.cap_per_month IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('month', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_month)
       OR (v_rule.cap_per_week IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('week', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_week)
       OR (v_rule.cap_per_day IS NOT NULL AND (SELECT count(*) FROM loyalty.activities x
            WHERE x.member_id OPERATOR(pg_catalog.=) member AND x.activity OPERATOR(pg_catalog.=) record_activity.activity
              AND x.outcome = 'awarded'
              AND x.occurred_at >= (date_trunc('day', v_local) AT TIME ZONE v_tz)) >= v_rule.cap_per_day) THEN
        v_outcome := 'capped';
    ELSIF v_rule.budget IS NOT NULL THEN
        -- the program budget is one row: take from it atomically
        UPDATE loyalty.activity_rules r
        SET budget_used = (r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint)::loyalty.points
        WHERE r.program_id OPERATOR(pg_catalog.=) v_program AND r.activity OPERATOR(pg_catalog.=) record_activity.activity
          AND r.budget_used::bigint OPERATOR(pg_catalog.+) v_rule.points::bigint OPERATOR(pg_catalog.<=) r.budget::bigint;
        IF NOT FOUND THEN
            v_outcome := 'budget_exhausted';
        END IF;
    END IF;
    IF v_outcome = 'awarded' THEN
        v_entry := loyalty.award(member, v_rule.points, 'activity: ' || activity, NULL, reference, v_key);
    END IF;
    INSERT INTO loyalty.activities (member_id, program_id, activity, points, entry_id, outcome, reference, occurred_at)
    VALUES (member, v_program, activity, CASE WHEN v_outcome = 'awarded' THEN v_rule.points ELSE '0' END,
            v_entry, v_outcome, reference, v_now);
    RETURN CASE WHEN v_outcome = 'awarded' THEN v_rule.points ELSE '0'::loyalty.points END;
END $$;
COMMENT ON FUNCTION loyalty.record_activity(bigint, text, text, text) IS
    'Record a non-purchase activity (signup, review, survey...); awards its points unless a cap or the budget is reached (then 0); the outcome is kept in loyalty.activities';

CREATE FUNCTION loyalty.preview_earn(member bigint, amount numeric DEFAULT NULL, lines jsonb DEFAULT NULL,
                                     channel text DEFAULT NULL, store text DEFAULT NULL,
                                     occurred_at timestamptz DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'loyalty_preview_earn'
LANGUAGE C STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.preview_earn(bigint, numeric, jsonb, text, text, timestamptz) IS
    'The points a purchase (amount or order lines) would earn and why, as jsonb, without writing anything';

-- "Why did I get 37 points?": every earn with rules or lines keeps its
-- explanation in the ledger row's details.
CREATE FUNCTION loyalty.earn_explanation(member bigint, entry bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT coalesce(l.details, jsonb_build_object('earn_base', l.amount, 'points', l.points::bigint, 'rules', '[]'::jsonb))
    FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.entry_id = $2 AND l.kind = 'earn');
END $$;
COMMENT ON FUNCTION loyalty.earn_explanation(bigint, bigint) IS
    'Why an earn entry credited what it did: earn base, rate, every rule applied with its effect and lines, rounding and bonuses';

SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.earning_rules_rule_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activity_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activities', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.activities_activity_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.rules_version_bump(),
    loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
        timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric),
    loyalty.set_earning_rule_active(bigint, boolean),
    loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points),
    loyalty.record_activity(bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
        timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric),
    loyalty.set_earning_rule_active(bigint, boolean),
    loyalty.set_activity_rule(bigint, text, loyalty.points, integer, integer, integer, integer, loyalty.points)
TO loyalty_admin;
REVOKE ALL ON FUNCTION loyalty.preview_earn(bigint, numeric, jsonb, text, text, timestamptz),
    loyalty.earn_explanation(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.record_activity(bigint, text, text, text),
    loyalty.preview_earn(bigint, numeric, jsonb, text, text, timestamptz),
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
