-- loyalty 1.2 -> 1.3 (ALTER EXTENSION loyalty UPDATE TO '1.3')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.3'" to load this file. \quit

-- == write path (issue 3) =====================================================


-- == Citus (issue 8) ==========================================================
-- 1.3 closes gaps of the Citus mode (README "Scale-out on Citus"); every
-- change below also holds on a database without Citus.

-- balance(): every table of its query filtered by the member itself, so Citus
-- plans the statement as one task on the member's shard.

CREATE OR REPLACE FUNCTION loyalty.balance(member bigint)
RETURNS TABLE (
    member_id bigint, available loyalty.points, pending loyalty.points, held loyalty.points,
    expired_unposted loyalty.points, debt loyalty.points, balance loyalty.points,
    lifetime_earned loyalty.points, lifetime_redeemed loyalty.points, lifetime_expired loyalty.points,
    next_expiry timestamptz, next_expiry_points loyalty.points, as_of timestamptz)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    -- Expiry and hold timeouts are exact at read time: a lot past its expiry
    -- is not available even before the batch runs, and an expired hold's
    -- points are available again before anything releases it.
    -- Every table is filtered by v_member itself, the correlated subquery
    -- too (not through h.member_id): Citus then plans the whole statement as
    -- one task on the member's shard; with the correlation alone it ran the
    -- holds part on every shard (about 0.3 s a call on 3 nodes).
    RETURN QUERY
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = v_member AND remaining OPERATOR(loyalty.>) '0'::loyalty.points
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = v_member AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = v_member AND h.status = 'active' AND h.expires_at <= now()
    )
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::loyalty.points,
           coalesce(l.pending, 0)::loyalty.points,
           (a.held::bigint - coalesce(h.points, 0))::loyalty.points,
           coalesce(l.expired, 0)::loyalty.points,
           a.debt, a.balance, a.lifetime_earned, a.lifetime_redeemed, a.lifetime_expired,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = v_member AND x.expires_at = l.next_expiry
                       AND x.remaining OPERATOR(loyalty.>) '0'::loyalty.points AND x.vests_at <= now()), 0)::loyalty.points,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = v_member;
END $$;


-- merge_members(): the two account locks as two single-member statements.

CREATE OR REPLACE FUNCTION loyalty.merge_members(survivor bigint, absorbed bigint, idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog_s bigint;
    v_prog_a bigint;
    v_status text;
    a_acc loyalty.accounts;
    v_hold bigint;
    v_out bigint;
    v_in bigint;
    v_moved bigint;
    v_lot record;
    v_hash bigint;
    v_prev record;
BEGIN
    PERFORM loyalty.require_member(merge_members.survivor);
    PERFORM loyalty.require_member(merge_members.absorbed);
    IF survivor IS NULL OR absorbed IS NULL THEN
        RAISE EXCEPTION 'survivor and absorbed must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF survivor OPERATOR(pg_catalog.=) absorbed THEN
        RAISE EXCEPTION 'cannot merge member % into itself', survivor USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- both account rows, always in member_id order, so merges never deadlock;
    -- one statement per member, so that each is routed to its shard on Citus
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) LEAST(survivor, absorbed) FOR UPDATE;
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) GREATEST(survivor, absorbed) FOR UPDATE;

    SELECT m.program_id, m.status INTO v_prog_s, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) survivor;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', survivor USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'surviving member % is closed', survivor USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    v_hash := pg_catalog.hashtextextended(pg_catalog.concat_ws('|', 'merge', survivor, absorbed), 0);
    IF idempotency_key IS NOT NULL THEN
        SELECT k.operation, k.request_hash, k.result INTO v_prev FROM loyalty.idempotency_keys k
        WHERE k.member_id OPERATOR(pg_catalog.=) survivor
          AND k.idempotency_key OPERATOR(pg_catalog.=) merge_members.idempotency_key;
        IF FOUND THEN
            IF v_prev.operation OPERATOR(pg_catalog.<>) 'merge' OR v_prev.request_hash OPERATOR(pg_catalog.<>) v_hash THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN v_prev.result::loyalty.points;
        END IF;
    END IF;

    SELECT m.program_id, m.status INTO v_prog_a, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', absorbed USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'member % is closed (already merged?)', absorbed USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_prog_s OPERATOR(pg_catalog.<>) v_prog_a THEN
        RAISE EXCEPTION 'members % and % belong to different programs', survivor, absorbed
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- open holds of the absorbed member go back to it before its lots move
    -- (those whose time is up first, as on any write: releasing them by id
    -- would be refused as expired)
    PERFORM loyalty.release_expired(absorbed);
    FOR v_hold IN SELECT h.hold_id FROM loyalty.holds h
                  WHERE h.member_id OPERATOR(pg_catalog.=) absorbed AND h.status OPERATOR(pg_catalog.=) 'active'
                  ORDER BY h.hold_id LOOP
        PERFORM loyalty.release(v_hold);
    END LOOP;

    SELECT * INTO STRICT a_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;
    v_moved := a_acc.balance::bigint;

    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, details)
    VALUES (absorbed, v_prog_a, 'merge', (OPERATOR(pg_catalog.-) v_moved)::loyalty.points,
            'merged into member ' || survivor, NULL,
            pg_catalog.jsonb_build_object('merged_into', survivor, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_out;
    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, idempotency_key, details)
    VALUES (survivor, v_prog_s, 'merge', v_moved::loyalty.points,
            'merged from member ' || absorbed, v_out, idempotency_key,
            pg_catalog.jsonb_build_object('merged_from', absorbed, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_in;

    -- every open lot moves with its vesting and expiry dates
    FOR v_lot IN SELECT l.lot_id, l.remaining, l.vests_at, l.expires_at FROM loyalty.lots l
                 WHERE l.member_id OPERATOR(pg_catalog.=) absorbed
                   AND l.remaining OPERATOR(loyalty.>) '0'::loyalty.points
                 ORDER BY l.lot_id LOOP
        INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
        VALUES (absorbed, v_out, v_lot.lot_id, v_lot.remaining);
        UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
        WHERE l.member_id OPERATOR(pg_catalog.=) absorbed AND l.lot_id OPERATOR(pg_catalog.=) v_lot.lot_id;
        -- one merge entry brings many lots: they number from the ledger's
        -- sequence, so they never collide with a credit's lot (= its entry_id)
        INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at, expires_at)
        VALUES (survivor, pg_catalog.nextval('loyalty.ledger_entry_id_seq'::pg_catalog.regclass), v_in,
                v_lot.remaining, v_lot.remaining, v_lot.vests_at, v_lot.expires_at);
    END LOOP;

    UPDATE loyalty.accounts s SET
        balance = (s.balance::bigint OPERATOR(pg_catalog.+) a_acc.balance::bigint)::loyalty.points,
        debt = (s.debt::bigint OPERATOR(pg_catalog.+) a_acc.debt::bigint)::loyalty.points,
        lifetime_earned = (s.lifetime_earned::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_earned::bigint)::loyalty.points,
        lifetime_redeemed = (s.lifetime_redeemed::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_redeemed::bigint)::loyalty.points,
        lifetime_expired = (s.lifetime_expired::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_expired::bigint)::loyalty.points,
        first_purchase_at = LEAST(s.first_purchase_at, a_acc.first_purchase_at),
        last_purchase_at = GREATEST(s.last_purchase_at, a_acc.last_purchase_at),
        purchase_count = s.purchase_count OPERATOR(pg_catalog.+) a_acc.purchase_count,
        purchase_days = s.purchase_days OPERATOR(pg_catalog.+) a_acc.purchase_days,
        purchase_amount = s.purchase_amount OPERATOR(pg_catalog.+) a_acc.purchase_amount,
        updated_at = now()
    WHERE s.member_id OPERATOR(pg_catalog.=) survivor;
    UPDATE loyalty.accounts a SET
        balance = '0', debt = '0', lifetime_earned = '0', lifetime_redeemed = '0', lifetime_expired = '0',
        first_purchase_at = NULL, last_purchase_at = NULL, purchase_count = 0, purchase_days = 0,
        purchase_amount = 0, status = 'closed', updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;

    UPDATE loyalty.identities i SET member_id = survivor WHERE i.member_id OPERATOR(pg_catalog.=) absorbed;
    UPDATE loyalty.members m SET status = 'closed', merged_into = survivor
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    -- members merged into the absorbed one now point at the survivor
    UPDATE loyalty.members m SET merged_into = survivor WHERE m.merged_into OPERATOR(pg_catalog.=) absorbed;

    IF idempotency_key IS NOT NULL THEN
        INSERT INTO loyalty.idempotency_keys (member_id, idempotency_key, operation, request_hash, result, entry_id)
        VALUES (survivor, idempotency_key, 'merge', v_hash, v_moved, v_in);
    END IF;
    RETURN v_moved::loyalty.points;
END $$;


-- The rules-version trigger bumps the node's own copy of loyalty.programs
-- when it fires on a shard of a Citus reference table;
-- create_earning_rule() without CASE x WHEN (Citus deparses it wrongly).

CREATE OR REPLACE FUNCTION loyalty.rules_version_bump() RETURNS trigger
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


CREATE OR REPLACE FUNCTION loyalty.create_earning_rule(
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


-- tier_metric() and qualified_tier(): no call of a querying function inside a
-- query that Citus routes to a shard.

CREATE OR REPLACE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
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


CREATE OR REPLACE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
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


-- Vouchers start with the member id: distinct by construction, checked per
-- member (one shard).

COMMENT ON COLUMN loyalty.redemptions.voucher IS 'Voucher code: the member id in hex, a dash, 16 random hex digits (gen_random_uuid); distinct across redemptions by construction';

CREATE OR REPLACE FUNCTION loyalty.redeem_reward(member bigint, reward bigint, idempotency_key text DEFAULT NULL,
                                      channel text DEFAULT NULL)
RETURNS TABLE (redemption_id bigint, voucher text, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_acc loyalty.accounts;
    v_r loyalty.rewards;
    v_prev loyalty.redemptions;
    v_used bigint;
    v_entry bigint;
    v_id bigint;
    v_voucher text;
BEGIN
    PERFORM loyalty.require_member(redeem_reward.member);
    IF member IS NULL OR reward IS NULL THEN
        RAISE EXCEPTION 'member and reward must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id = redeem_reward.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO v_prev FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.idempotency_key = redeem_reward.idempotency_key;
        IF FOUND THEN
            IF v_prev.reward_id <> reward THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN QUERY SELECT v_prev.redemption_id, v_prev.voucher, v_prev.points;
            RETURN;
        END IF;
    END IF;
    SELECT * INTO v_r FROM loyalty.rewards r WHERE r.reward_id = reward AND r.program_id = v_acc.program_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reward % does not exist in the program of member %', reward, member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT v_r.active OR (v_r.valid_from IS NOT NULL AND now() < v_r.valid_from)
       OR (v_r.valid_until IS NOT NULL AND now() >= v_r.valid_until) THEN
        RAISE EXCEPTION 'reward "%" is not available now', v_r.code USING ERRCODE = 'LY011',
            DETAIL = format('active: %s, valid from %s until %s', v_r.active, coalesce(v_r.valid_from::text, '-'),
                            coalesce(v_r.valid_until::text, '-'));
    END IF;
    IF v_r.min_tier IS NOT NULL
       AND (v_acc.tier IS NULL OR loyalty.tier_rank(v_acc.tier) < loyalty.tier_rank(v_r.min_tier)) THEN
        RAISE EXCEPTION 'reward "%" needs tier % or above', v_r.code, v_r.min_tier USING ERRCODE = 'LY012',
            DETAIL = format('The member''s tier is %s.', coalesce(v_acc.tier::text, 'none'));
    END IF;
    IF v_r.per_member_limit IS NOT NULL THEN
        SELECT count(*) INTO v_used FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.reward_id = reward AND x.status = 'issued';
        IF v_used >= v_r.per_member_limit THEN
            RAISE EXCEPTION 'member % already redeemed reward "%" % times (the limit)', member, v_r.code, v_used
                USING ERRCODE = 'LY013';
        END IF;
    END IF;
    IF v_r.stock IS NOT NULL THEN
        -- waits for a concurrent buyer of the same reward, then re-checks the stock
        UPDATE loyalty.rewards r SET stock = r.stock - 1 WHERE r.reward_id = reward AND r.stock > 0;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'reward "%" is out of stock', v_r.code USING ERRCODE = 'LY010';
        END IF;
    END IF;
    v_entry := loyalty.redeem(member, v_r.point_cost, channel, 'reward:' || v_r.code,
                              CASE WHEN idempotency_key IS NOT NULL THEN 'reward:' || idempotency_key END);
    -- the member id, then 64 bits from the strong random source: distinct from
    -- every other member's vouchers by the prefix, so only this member's are
    -- checked (one shard on Citus); the unique index is the last word
    LOOP
        v_voucher := upper(to_hex(member)) || '-' || upper(substr(md5(gen_random_uuid()::text), 1, 16));
        EXIT WHEN NOT EXISTS (SELECT FROM loyalty.redemptions x
                              WHERE x.member_id = redeem_reward.member AND x.voucher = v_voucher);
    END LOOP;
    INSERT INTO loyalty.redemptions (member_id, reward_id, points, entry_id, voucher, idempotency_key, channel)
    VALUES (member, reward, v_r.point_cost, v_entry, v_voucher, idempotency_key, channel)
    RETURNING redemptions.redemption_id INTO v_id;
    PERFORM loyalty.emit_event(member, 'reward.redeemed',
        jsonb_build_object('reward_id', reward, 'reward_code', v_r.code, 'redemption_id', v_id,
                           'voucher', v_voucher, 'points', v_r.point_cost::bigint));
    RETURN QUERY SELECT v_id, v_voucher, v_r.point_cost;
END $$;


-- refer(): the referral chain walked one member at a time; both account
-- locks as single-member statements.

CREATE OR REPLACE FUNCTION loyalty.referral_refusal(new_member bigint, referrer bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_up bigint := referral_refusal.referrer;
    v_depth integer := 0;
BEGIN
    PERFORM loyalty.require_member(referral_refusal.new_member);
    PERFORM loyalty.require_member(referral_refusal.referrer);
    IF EXISTS (SELECT FROM loyalty.referrals r WHERE r.member_id = new_member) THEN
        RETURN format('member %s was already referred', new_member);
    END IF;
    IF (SELECT a.purchase_count FROM loyalty.accounts a WHERE a.member_id = new_member) > 0 THEN
        RETURN format('member %s has already made a purchase', new_member);
    END IF;
    -- a loop: the referrer was itself referred, directly or further up, by
    -- the new member.  One lookup per member of the chain (at most 1000), each
    -- by its member_id: on Citus each is routed to that member's shard, where
    -- one recursive query across members cannot be planned.
    LOOP
        SELECT r.referrer INTO v_up FROM loyalty.referrals r WHERE r.member_id OPERATOR(pg_catalog.=) v_up;
        EXIT WHEN NOT FOUND OR v_depth OPERATOR(pg_catalog.>=) 1000;
        IF v_up OPERATOR(pg_catalog.=) new_member THEN
            RETURN format('member %s is in the referral chain of member %s', new_member, referrer);
        END IF;
        v_depth := v_depth OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN NULL;
END $$;


CREATE OR REPLACE FUNCTION loyalty.refer(new_member bigint, code text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog bigint;
    v_referrer bigint;
    v_rules loyalty.referral_rules;
    v_n bigint;
    v_why text;
BEGIN
    PERFORM loyalty.require_member(refer.new_member);
    IF new_member IS NULL OR code IS NULL THEN
        RAISE EXCEPTION 'new_member and code must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.program_id INTO v_prog FROM loyalty.accounts a WHERE a.member_id = new_member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', new_member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.member_id INTO v_referrer FROM loyalty.referral_codes c
    WHERE c.program_id = v_prog AND c.code = upper(refer.code);
    IF NOT FOUND THEN
        IF EXISTS (SELECT FROM loyalty.referral_codes c WHERE c.code = upper(refer.code)) THEN
            RAISE EXCEPTION 'referral refused: code "%" belongs to a member of another program', code
                USING ERRCODE = 'LY020', DETAIL = format('Member %s is in program %s.', new_member, v_prog);
        END IF;
        RAISE EXCEPTION 'referral refused: no member of program % has code "%"', v_prog, code USING ERRCODE = 'LY020';
    END IF;
    IF v_referrer = new_member THEN
        RAISE EXCEPTION 'referral refused: member % cannot refer itself', new_member USING ERRCODE = 'LY020';
    END IF;
    -- A refusal for good is raised before any lock: a purchase of a referred
    -- member locks it, then its referrer, so the reverse pair (the referrer
    -- entering its referee's code) must not wait for a lock.
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    -- both members, in member_id order (no deadlock with another referral);
    -- one statement per member, so that each is routed to its shard on Citus
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) least(new_member, v_referrer) FOR NO KEY UPDATE;
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) greatest(new_member, v_referrer) FOR NO KEY UPDATE;
    SELECT * INTO v_rules FROM loyalty.referral_rules r WHERE r.program_id = v_prog;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'referral refused: program % has no referral rules', v_prog USING ERRCODE = 'LY020',
            HINT = 'Set them with loyalty.set_referral_rules().';
    END IF;
    -- again under the locks: a racing referral or purchase has committed by now
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    IF v_rules.max_referrals_per_referrer IS NOT NULL THEN
        SELECT count(*) INTO v_n FROM loyalty.referrals r WHERE r.referrer = v_referrer;
        IF v_n >= v_rules.max_referrals_per_referrer THEN
            RAISE EXCEPTION 'referral refused: member % has reached % referrals', v_referrer, v_n USING ERRCODE = 'LY020',
                DETAIL = format('The program allows %s referrals per member.', v_rules.max_referrals_per_referrer);
        END IF;
    END IF;
    INSERT INTO loyalty.referrals (member_id, referrer, code) VALUES (new_member, v_referrer, upper(refer.code));
    UPDATE loyalty.accounts a SET referral_pending = true WHERE a.member_id = new_member;
    RETURN v_referrer;
END $$;


-- claim_events() and ack_events() in PL/pgSQL; on Citus claim_events() lists
-- across shards and claims member by member.

CREATE OR REPLACE FUNCTION loyalty.claim_events(max_events integer DEFAULT 100, consumer text DEFAULT NULL,
                                     visibility interval DEFAULT interval '5 minutes')
RETURNS SETOF loyalty.events
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_want bigint := greatest(coalesce(max_events, 100), 0);
    v_by text := coalesce(consumer, session_user::text);
    -- a claim not acknowledged within `visibility` is handed out again
    -- (at-least-once delivery)
    v_before timestamptz := now() - coalesce(visibility, interval '5 minutes');
    v_citus boolean := false;
    v_got bigint := 0;
    v_n bigint;
    v_asked bigint;
    v_found bigint;
    v_members bigint[];
    v_events bigint[];
    v_last_at timestamptz;
    v_last_id bigint;
    v_member bigint;
    v_ids bigint[];
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
                                WHERE d.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.events''::pg_catalog.regclass)'
            INTO v_citus;
    END IF;
    IF NOT v_citus THEN
        -- pending events, oldest first, skipping those another consumer holds
        RETURN QUERY
        WITH c AS (
            SELECT e.member_id, e.event_id FROM loyalty.events e
            WHERE e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
            ORDER BY e.created_at, e.event_id
            LIMIT v_want
            FOR UPDATE SKIP LOCKED
        )
        UPDATE loyalty.events e SET claimed_at = now(), claimed_by = v_by
        FROM c WHERE e.member_id = c.member_id AND e.event_id = c.event_id
        RETURNING e.*;
        RETURN;
    END IF;
    -- On Citus (loyalty.events distributed by member) a locking query cannot
    -- span shards: the oldest pending events are listed across the shards
    -- (no lock), then claimed member by member, each a statement on one shard
    -- that locks its rows with SKIP LOCKED and re-checks that they are still
    -- pending; events another consumer holds or has just claimed are skipped,
    -- and the listing goes on after the last one listed until enough are
    -- claimed or none are left.
    WHILE v_got < v_want LOOP
        v_asked := v_want - v_got;
        SELECT pg_catalog.array_agg(c.member_id ORDER BY c.created_at, c.event_id),
               pg_catalog.array_agg(c.event_id ORDER BY c.created_at, c.event_id),
               pg_catalog.max(c.created_at), pg_catalog.count(*)
        INTO v_members, v_events, v_last_at, v_found
        FROM (SELECT e.member_id, e.event_id, e.created_at FROM loyalty.events e
              WHERE e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
                AND (v_last_at IS NULL OR (e.created_at, e.event_id) > (v_last_at, v_last_id))
              ORDER BY e.created_at, e.event_id
              LIMIT v_asked) c;
        EXIT WHEN v_found = 0;
        v_last_id := v_events[v_found];     -- the last listed: the newest (created_at is max(...))
        FOR v_member, v_ids IN
            SELECT u.m, pg_catalog.array_agg(u.e) FROM unnest(v_members, v_events) u(m, e) GROUP BY u.m
        LOOP
            RETURN QUERY
            WITH c AS (
                SELECT e.member_id, e.event_id FROM loyalty.events e
                WHERE e.member_id = v_member AND e.event_id = ANY (v_ids)
                  AND e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE loyalty.events e SET claimed_at = now(), claimed_by = v_by
            FROM c WHERE e.member_id = v_member AND e.member_id = c.member_id AND e.event_id = c.event_id
            RETURNING e.*;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_got := v_got + v_n;
        END LOOP;
        EXIT WHEN v_found < v_asked;
    END LOOP;
END $$;


CREATE OR REPLACE FUNCTION loyalty.ack_events(event_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    -- PL/pgSQL, not SQL: Citus cannot plan an SQL function's parameterised
    -- statement on a distributed table
    UPDATE loyalty.events e SET acked_at = now()
    WHERE e.event_id = ANY (ack_events.event_ids) AND e.acked_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;


-- kpi_summary: points pending by a join instead of a correlated subquery.

CREATE OR REPLACE VIEW loyalty.kpi_summary AS
SELECT p.program_id, p.name AS program, p.currency,
       count(a.member_id)::bigint AS members,
       count(a.member_id) FILTER (WHERE a.last_purchase_at > now() - interval '90 days')::bigint AS active_members_90d,
       CASE WHEN count(a.member_id) FILTER (WHERE a.purchase_count > 0) > 0
            THEN round(count(a.member_id) FILTER (WHERE a.purchase_count > 1) * 1.0
                       / count(a.member_id) FILTER (WHERE a.purchase_count > 0), 4) END AS repeat_purchase_rate,
       CASE WHEN sum(a.purchase_count) > 0 THEN round(sum(a.purchase_amount) / sum(a.purchase_count), 2) END AS avg_order_value,
       coalesce(sum(a.balance::bigint), 0)::bigint AS points_outstanding,
       coalesce(sum(a.held::bigint), 0)::bigint AS points_held,
       coalesce(max(pp.pending), 0)::bigint AS points_pending,
       coalesce(sum(a.lifetime_earned::bigint), 0)::bigint AS points_issued,
       coalesce(sum(a.lifetime_redeemed::bigint), 0)::bigint AS points_redeemed,
       coalesce(sum(a.lifetime_expired::bigint), 0)::bigint AS points_expired,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_redeemed::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS redemption_rate,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_expired::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS breakage,
       round(coalesce(sum(a.balance::bigint + a.held::bigint), 0) * p.point_value, 2) AS liability
FROM loyalty.programs p LEFT JOIN loyalty.accounts a ON a.program_id = p.program_id AND a.status <> 'closed'
-- points still vesting, per program (a join, not a subquery per program: Citus
-- cannot plan a correlated subquery beside the programs reference table)
LEFT JOIN (SELECT x.program_id, sum(l.remaining::bigint) AS pending
           FROM loyalty.lots l JOIN loyalty.accounts x ON x.member_id = l.member_id
           WHERE l.remaining::bigint > 0 AND l.vests_at > now() GROUP BY x.program_id) pp ON pp.program_id = p.program_id
WHERE loyalty.program_visible(p.program_id)
GROUP BY p.program_id;
