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

CREATE FUNCTION chaos.op(k integer, op integer, n integer, client_no integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_m bigint := chaos.m(k);
    v_name text;
    v_state text := '00000';
    v_h bigint;
    v_e bigint;
    v_ref text;
BEGIN
    BEGIN
        CASE
        WHEN op <= 30 THEN
            v_name := 'earn';
            -- one reference per purchase, so a refund names one
            v_ref := client_no || '-' || clock_timestamp();
            PERFORM loyalty.earn(v_m, n, 'load', 'o' || v_ref, idempotency_key => 'e' || v_ref);
        WHEN op <= 50 THEN
            v_name := 'redeem';
            PERFORM loyalty.redeem(v_m, n::bigint::loyalty.points);
        WHEN op <= 60 THEN
            v_name := 'hold+capture';
            v_h := loyalty.hold(v_m, n::bigint::loyalty.points, '1 minute');
            PERFORM loyalty.capture(v_h);
        WHEN op <= 70 THEN
            v_name := 'hold+release';
            v_h := loyalty.hold(v_m, n::bigint::loyalty.points, '1 minute');
            PERFORM loyalty.release(v_h);
        WHEN op <= 75 THEN
            v_name := 'hold (left to expire)';
            PERFORM loyalty.hold(v_m, (1 + n % 5)::bigint::loyalty.points, '1 second');
        WHEN op <= 85 THEN
            v_name := 'reverse';
            SELECT max(entry_id) INTO v_e FROM loyalty.ledger
            WHERE member_id = v_m AND kind IN ('earn', 'redeem');
            IF v_e IS NULL THEN
                RAISE EXCEPTION 'nothing to reverse' USING ERRCODE = 'P0002';
            END IF;
            PERFORM loyalty.reverse(v_m, v_e, points => 1::bigint::loyalty.points);
        WHEN op <= 93 THEN
            v_name := 'award';
            PERFORM loyalty.award(v_m, n::bigint::loyalty.points, 'load');
        WHEN op <= 97 THEN
            v_name := 'expire';
            PERFORM loyalty.expire_member(v_m);
        WHEN op <= 99 THEN
            v_name := 'release expired';
            PERFORM loyalty.release_expired(v_m);
        WHEN op <= 106 THEN
            v_name := 'transfer';
            PERFORM loyalty.transfer(v_m, chaos.m(1 + (k * 13 + n) % 1000), n);
        WHEN op <= 109 THEN
            v_name := 'reverse transfer';
            SELECT max(l.entry_id) INTO v_e FROM loyalty.ledger l
            WHERE l.member_id = v_m AND l.kind = 'transfer' AND l.points::bigint < 0;
            IF v_e IS NULL THEN
                RAISE EXCEPTION 'nothing to reverse' USING ERRCODE = 'P0002';
            END IF;
            PERFORM loyalty.reverse_transfer(v_m, v_e, 'load');
        WHEN op <= 114 THEN
            v_name := 'household redeem';
            PERFORM loyalty.household_redeem(v_m, n);
        WHEN op <= 120 THEN
            -- a partial refund of the member's latest purchase (cumulative:
            -- LY004 once its amount is used up), which moves challenges back
            v_name := 'refund';
            SELECT l.reference INTO v_ref FROM loyalty.ledger l
            WHERE l.member_id = v_m AND l.kind = 'earn' AND l.reference IS NOT NULL
            ORDER BY l.entry_id DESC LIMIT 1;
            IF v_ref IS NULL THEN
                RAISE EXCEPTION 'nothing to refund' USING ERRCODE = 'P0002';
            END IF;
            PERFORM loyalty.refund(v_m, v_ref, 1 + n % 10);
        WHEN op <= 125 THEN
            -- a coupon at checkout, captured with the order or released
            v_name := 'coupon';
            v_e := loyalty.redeem_coupon(v_m, 'CHAOS10', 10 + n, reference => 'c' || client_no || '-' || clock_timestamp());
            IF n % 2 = 0 THEN
                PERFORM loyalty.capture_coupon(v_m, v_e);
            ELSE
                PERFORM loyalty.release_coupon(v_m, v_e, 'abandoned');
            END IF;
        WHEN op <= 129 THEN
            -- a batch import of three orders (in member order: no deadlock
            -- with the online calls)
            v_name := 'earn_batch';
            PERFORM loyalty.earn_batch(ARRAY[v_m, chaos.m(1 + k % 1000), chaos.m(1 + (k + 1) % 1000)],
                                       ARRAY[n, n + 1, n + 2]::numeric[],
                                       ARRAY['b' || client_no || '-' || clock_timestamp() || '-1',
                                             'b' || client_no || '-' || clock_timestamp() || '-2',
                                             'b' || client_no || '-' || clock_timestamp() || '-3']);
        ELSE
            v_name := 'merge';
            -- a rare merge of two hot members (the absorbed one is closed for good)
            PERFORM loyalty.merge_members(v_m, chaos.m(1 + (k * 7 + n) % 1000));
        END CASE;
    EXCEPTION WHEN OTHERS THEN
        v_state := SQLSTATE;
        -- 22023 only for a merge or a transfer that drew the same member twice
        IF v_state NOT IN (SELECT e.code FROM chaos.expected e)
           AND NOT (v_name IN ('merge', 'transfer') AND v_state = '22023') THEN
            RAISE;          -- unexpected: the client aborts and the run fails
        END IF;
    END;
    INSERT INTO chaos.outcomes VALUES (client_no, v_name, v_state, 1)
    ON CONFLICT ON CONSTRAINT outcomes_pkey DO UPDATE SET n = chaos.outcomes.n + 1;
    RETURN v_state;
END $$;
