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

CREATE FUNCTION loyalty.create_reward(program bigint, code text, name text, point_cost loyalty.points,
    stock bigint DEFAULT NULL, valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, per_member_limit integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_id bigint;
BEGIN
    PERFORM loyalty.require_program(create_reward.program);
    IF program IS NULL OR code IS NULL OR name IS NULL OR point_cost IS NULL THEN
        RAISE EXCEPTION 'program, code, name and point_cost must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.rewards (program_id, code, name, point_cost, stock, valid_from, valid_until,
                                     min_tier, per_member_limit)
        VALUES (create_reward.program, create_reward.code, create_reward.name, create_reward.point_cost,
                create_reward.stock, create_reward.valid_from, create_reward.valid_until,
                create_reward.min_tier, create_reward.per_member_limit)
        RETURNING reward_id INTO v_id;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid reward "%": %', code, SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'code: letters, digits, _ . -; point_cost > 0; stock >= 0; valid_until after valid_from; per_member_limit > 0.';
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a reward with code "%"', program, code USING ERRCODE = 'unique_violation';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer) IS
    'Add a reward to a program''s catalog; returns its id';

CREATE FUNCTION loyalty.restock_reward(reward bigint, units bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_stock bigint;
BEGIN
    UPDATE loyalty.rewards r SET stock = r.stock + units
    WHERE r.reward_id = reward AND r.stock IS NOT NULL AND r.stock + units >= 0
    RETURNING r.stock INTO v_stock;
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT FROM loyalty.rewards r WHERE r.reward_id = reward) THEN
            RAISE EXCEPTION 'reward % does not exist', reward USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'reward % has unlimited stock, or would go below zero', reward USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_stock;
END $$;
COMMENT ON FUNCTION loyalty.restock_reward(bigint, bigint) IS 'Add (or, negative, remove) units of a reward''s stock; returns the new stock';

CREATE FUNCTION loyalty.redeem_reward(member bigint, reward bigint, idempotency_key text DEFAULT NULL,
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
COMMENT ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) IS
    'Redeem a catalog reward: checks window, tier gate, per-member limit and stock atomically, spends the points, issues a voucher code';

CREATE FUNCTION loyalty.cancel_redemption(member bigint, redemption bigint, reason text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_x loyalty.redemptions;
    v_back loyalty.points;
    v_cancel bigint;
BEGIN
    PERFORM loyalty.require_member(cancel_redemption.member);
    IF member IS NULL OR redemption IS NULL THEN
        RAISE EXCEPTION 'member and redemption must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    SELECT * INTO v_x FROM loyalty.redemptions x WHERE x.member_id = member AND x.redemption_id = redemption;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'redemption % of member % does not exist', redemption, member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_x.status = 'cancelled' THEN
        RAISE EXCEPTION 'redemption % is already cancelled', redemption USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- the points go back to the lots they came from
    v_back := loyalty.reverse(member, v_x.entry_id, NULL, NULL, 'redemption:' || redemption,
                              coalesce(reason, 'redemption cancelled'));
    -- the reverse entry just written (a redemption is cancelled once, under the lock)
    SELECT l.entry_id INTO v_cancel FROM loyalty.ledger l
    WHERE l.member_id = member AND l.reference = 'redemption:' || redemption
      AND l.kind = 'reverse' AND l.source_entry = v_x.entry_id;
    UPDATE loyalty.rewards r SET stock = r.stock + 1 WHERE r.reward_id = v_x.reward_id AND r.stock IS NOT NULL;
    UPDATE loyalty.redemptions x SET status = 'cancelled', cancelled_at = now(), cancel_entry = v_cancel
    WHERE x.member_id = member AND x.redemption_id = redemption;
    RETURN v_back;
END $$;
COMMENT ON FUNCTION loyalty.cancel_redemption(bigint, bigint, text) IS
    'Cancel a redemption: points back to their original lots, the unit back to stock; returns the points given back';

CREATE FUNCTION loyalty.set_redemption_rules(program bigint, min_points loyalty.points DEFAULT '1',
    max_points loyalty.points DEFAULT NULL, max_share_of_order numeric DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM loyalty.require_program(set_redemption_rules.program);
    BEGIN
        INSERT INTO loyalty.redemption_rules (program_id, min_points, max_points, max_share_of_order)
        VALUES (set_redemption_rules.program, coalesce(set_redemption_rules.min_points, '1'),
                set_redemption_rules.max_points, set_redemption_rules.max_share_of_order)
        ON CONFLICT (program_id) DO UPDATE SET min_points = EXCLUDED.min_points, max_points = EXCLUDED.max_points,
            max_share_of_order = EXCLUDED.max_share_of_order;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid redemption rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value',
                HINT = 'min_points > 0, max_points >= min_points, 0 < max_share_of_order <= 1.';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
COMMENT ON FUNCTION loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric) IS
    'Limits on paying part of an order with points: minimum and maximum points per order, maximum share of the order amount';

CREATE FUNCTION loyalty.redeem_for_discount(member bigint, order_amount numeric, points loyalty.points,
                                            reference text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_value numeric;
    v_rules loyalty.redemption_rules;
    v_discount numeric;
BEGIN
    PERFORM loyalty.require_member(redeem_for_discount.member);
    IF member IS NULL OR order_amount IS NULL OR points IS NULL THEN
        RAISE EXCEPTION 'member, order_amount and points must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF order_amount = 'NaN' OR order_amount <= 0 OR order_amount = 'Infinity' THEN
        RAISE EXCEPTION 'order_amount must be a positive, finite amount' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id, p.point_value INTO v_program, v_value
    FROM loyalty.accounts a JOIN loyalty.programs p ON p.program_id = a.program_id
    WHERE a.member_id = member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO v_rules FROM loyalty.redemption_rules r WHERE r.program_id = v_program;
    v_rules.min_points := coalesce(v_rules.min_points, '1');
    IF points::bigint < v_rules.min_points::bigint THEN
        RAISE EXCEPTION 'at least % points must be redeemed on an order, got %', v_rules.min_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_rules.max_points IS NOT NULL AND points::bigint > v_rules.max_points::bigint THEN
        RAISE EXCEPTION 'at most % points can be redeemed on an order, got %', v_rules.max_points, points
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_discount := points::bigint * v_value;
    IF v_discount > order_amount THEN
        RAISE EXCEPTION 'a discount of % exceeds the order amount %', v_discount, order_amount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    IF v_rules.max_share_of_order IS NOT NULL AND v_discount > order_amount * v_rules.max_share_of_order THEN
        RAISE EXCEPTION 'points may pay at most % of an order (% of %), got a discount of %',
            v_rules.max_share_of_order, order_amount * v_rules.max_share_of_order, order_amount, v_discount
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Redeem fewer points.';
    END IF;
    PERFORM loyalty.redeem(member, points, NULL, reference, idempotency_key);
    RETURN v_discount;
END $$;
COMMENT ON FUNCTION loyalty.redeem_for_discount(bigint, numeric, loyalty.points, text, text) IS
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
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric),
    loyalty.redeem_for_discount(bigint, numeric, loyalty.points, text, text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.redeem_reward(bigint, bigint, text, text),
    loyalty.cancel_redemption(bigint, bigint, text),
    loyalty.redeem_for_discount(bigint, numeric, loyalty.points, text, text)
TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.create_reward(bigint, text, text, loyalty.points, bigint, timestamptz, timestamptz, loyalty.tier, integer),
    loyalty.restock_reward(bigint, bigint),
    loyalty.set_redemption_rules(bigint, loyalty.points, loyalty.points, numeric)
TO loyalty_admin;
