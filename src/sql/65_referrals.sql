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

CREATE FUNCTION loyalty.set_referral_rules(program bigint, referrer_points loyalty.points, referee_points loyalty.points,
    min_purchase_amount numeric DEFAULT 0, max_referrals_per_referrer integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM loyalty.require_program(set_referral_rules.program);
    IF program IS NULL OR referrer_points IS NULL OR referee_points IS NULL THEN
        RAISE EXCEPTION 'program and both bonuses must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    BEGIN
        INSERT INTO loyalty.referral_rules (program_id, referrer_points, referee_points, min_purchase_amount,
                                            max_referrals_per_referrer)
        VALUES (set_referral_rules.program, set_referral_rules.referrer_points, set_referral_rules.referee_points,
                coalesce(set_referral_rules.min_purchase_amount, 0), set_referral_rules.max_referrals_per_referrer)
        ON CONFLICT (program_id) DO UPDATE SET referrer_points = EXCLUDED.referrer_points,
            referee_points = EXCLUDED.referee_points, min_purchase_amount = EXCLUDED.min_purchase_amount,
            max_referrals_per_referrer = EXCLUDED.max_referrals_per_referrer;
    EXCEPTION
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid referral rules: %', SQLERRM USING ERRCODE = 'invalid_parameter_value';
        WHEN foreign_key_violation THEN
            RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END;
END $$;
COMMENT ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer) IS
    'Set a program''s referral bonuses, qualifying purchase amount and cap per referrer';

CREATE FUNCTION loyalty.referral_code(member bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_program bigint;
    v_code text;
    -- no 0/O, 1/I/L: codes are read aloud and typed by hand
    c_alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
BEGIN
    PERFORM loyalty.require_member(referral_code.member);
    SELECT a.program_id INTO v_program FROM loyalty.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.code INTO v_code FROM loyalty.referral_codes c WHERE c.member_id = member ORDER BY c.created_at LIMIT 1;
    IF FOUND THEN
        RETURN v_code;
    END IF;
    LOOP
        SELECT string_agg(substr(c_alphabet, 1 + floor(random() * length(c_alphabet))::integer, 1), '')
        INTO v_code FROM generate_series(1, 8);
        BEGIN
            INSERT INTO loyalty.referral_codes (member_id, code, program_id) VALUES (member, v_code, v_program);
            RETURN v_code;
        EXCEPTION WHEN unique_violation THEN
            NULL;           -- another member's code: draw again
        END;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.referral_code(bigint) IS 'The member''s referral code (8 unambiguous characters), created on first call';

-- Internal: why new_member may not be referred by referrer, or NULL.  Each
-- reason, once true, stays true (referrals are never deleted, purchases never
-- uncounted), so refer checks them before it locks anything as well as after.
CREATE FUNCTION loyalty.referral_refusal(new_member bigint, referrer bigint)
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
COMMENT ON FUNCTION loyalty.referral_refusal(bigint, bigint) IS
    'Internal: the reason a referral of new_member by referrer is refused for good (already referred, already bought, a loop), or NULL';

CREATE FUNCTION loyalty.refer(new_member bigint, code text)
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
COMMENT ON FUNCTION loyalty.refer(bigint, text) IS
    'Link a new member (before any purchase) to the owner of a referral code; refuses self-referral, a second referrer, loops and capped referrers (LY020); returns the referrer';

-- Internal: called by the C earn path with the member's account locked.
CREATE FUNCTION loyalty.referral_purchase(member bigint, entry bigint, amount numeric)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ref loyalty.referrals;
    v_rules loyalty.referral_rules;
BEGIN
    PERFORM loyalty.require_member(referral_purchase.member);
    SELECT * INTO v_ref FROM loyalty.referrals r WHERE r.member_id = member AND r.status = 'pending';
    IF NOT FOUND THEN
        UPDATE loyalty.accounts a SET referral_pending = false WHERE a.member_id = member;
        RETURN false;
    END IF;
    SELECT r.* INTO v_rules FROM loyalty.referral_rules r JOIN loyalty.accounts a ON a.program_id = r.program_id
    WHERE a.member_id = member;
    IF amount < coalesce(v_rules.min_purchase_amount, 0) THEN
        RETURN false;           -- not a qualifying purchase: wait for the next one
    END IF;
    IF v_rules.referee_points::bigint > 0 THEN
        PERFORM loyalty.award(member, v_rules.referee_points, 'referral: welcome', NULL, 'referral:' || v_ref.code,
                              'referral:' || member);
    END IF;
    -- a referrer who left (or was merged away) gets nothing, and never blocks the sale
    IF v_rules.referrer_points::bigint > 0
       AND (SELECT a.status FROM loyalty.accounts a WHERE a.member_id = v_ref.referrer) = 'active' THEN
        -- the referrer may be locked after the new member: referrals never form loops
        PERFORM loyalty.award(v_ref.referrer, v_rules.referrer_points, 'referral: member ' || member || ' bought',
                              NULL, 'referral:' || v_ref.code, 'referral:' || member);
    END IF;
    UPDATE loyalty.referrals r SET status = 'rewarded', rewarded_at = now(), entry_id = entry WHERE r.member_id = member;
    UPDATE loyalty.accounts a SET referral_pending = false WHERE a.member_id = member;
    RETURN true;
END $$;
COMMENT ON FUNCTION loyalty.referral_purchase(bigint, bigint, numeric) IS
    'Internal: on a referred member''s purchase, pay both referral bonuses once the purchase qualifies';

SELECT pg_catalog.pg_extension_config_dump('loyalty.referral_rules', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.referral_codes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.referrals', '');

REVOKE ALL ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer),
    loyalty.referral_code(bigint), loyalty.refer(bigint, text),
    loyalty.referral_refusal(bigint, bigint),
    loyalty.referral_purchase(bigint, bigint, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.referral_code(bigint), loyalty.refer(bigint, text) TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.set_referral_rules(bigint, loyalty.points, loyalty.points, numeric, integer) TO loyalty_admin;
