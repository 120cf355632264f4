-- Setup of the chaos load (test/scripts/chaos_load.sh): 1,000 members with
-- points, and chaos.op(), which runs one operation and records its outcome.
CREATE EXTENSION IF NOT EXISTS loyalty;
CREATE SCHEMA chaos;
-- one row per client, operation and outcome, so clients never wait for each other here
CREATE TABLE chaos.outcomes (client integer, op text, code text, n bigint NOT NULL DEFAULT 0, PRIMARY KEY (client, op, code));
-- errors the API documents for these operations under contention
CREATE TABLE chaos.expected (code text PRIMARY KEY, meaning text);
INSERT INTO chaos.expected VALUES
    ('00000', 'success'), ('LY001', 'insufficient points'), ('LY003', 'hold already resolved or expired'),
    ('LY004', 'over-reversal'), ('55000', 'member closed by a merge'), ('P0002', 'no such hold or entry'),
    ('LY041', 'transfer limit reached'), ('LY060', 'member in no household (any more)'),
    ('LY070', 'coupon does not apply'), ('LY071', 'coupon limit reached');

SELECT loyalty.create_program('chaos', expiry_period => interval '1 year', pending_period => interval '0') AS p \gset
SELECT loyalty.set_transfer_rules(:p, sender_daily_points => 2000);
SELECT count(loyalty.enroll(:p, 'load', g::text)) FROM generate_series(1, 1000) g;
SELECT count(loyalty.earn(loyalty.member_id(:p, 'load', g::text), 100)) FROM generate_series(1, 1000) g;
-- 100 households of four hot members each (members 1-400)
SELECT count(loyalty.add_household_member(h, loyalty.member_id(:p, 'load', (4 * (g - 1) + k)::text)))
FROM generate_series(1, 100) g,
     LATERAL (SELECT loyalty.start_household(loyalty.member_id(:p, 'load', (4 * (g - 1) + 1)::text)) AS h) c,
     generate_series(2, 4) k;

-- challenges every purchase moves (a completion pays points, or a badge),
-- undone by refunds; a public coupon with limits per member and campaign
SELECT loyalty.create_challenge(:p, 'three-a-week', 'Three purchases a week', 'purchases', 3, 'week',
                                repeating => true, reward_points => '5');
SELECT loyalty.create_challenge(:p, 'spend-200', 'Spend 200 a month', 'spend', 200, 'month',
                                repeating => true, badge => 'big-spender');
SELECT loyalty.create_coupon_campaign(:p, 'chaos', 'bonus_points', 10, code => 'CHAOS10',
                                      uses_per_member => 3, max_uses => 2000);

-- with -v pools=1 (test/scripts/chaos_pools.sh) the households pool a fifth of
-- every earn instead, and household_redeem spends the pools
\if :pools
SELECT loyalty.set_household_rules(:p, pool_share => 0.2);
\endif

CREATE FUNCTION chaos.m(k integer) RETURNS bigint LANGUAGE sql STABLE AS
    $$ SELECT loyalty.member_id((SELECT program_id FROM loyalty.programs WHERE name = 'chaos'), 'load', k::text) $$;

-- The operation a draw op (1-130) of the load stands for.
CREATE FUNCTION chaos.op_name(op integer) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN op <= 30 THEN 'earn'
        WHEN op <= 50 THEN 'redeem'
        WHEN op <= 60 THEN 'hold+capture'
        WHEN op <= 70 THEN 'hold+release'
        WHEN op <= 75 THEN 'hold (left to expire)'
        WHEN op <= 85 THEN 'reverse'
        WHEN op <= 93 THEN 'award'
        WHEN op <= 97 THEN 'expire'
        WHEN op <= 99 THEN 'release expired'
        WHEN op <= 106 THEN 'transfer'
        WHEN op <= 109 THEN 'reverse transfer'
        WHEN op <= 114 THEN 'household redeem'
        WHEN op <= 120 THEN 'refund'
        WHEN op <= 125 THEN 'coupon'
        WHEN op <= 129 THEN 'earn_batch'
        ELSE 'merge' END $$;

-- A retried call must send the arguments of the first (else LY002), but
-- chaos.op resolves some itself, from a state that moves on: the members (an
-- identity follows a merge to the survivor), the entry a reversal undoes and
-- the purchase a refund names.
-- A real client knows what it sent; here a keyed call writes what it resolved
-- in the transaction of its effect, so a retry of a call that did commit sends
-- the same arguments (one that did not commit is still new: it resolves afresh).
CREATE TABLE chaos.calls (call_key text PRIMARY KEY, member bigint NOT NULL, other bigint, other2 bigint, entry bigint, ref text);

CREATE FUNCTION chaos.op(k integer, op integer, n integer, client_no integer, key text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_m bigint;
    v_other bigint;
    v_other2 bigint;
    v_ref text;
    v_name text := chaos.op_name(op);
    v_state text := '00000';
    v_result bigint;
    v_h bigint;
    v_e bigint;
BEGIN
    SELECT c.member, c.other, c.other2, c.entry, c.ref INTO v_m, v_other, v_other2, v_e, v_ref
    FROM chaos.calls c WHERE c.call_key = key;
    IF NOT FOUND THEN
        v_m := chaos.m(k);
        v_other := CASE v_name WHEN 'transfer' THEN chaos.m(1 + (k * 13 + n) % 1000)
                               WHEN 'merge' THEN chaos.m(1 + (k * 7 + n) % 1000)
                               WHEN 'earn_batch' THEN chaos.m(1 + k % 1000) END;
        v_other2 := CASE v_name WHEN 'earn_batch' THEN chaos.m(1 + (k + 1) % 1000) END;
    END IF;
    BEGIN
        CASE v_name
        WHEN 'earn' THEN
            -- one reference per purchase, so a refund names one
            v_ref := coalesce(key, client_no || '-' || clock_timestamp());
            v_result := loyalty.earn(v_m, n, 'load', 'o' || v_ref, idempotency_key => coalesce(key, 'e' || v_ref));
        WHEN 'redeem' THEN
            v_result := loyalty.redeem(v_m, n::bigint::loyalty.points, idempotency_key => key);
        WHEN 'hold+capture' THEN
            v_h := loyalty.hold(v_m, n::bigint::loyalty.points, '1 minute', idempotency_key => key || '/hold');
            v_result := loyalty.capture(v_h, idempotency_key => key || '/capture');
        WHEN 'hold+release' THEN
            v_h := loyalty.hold(v_m, n::bigint::loyalty.points, '1 minute', idempotency_key => key || '/hold');
            v_result := loyalty.release(v_h, idempotency_key => key || '/release');
        WHEN 'hold (left to expire)' THEN
            v_result := loyalty.hold(v_m, (1 + n % 5)::bigint::loyalty.points, '1 second', idempotency_key => key);
        WHEN 'reverse' THEN
            IF v_e IS NULL THEN
                SELECT max(entry_id) INTO v_e FROM loyalty.ledger
                WHERE member_id = v_m AND kind IN ('earn', 'redeem');
                IF v_e IS NULL THEN
                    RAISE EXCEPTION 'nothing to reverse' USING ERRCODE = 'P0002';
                END IF;
            END IF;
            v_result := loyalty.reverse(v_m, v_e, points => 1::bigint::loyalty.points, idempotency_key => key);
        WHEN 'award' THEN
            v_result := loyalty.award(v_m, n::bigint::loyalty.points, 'load', idempotency_key => key);
        WHEN 'expire' THEN
            -- takes no key: running it again changes nothing
            v_result := loyalty.expire_member(v_m);
        WHEN 'release expired' THEN
            -- takes no key, as expire
            v_result := loyalty.release_expired(v_m);
        WHEN 'transfer' THEN
            v_result := loyalty.transfer(v_m, v_other, n, idempotency_key => key);
        WHEN 'reverse transfer' THEN
            IF v_e IS NULL THEN
                SELECT max(l.entry_id) INTO v_e FROM loyalty.ledger l
                WHERE l.member_id = v_m AND l.kind = 'transfer' AND l.points::bigint < 0;
                IF v_e IS NULL THEN
                    RAISE EXCEPTION 'nothing to reverse' USING ERRCODE = 'P0002';
                END IF;
            END IF;
            v_result := loyalty.reverse_transfer(v_m, v_e, 'load', idempotency_key => key);
        WHEN 'household redeem' THEN
            v_result := loyalty.household_redeem(v_m, n, idempotency_key => key);
        WHEN 'refund' THEN
            -- a partial refund of the member's latest purchase (cumulative:
            -- LY004 once its amount is used up), which moves challenges back
            IF v_ref IS NULL THEN
                SELECT l.reference INTO v_ref FROM loyalty.ledger l
                WHERE l.member_id = v_m AND l.kind = 'earn' AND l.reference IS NOT NULL
                ORDER BY l.entry_id DESC LIMIT 1;
                IF v_ref IS NULL THEN
                    RAISE EXCEPTION 'nothing to refund' USING ERRCODE = 'P0002';
                END IF;
            END IF;
            v_result := loyalty.refund(v_m, v_ref, 1 + n % 10, idempotency_key => key);
        WHEN 'coupon' THEN
            -- a coupon at checkout, captured with the order or released (both
            -- answer the same again for a redemption resolved already)
            v_result := loyalty.redeem_coupon(v_m, 'CHAOS10', 10 + n,
                                              reference => 'c' || coalesce(key, client_no || '-' || clock_timestamp()),
                                              idempotency_key => key);
            IF n % 2 = 0 THEN
                PERFORM loyalty.capture_coupon(v_m, v_result);
            ELSE
                PERFORM loyalty.release_coupon(v_m, v_result, 'abandoned');
            END IF;
        WHEN 'earn_batch' THEN
            -- a batch import of three orders (their references are their
            -- keys, order:REF); the batch locks its members in order, so no
            -- deadlock with the online calls
            v_ref := coalesce(key, 'b' || client_no || '-' || clock_timestamp());
            v_result := (loyalty.earn_batch(ARRAY[v_m, v_other, v_other2], ARRAY[n, n + 1, n + 2]::numeric[],
                                            ARRAY[v_ref || '/1', v_ref || '/2', v_ref || '/3'])).orders;
        ELSE    -- merge
            -- a rare merge of two hot members (the absorbed one is closed for good)
            v_result := loyalty.merge_members(v_m, v_other, idempotency_key => key);
        END CASE;
        INSERT INTO chaos.calls SELECT key, v_m, v_other, v_other2, v_e, v_ref WHERE key IS NOT NULL ON CONFLICT DO NOTHING;
    EXCEPTION WHEN OTHERS THEN
        v_state := SQLSTATE;
        v_result := NULL;
        -- 22023 only for a merge or a transfer that drew the same member twice
        IF v_state NOT IN (SELECT e.code FROM chaos.expected e)
           AND NOT (v_name IN ('merge', 'transfer') AND v_state = '22023') THEN
            RAISE;          -- unexpected: the client aborts and the run fails
        END IF;
    END;
    INSERT INTO chaos.outcomes VALUES (client_no, v_name, v_state, 1)
    ON CONFLICT ON CONSTRAINT outcomes_pkey DO UPDATE SET n = chaos.outcomes.n + 1;
    RETURN v_state || coalesce(' ' || v_result, '');
END $$;
