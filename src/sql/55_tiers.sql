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

CREATE FUNCTION loyalty.set_tier_policy(program bigint, metric text, tier_window text DEFAULT 'rolling',
    window_months integer DEFAULT 12, downgrade text DEFAULT 'one_step', grace interval DEFAULT interval '0',
    refund_demotes boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_program(set_tier_policy.program);
    IF program IS NULL OR metric IS NULL THEN
        RAISE EXCEPTION 'program and metric must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF tier_window = 'calendar' AND 12 % window_months <> 0 THEN
        RAISE EXCEPTION 'a calendar window must divide the year (1, 2, 3, 4, 6 or 12 months), got %', window_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        UPDATE loyalty.programs p SET tier_metric = metric, tier_window = coalesce(set_tier_policy.tier_window, 'rolling'),
            tier_window_months = coalesce(window_months, 12), tier_downgrade = coalesce(downgrade, 'one_step'),
            tier_grace = coalesce(grace, interval '0'), tier_refund_demotes = coalesce(refund_demotes, false)
        WHERE p.program_id OPERATOR(pg_catalog.=) program;
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'invalid tier policy: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
            HINT = 'metric: spend, points or visits; window: rolling, calendar or anniversary (1..120 months); downgrade: one_step or to_qualified; grace >= 0.';
    END;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
END $$;
COMMENT ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean) IS
    'Set how a program''s members qualify for tiers: metric, window, downgrade rule, grace period, refund effect';

CREATE FUNCTION loyalty.define_tier(program bigint, rank integer, name text, threshold numeric,
    earn_multiplier numeric DEFAULT 1, invitation_only boolean DEFAULT false, benefits jsonb DEFAULT '{}')
RETURNS loyalty.tier
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tier loyalty.tier;
BEGIN
    PERFORM loyalty.require_program(define_tier.program);
    IF program IS NULL OR rank IS NULL OR name IS NULL OR threshold IS NULL THEN
        RAISE EXCEPTION 'program, rank, name and threshold must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    v_tier := loyalty.tier(rank, name);       -- the tier type's own checks on rank and name
    BEGIN
        INSERT INTO loyalty.tiers (program_id, rank, name, threshold, earn_multiplier, invitation_only, benefits)
        VALUES (define_tier.program, define_tier.rank, define_tier.name, define_tier.threshold,
                coalesce(define_tier.earn_multiplier, 1), coalesce(define_tier.invitation_only, false),
                coalesce(define_tier.benefits, '{}'))
        ON CONFLICT (program_id, rank) DO UPDATE SET name = EXCLUDED.name, threshold = EXCLUDED.threshold,
            earn_multiplier = EXCLUDED.earn_multiplier, invitation_only = EXCLUDED.invitation_only,
            benefits = EXCLUDED.benefits;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid tier %: %', v_tier, SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a tier named "%"', program, name USING ERRCODE = 'unique_violation';
    END;
    RETURN v_tier;
END $$;
COMMENT ON FUNCTION loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb) IS
    'Add or change a rung of a program''s tier ladder; returns the tier value';

-- Start of the qualification window ending at as_of.
CREATE FUNCTION loyalty.tier_window_start(member bigint, as_of timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT CASE p.tier_window
        WHEN 'rolling' THEN $2 - make_interval(months => p.tier_window_months)
        WHEN 'calendar' THEN
            ((date_trunc('year', $2 AT TIME ZONE p.time_zone)
              + make_interval(months => ((extract(month FROM $2 AT TIME ZONE p.time_zone)::integer - 1)
                                          / p.tier_window_months) * p.tier_window_months))
             AT TIME ZONE p.time_zone)
        ELSE (SELECT m.joined_at + make_interval(months => p.tier_window_months
                    * floor((extract(year FROM age($2, m.joined_at)) * 12 + extract(month FROM age($2, m.joined_at)))
                            / p.tier_window_months)::integer))
    END
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = v_member);
END $$;
COMMENT ON FUNCTION loyalty.tier_window_start(bigint, timestamptz) IS
    'Start of the member''s qualification window ending at as_of (rolling: exclusive; calendar and anniversary: inclusive)';

CREATE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
    v_stop timestamptz := coalesce($2, now());
    v_metric text;
    v_kind text;
    v_start timestamptz;
BEGIN
    SELECT p.tier_metric, p.tier_window INTO v_metric, v_kind
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = v_member;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- a statement of its own, not a call inside the query below: on Citus
    -- that query runs on the member's shard, where a function that queries
    -- distributed tables itself cannot run
    v_start := loyalty.tier_window_start(v_member, v_stop);
    RETURN (
    WITH e AS (
        SELECT l.occurred_at, coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM loyalty.ledger l
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
        WHERE l.member_id = v_member AND l.kind = 'earn' AND l.occurred_at <= v_stop
          AND (l.occurred_at > v_start OR (v_kind <> 'rolling' AND l.occurred_at = v_start))
    )
    SELECT CASE
        WHEN v_metric = 'spend' THEN coalesce((SELECT sum(spend) FROM e), 0)
        WHEN v_metric = 'points' THEN coalesce((SELECT sum(points) FROM e), 0)
        WHEN v_metric = 'visits' THEN (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM e WHERE spend > 0)
    END);
END $$;
COMMENT ON FUNCTION loyalty.tier_metric(bigint, timestamptz) IS
    'The member''s qualifying metric (spend, points earned or visits, net of refunds) over the window ending at as_of (default now)';

CREATE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.tier
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
    v_value numeric;
BEGIN
    -- the metric first, in a statement of its own (see tier_metric)
    v_value := loyalty.tier_metric(v_member, $2);
    RETURN (
    SELECT loyalty.tier(t.rank, t.name)
    FROM loyalty.members m JOIN loyalty.tiers t ON t.program_id = m.program_id
    WHERE m.member_id = v_member AND NOT t.invitation_only AND t.threshold <= v_value
    ORDER BY t.rank DESC LIMIT 1);
END $$;
COMMENT ON FUNCTION loyalty.qualified_tier(bigint, timestamptz) IS
    'The highest tier (not invitation-only) whose threshold the member''s metric reaches at as_of';

-- Internal: record a change on the locked account.
CREATE FUNCTION loyalty.tier_change(member bigint, new_tier loyalty.tier, reason text,
                                    locked_until timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old loyalty.tier;
BEGIN
    PERFORM loyalty.require_member(tier_change.member);
    SELECT a.tier INTO v_old FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    -- (IS DISTINCT FROM cannot name the operator's schema)
    IF (v_old IS NULL AND new_tier IS NULL) OR v_old OPERATOR(loyalty.=) new_tier THEN
        UPDATE loyalty.accounts a SET tier_locked_until = locked_until, tier_grace_until = NULL
        WHERE a.member_id OPERATOR(pg_catalog.=) member AND locked_until IS NOT NULL;
        RETURN false;
    END IF;
    UPDATE loyalty.accounts a SET tier = new_tier, tier_since = now(), tier_locked_until = locked_until,
        tier_grace_until = NULL, updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason) VALUES (member, v_old, new_tier, reason);
    PERFORM loyalty.emit_event(member, 'tier.changed',
        jsonb_build_object('from', v_old::text, 'to', new_tier::text, 'reason', reason));
    RETURN true;
END $$;
COMMENT ON FUNCTION loyalty.tier_change(bigint, loyalty.tier, text, timestamptz) IS
    'Internal: set the member''s tier (account locked by the caller), write history and the tier.changed event';

-- Internal: called by the C write path after an earn (upgrade) or a refund
-- (demotion only when the program allows it), with the account locked.
CREATE FUNCTION loyalty.tier_after_write(member bigint, cause text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acc loyalty.accounts;
    v_q loyalty.tier;
    v_demote boolean;
    v_metric text;
    v_next numeric;
BEGIN
    PERFORM loyalty.require_member(tier_after_write.member);
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT p.tier_refund_demotes, p.tier_metric INTO v_demote, v_metric FROM loyalty.programs p
    WHERE p.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND p.tier_metric IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF cause OPERATOR(pg_catalog.<>) 'refund' THEN
        -- An earn can only upgrade.  The window's metric never exceeds the
        -- member's lifetime total of it (net of refunds, kept on the account),
        -- so when that total is below every higher tier's threshold, or there
        -- is no higher tier, the window need not be read (it grows with the
        -- member's purchases: reading it on every earn made earns O(window)).
        SELECT pg_catalog.min(t.threshold) INTO v_next FROM loyalty.tiers t
        WHERE t.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND NOT t.invitation_only
          AND (v_acc.tier IS NULL OR t.rank OPERATOR(pg_catalog.>) loyalty.tier_rank(v_acc.tier));
        IF v_next IS NULL OR (CASE v_metric
                                  WHEN 'spend' THEN v_acc.purchase_amount
                                  WHEN 'points' THEN v_acc.lifetime_earned::bigint::numeric
                                  WHEN 'visits' THEN v_acc.purchase_days::numeric
                              END) OPERATOR(pg_catalog.<) v_next THEN
            RETURN false;
        END IF;
    END IF;
    v_q := loyalty.qualified_tier(member);
    IF v_q IS NOT NULL AND (v_acc.tier IS NULL OR v_q OPERATOR(loyalty.>) v_acc.tier) THEN
        -- an upgrade never waits, and ends a manual or invitation lock below it
        RETURN loyalty.tier_change(member, v_q, 'qualified (' || cause || ')');
    END IF;
    IF cause = 'refund' AND v_demote AND v_acc.tier IS NOT NULL
       AND (v_q IS NULL OR v_q OPERATOR(loyalty.<) v_acc.tier)
       AND (v_acc.tier_locked_until IS NULL OR v_acc.tier_locked_until <= now()) THEN
        RETURN loyalty.tier_change(member, v_q, 'refund lowered the qualifying metric');
    END IF;
    RETURN false;
END $$;
COMMENT ON FUNCTION loyalty.tier_after_write(bigint, text) IS
    'Internal: upgrade at once after an earn; after a refund, demote only if the program says so';

CREATE FUNCTION loyalty.evaluate_tier(member bigint)
RETURNS TABLE (tier loyalty.tier, qualified_tier loyalty.tier, metric text, value numeric,
               next_tier loyalty.tier, distance numeric, changed boolean)
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_changed boolean;
    v_metric text;
    v_value numeric;
    v_cur loyalty.tier;
    v_next record;
BEGIN
    PERFORM loyalty.require_member(evaluate_tier.member);
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT p.tier_metric INTO v_metric FROM loyalty.members m JOIN loyalty.programs p USING (program_id)
    WHERE m.member_id OPERATOR(pg_catalog.=) member;
    IF v_metric IS NULL THEN
        RAISE EXCEPTION 'the program of member % has no tiers', member USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;
    v_changed := loyalty.tier_after_write(member, 'evaluation');
    v_value := loyalty.tier_metric(member);
    SELECT a.tier INTO v_cur FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT t.rank, t.name, t.threshold INTO v_next FROM loyalty.tiers t
    JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
    WHERE m.member_id OPERATOR(pg_catalog.=) member AND NOT t.invitation_only
      AND t.rank OPERATOR(pg_catalog.>) coalesce(loyalty.tier_rank(v_cur), -1)
    ORDER BY t.rank LIMIT 1;
    RETURN QUERY SELECT v_cur, loyalty.qualified_tier(member), v_metric, v_value,
        CASE WHEN v_next.rank IS NOT NULL THEN loyalty.tier(v_next.rank, v_next.name) END,
        CASE WHEN v_next.rank IS NOT NULL THEN greatest(v_next.threshold OPERATOR(pg_catalog.-) v_value, 0) END,
        v_changed;
END $$;
COMMENT ON FUNCTION loyalty.evaluate_tier(bigint) IS
    'The member''s tier now, the tier the metric qualifies for, the metric and its value, the next tier and the distance to it; applies an upgrade';

CREATE FUNCTION loyalty.assign_tier(member bigint, tier loyalty.tier, until timestamptz DEFAULT 'infinity', reason text DEFAULT 'assigned')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.require_member(assign_tier.member);
    IF member IS NULL OR tier IS NULL THEN
        RAISE EXCEPTION 'member and tier must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.tiers t JOIN loyalty.members m ON m.program_id OPERATOR(pg_catalog.=) t.program_id
                   WHERE m.member_id OPERATOR(pg_catalog.=) member
                     AND t.rank OPERATOR(pg_catalog.=) loyalty.tier_rank(assign_tier.tier)
                     AND t.name OPERATOR(pg_catalog.=) loyalty.tier_name(assign_tier.tier)) THEN
        RAISE EXCEPTION 'tier % is not on the ladder of member %''s program', tier, member
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF until IS NULL OR until <= now() THEN
        RAISE EXCEPTION 'until must lie in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM loyalty.tier_change(member, tier, coalesce(reason, 'assigned'), until);
END $$;
COMMENT ON FUNCTION loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text) IS
    'Assign a tier by hand (status match, invitation); reviews keep it until the end date';

CREATE FUNCTION loyalty.tier_at(member bigint, at timestamptz)
RETURNS loyalty.tier
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT h.to_tier FROM loyalty.tier_history h
    WHERE h.member_id = v_member AND h.changed_at <= $2
    ORDER BY h.changed_at DESC, h.change_id DESC LIMIT 1);
END $$;
COMMENT ON FUNCTION loyalty.tier_at(bigint, timestamptz) IS 'The member''s tier at a past time (NULL: none then)';

-- The review, set-based: up to batch_size members of a program after a
-- member id, locked together (in member_id order), their metric computed in
-- one query; only members whose tier changes go through tier_change (history
-- and event).  Returns the last member id reviewed, how many were reviewed
-- and how many changed tier.  On Citus (a locking query cannot span shards)
-- the same rules run member by member, each with single-shard statements.
CREATE FUNCTION loyalty.review_tiers_batch(program bigint, as_of timestamptz, after_member bigint, batch_size integer)
RETURNS TABLE (last_member bigint, reviewed bigint, changed bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p loyalty.programs;
    v_as_of timestamptz := coalesce(as_of, now());
    v_last bigint;
    v_n bigint;
    v_c bigint := 0;
    v_ids bigint[];
    r2 bigint;
    r bigint;
    v_citus boolean := false;
    v_member bigint;
    v_tier loyalty.tier;
    v_status text;
    v_locked timestamptz;
    v_grace timestamptz;
    v_value numeric;
    v_cur integer;
    v_q integer;
    v_new integer;
    v_to loyalty.tier;
    v_action text;
BEGIN
    PERFORM loyalty.require_program(review_tiers_batch.program);
    SELECT * INTO v_p FROM loyalty.programs p WHERE p.program_id = program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    IF v_p.tier_metric IS NULL THEN
        RAISE EXCEPTION 'program % has no tiers', program USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;

    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
                                WHERE d.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.accounts''::pg_catalog.regclass)'
            INTO v_citus;
    END IF;
    IF v_citus THEN
        -- On Citus (accounts distributed by member) a locking query cannot
        -- span shards: the batch's members are listed across the shards (no
        -- lock), then reviewed one by one in member_id order, each with
        -- statements filtered by that member (one shard): lock the account,
        -- then the metric (read after the lock, as below), the same decision
        -- rules as the set-based statement, and loyalty.tier_change() for a
        -- change (history and tier.changed event).
        SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}') INTO v_ids
        FROM (SELECT a.member_id FROM loyalty.accounts a
              WHERE a.program_id = program AND a.member_id > after_member
              ORDER BY a.member_id LIMIT batch_size) x;
        v_n := cardinality(v_ids);
        v_last := v_ids[v_n];
        FOREACH v_member IN ARRAY v_ids LOOP
            SELECT a.tier, a.status, a.tier_locked_until, a.tier_grace_until
            INTO v_tier, v_status, v_locked, v_grace
            FROM loyalty.accounts a WHERE a.member_id = v_member AND a.program_id = program
            FOR NO KEY UPDATE;
            CONTINUE WHEN NOT FOUND;
            v_value := loyalty.tier_metric(v_member, v_as_of);
            v_cur := loyalty.tier_rank(v_tier);
            SELECT max(t.rank) INTO v_q FROM loyalty.tiers t
            WHERE t.program_id = program AND NOT t.invitation_only AND t.threshold <= v_value;
            v_new := NULL;
            v_action := 'none';
            -- the rules of the set-based statement below, in its order
            IF v_status = 'closed' THEN
                NULL;                                   -- closed members are left alone
            ELSIF v_q IS NOT NULL AND (v_cur IS NULL OR v_q > v_cur) THEN
                v_new := v_q; v_action := 'change';     -- qualified for more: up at once
            ELSIF v_cur IS NULL OR (v_q IS NOT NULL AND v_q >= v_cur) THEN
                IF v_grace IS NOT NULL THEN             -- qualified for the same: end any grace
                    v_action := 'clear_grace';
                END IF;
            ELSIF v_locked > v_as_of THEN
                NULL;                                   -- a manual or invitation lock holds
            ELSIF v_grace IS NULL AND v_p.tier_grace > interval '0' THEN
                v_action := 'start_grace';              -- grace starts
            ELSIF v_grace > v_as_of THEN
                NULL;                                   -- grace runs
            ELSE
                -- down: to the qualified tier, or one step (never below the qualified tier)
                v_action := 'change';
                IF v_p.tier_downgrade = 'to_qualified' THEN
                    v_new := v_q;
                ELSE
                    v_new := greatest(v_q, (SELECT max(t.rank) FROM loyalty.tiers t
                                            WHERE t.program_id = program AND NOT t.invitation_only AND t.rank < v_cur));
                END IF;
            END IF;
            IF v_action = 'start_grace' THEN
                UPDATE loyalty.accounts a SET tier_grace_until = v_as_of + v_p.tier_grace WHERE a.member_id = v_member;
            ELSIF v_action = 'clear_grace' THEN
                UPDATE loyalty.accounts a SET tier_grace_until = NULL WHERE a.member_id = v_member;
            ELSIF v_action = 'change' AND v_new IS DISTINCT FROM v_cur THEN
                SELECT loyalty.tier(t.rank, t.name) INTO v_to FROM loyalty.tiers t
                WHERE t.program_id = program AND t.rank = v_new;
                IF loyalty.tier_change(v_member, v_to,
                                       CASE WHEN v_new > coalesce(v_cur, -1) THEN 'qualified (review)'
                                            ELSE 'review: below the threshold' END) THEN
                    v_c := v_c + 1;
                END IF;
            END IF;
        END LOOP;
        RETURN QUERY SELECT v_last, v_n, v_c;
        RETURN;
    END IF;

    -- Lock the batch first, in its own statement: the next statement then
    -- reads with a snapshot taken after the locks were granted, so it sees
    -- what a concurrent earn committed while the review waited for it.  (No
    -- temporary table: a caller's own pg_temp table of the same name would
    -- be used by this SECURITY DEFINER function.)
    SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}') INTO v_ids
    FROM (SELECT a.member_id FROM loyalty.accounts a
          WHERE a.program_id = program AND a.member_id > after_member
          ORDER BY a.member_id LIMIT batch_size
          FOR NO KEY UPDATE OF a) x;
    v_n := cardinality(v_ids);
    v_last := v_ids[v_n];

    -- one statement: metrics, decisions, grace updates, tier changes,
    -- history and tier.changed events of the whole batch
    WITH batch AS (
        SELECT a.member_id, a.tier, a.status, a.tier_locked_until, a.tier_grace_until
        FROM loyalty.accounts a WHERE a.member_id = ANY (v_ids)
    ), win AS (
        SELECT b.*, CASE v_p.tier_window
            WHEN 'rolling' THEN v_as_of - make_interval(months => v_p.tier_window_months)
            WHEN 'calendar' THEN
                ((date_trunc('year', v_as_of AT TIME ZONE v_p.time_zone)
                  + make_interval(months => ((extract(month FROM v_as_of AT TIME ZONE v_p.time_zone)::integer - 1)
                                              / v_p.tier_window_months) * v_p.tier_window_months))
                 AT TIME ZONE v_p.time_zone)
            ELSE m.joined_at + make_interval(months => v_p.tier_window_months
                    * floor((extract(year FROM age(v_as_of, m.joined_at)) * 12 + extract(month FROM age(v_as_of, m.joined_at)))
                            / v_p.tier_window_months)::integer)
            END AS start
        FROM batch b JOIN loyalty.members m ON m.member_id = b.member_id
    ), e AS (
        SELECT w.member_id, l.occurred_at,
               coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM win w
        JOIN loyalty.ledger l ON l.member_id = w.member_id AND l.kind = 'earn' AND l.occurred_at <= v_as_of
             AND (l.occurred_at > w.start OR (v_p.tier_window <> 'rolling' AND l.occurred_at = w.start))
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
    ), met AS (
        SELECT w.member_id, CASE v_p.tier_metric
            WHEN 'spend' THEN coalesce(sum(e.spend), 0)
            WHEN 'points' THEN coalesce(sum(e.points), 0)
            ELSE count(DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date) FILTER (WHERE e.spend > 0)
            END AS value
        FROM win w LEFT JOIN e ON e.member_id = w.member_id
        GROUP BY w.member_id
    ), d AS (
        SELECT b.member_id, b.status, b.tier_locked_until, b.tier_grace_until,
               loyalty.tier_rank(b.tier) AS cur,
               (SELECT max(t.rank) FROM loyalty.tiers t
                WHERE t.program_id = program AND NOT t.invitation_only AND t.threshold <= met.value) AS q
        FROM batch b JOIN met ON met.member_id = b.member_id
    )
    , res AS (
    SELECT d.member_id, d.cur, d.q, x.new_rank, x.grace_until, x.action
    FROM d, LATERAL (
        SELECT * FROM (VALUES
            -- closed members are left alone
            (d.status = 'closed', NULL::integer, NULL::timestamptz, 'none'),
            -- qualified for more: up at once; for the same: end any grace
            (d.q IS NOT NULL AND (d.cur IS NULL OR d.q > d.cur), d.q, NULL, 'change'),
            (d.cur IS NULL OR (d.q IS NOT NULL AND d.q >= d.cur),
                NULL, NULL, CASE WHEN d.tier_grace_until IS NOT NULL THEN 'clear_grace' ELSE 'none' END),
            -- below: a manual or invitation lock holds
            (d.tier_locked_until > v_as_of, NULL, NULL, 'none'),
            -- grace starts, or runs
            (d.tier_grace_until IS NULL AND v_p.tier_grace > interval '0', NULL, v_as_of + v_p.tier_grace, 'start_grace'),
            (d.tier_grace_until > v_as_of, NULL, NULL, 'none'),
            -- down: to the qualified tier, or one step (never below the qualified tier)
            (true,
                CASE WHEN v_p.tier_downgrade = 'to_qualified' THEN d.q
                     ELSE greatest(d.q, (SELECT max(t.rank) FROM loyalty.tiers t
                                         WHERE t.program_id = program AND NOT t.invitation_only AND t.rank < d.cur)) END,
                NULL, 'change')
        ) AS v(cond, new_rank, grace_until, action)
        WHERE v.cond LIMIT 1
    ) x
    )
    , gr AS (
        UPDATE loyalty.accounts a SET tier_grace_until = res.grace_until
        FROM res WHERE a.member_id = res.member_id AND res.action IN ('start_grace', 'clear_grace')
        RETURNING a.member_id
    ), ch AS (
        SELECT res.member_id, b.tier AS from_tier,
               (SELECT loyalty.tier(x.rank, x.name) FROM loyalty.tiers x
                WHERE x.program_id = program AND x.rank = res.new_rank) AS to_tier,
               CASE WHEN res.new_rank > coalesce(res.cur, -1) THEN 'qualified (review)'
                    ELSE 'review: below the threshold' END AS reason
        FROM res JOIN batch b ON b.member_id = res.member_id
        WHERE res.action = 'change' AND res.new_rank IS DISTINCT FROM res.cur
    ), up AS (
        UPDATE loyalty.accounts a SET tier = ch.to_tier, tier_since = now(), tier_locked_until = NULL,
            tier_grace_until = NULL, updated_at = now()
        FROM ch WHERE a.member_id = ch.member_id
        RETURNING a.member_id
    ), hist AS (
        INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason)
        SELECT ch.member_id, ch.from_tier, ch.to_tier, ch.reason FROM ch
    ), ev AS (
        INSERT INTO loyalty.events (member_id, program_id, kind, payload)
        SELECT ch.member_id, program, 'tier.changed',
               jsonb_build_object('from', ch.from_tier::text, 'to', ch.to_tier::text, 'reason', ch.reason)
        FROM ch WHERE 'tier.changed' = ANY (v_p.event_kinds)
        RETURNING event_id, member_id
    )
    SELECT (SELECT count(*) FROM up),
           (SELECT count(pg_notify('loyalty_events',
                jsonb_build_object('event_id', ev.event_id, 'member_id', ev.member_id, 'kind', 'tier.changed')::text))
            FROM ev),
           (SELECT count(*) FROM gr)
    INTO v_c, r, r2;
    RETURN QUERY SELECT v_last, v_n, v_c;
END $$;
COMMENT ON FUNCTION loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) IS
    'One step of loyalty.review_tiers: review up to batch_size members of a program after a member id, set-based (on Citus member by member, same rules)';

-- Review one member (locking it): the batch review of just that member.
CREATE FUNCTION loyalty.review_member_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_metric text;
    v_changed bigint;
BEGIN
    PERFORM loyalty.require_member(review_member_tier.member);
    SELECT a.program_id, p.tier_metric INTO v_program, v_metric
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id OPERATOR(pg_catalog.=) a.program_id
    WHERE a.member_id OPERATOR(pg_catalog.=) member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_metric IS NULL THEN
        RETURN false;
    END IF;
    SELECT b.changed INTO v_changed
    FROM loyalty.review_tiers_batch(v_program, as_of, member OPERATOR(pg_catalog.-) 1, 1) b;
    RETURN v_changed OPERATOR(pg_catalog.>) 0;
END $$;
COMMENT ON FUNCTION loyalty.review_member_tier(bigint, timestamptz) IS
    'Review one member''s tier as of a time: upgrade if qualified, start or honour grace, then downgrade by the program''s rule';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
CREATE PROCEDURE loyalty.review_tiers(program bigint, as_of timestamptz DEFAULT NULL, batch_size integer DEFAULT 1000)
LANGUAGE plpgsql
AS $$
DECLARE
    v_as_of timestamptz := COALESCE(as_of, pg_catalog.now());
    v_after bigint := -1;
    v_step record;
    v_n bigint := 0;
    v_c bigint := 0;
BEGIN
    PERFORM loyalty.require_program(review_tiers.program);
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        SELECT * INTO v_step FROM loyalty.review_tiers_batch(program, v_as_of, v_after, batch_size);
        EXIT WHEN v_step.reviewed OPERATOR(pg_catalog.=) 0;
        v_after := v_step.last_member;
        v_n := v_n OPERATOR(pg_catalog.+) v_step.reviewed;
        v_c := v_c OPERATOR(pg_catalog.+) v_step.changed;
        COMMIT;
        RAISE NOTICE 'loyalty.review_tiers: % members reviewed, % tiers changed so far', v_n, v_c;
    END LOOP;
    RAISE NOTICE 'loyalty.review_tiers: done: % members reviewed, % tiers changed', v_n, v_c;
END $$;
COMMENT ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) IS
    'Batch job: review every member''s tier as of a time (default now), committing every batch_size members and reporting progress; safe to rerun or run concurrently';

SELECT pg_catalog.pg_extension_config_dump('loyalty.tiers', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier_history_change_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.set_tier_policy(bigint, text, text, integer, text, interval, boolean),
    loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb),
    loyalty.tier_window_start(bigint, timestamptz),
    loyalty.tier_metric(bigint, timestamptz),
    loyalty.qualified_tier(bigint, timestamptz),
    loyalty.tier_change(bigint, loyalty.tier, text, timestamptz),
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
    loyalty.define_tier(bigint, integer, text, numeric, numeric, boolean, jsonb),
    loyalty.assign_tier(bigint, loyalty.tier, timestamptz, text),
    loyalty.review_member_tier(bigint, timestamptz),
    loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer)
TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.review_tiers(bigint, timestamptz, integer) TO loyalty_admin;
