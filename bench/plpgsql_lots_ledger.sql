-- ---------------------------------------------------------------------------
-- Second reference ledger for bench/ledger.sh: the same bookkeeping as the
-- loyalty write path, hand-written in PL/pgSQL.  Points as lots with an
-- expiry, debits taken first-to-expire-first with one allocation row per lot
-- used (so a refund could give them back), lifetime totals and purchase
-- statistics on the account, the member's row as its lock.  Left out, as in
-- bench/plpgsql_ledger.sql: idempotency keys, earning rules, tiers, events,
-- SECURITY DEFINER / pinned search_path.  The tables have loyalty's keys
-- and indexes (member first, open-lot index partial on a generated flag).
-- Loaded by bench/ledger.sh into the benchmark database; not part of the
-- extension.
-- ---------------------------------------------------------------------------
CREATE SCHEMA bench_lots;

CREATE TABLE bench_lots.accounts (
    member_id           bigint PRIMARY KEY,
    balance             bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    lifetime_earned     bigint NOT NULL DEFAULT 0,
    lifetime_redeemed   bigint NOT NULL DEFAULT 0,
    purchase_count      bigint NOT NULL DEFAULT 0,
    purchase_amount     numeric NOT NULL DEFAULT 0,
    first_purchase_at   timestamptz,
    last_purchase_at    timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

CREATE TABLE bench_lots.ledger (
    member_id   bigint NOT NULL,
    entry_id    bigint GENERATED ALWAYS AS IDENTITY,
    kind        text NOT NULL,
    points      bigint NOT NULL,
    amount      numeric,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, entry_id)
);

CREATE TABLE bench_lots.lots (
    member_id   bigint NOT NULL,
    lot_id      bigint NOT NULL,
    original    bigint NOT NULL,
    remaining   bigint NOT NULL,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    is_open     boolean GENERATED ALWAYS AS (remaining > 0) STORED,
    -- keyed as loyalty.lots is: lot first, so a new lot goes to the right edge
    PRIMARY KEY (lot_id, member_id)
) WITH (fillfactor = 90);
CREATE INDEX lots_open_idx ON bench_lots.lots (member_id, expires_at, created_at) WHERE is_open;

CREATE TABLE bench_lots.allocations (
    member_id   bigint NOT NULL,
    entry_id    bigint NOT NULL,
    lot_id      bigint NOT NULL,
    points      bigint NOT NULL,
    PRIMARY KEY (entry_id, member_id, lot_id)
);

-- A purchase: floor(amount) points (earn rate 1) in a lot expiring in 2 years.
CREATE FUNCTION bench_lots.earn(member bigint, amount numeric)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_points bigint;
    v_entry bigint;
BEGIN
    IF member IS NULL OR amount IS NULL OR amount <= 0 THEN
        RAISE EXCEPTION 'member must not be null and amount must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_points := floor(amount)::bigint;
    PERFORM FROM bench_lots.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO bench_lots.ledger (member_id, kind, points, amount)
    VALUES (member, 'earn', v_points, amount) RETURNING entry_id INTO v_entry;
    INSERT INTO bench_lots.lots (member_id, lot_id, original, remaining, expires_at)
    VALUES (member, v_entry, v_points, v_points, now() + interval '2 years');
    UPDATE bench_lots.accounts a SET
        balance = a.balance + v_points,
        lifetime_earned = a.lifetime_earned + v_points,
        purchase_count = a.purchase_count + 1,
        purchase_amount = a.purchase_amount + amount,
        first_purchase_at = coalesce(a.first_purchase_at, now()),
        last_purchase_at = now(),
        updated_at = now()
    WHERE a.member_id = member;
    RETURN v_points;
END $$;

-- Spend points first-to-expire-first; refuses to overspend (LY001); returns
-- the ledger entry.
CREATE FUNCTION bench_lots.redeem(member bigint, points bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_balance bigint;
    v_entry bigint;
    v_left bigint := points;
    v_take bigint;
    v_lot record;
BEGIN
    IF member IS NULL OR points IS NULL OR points <= 0 THEN
        RAISE EXCEPTION 'member must not be null and points must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.balance INTO v_balance FROM bench_lots.accounts a WHERE a.member_id = member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_balance < points THEN
        RAISE EXCEPTION 'insufficient points: member % has %, % requested', member, v_balance, points
            USING ERRCODE = 'LY001';
    END IF;
    INSERT INTO bench_lots.ledger (member_id, kind, points)
    VALUES (member, 'redeem', -points) RETURNING entry_id INTO v_entry;
    FOR v_lot IN
        SELECT l.lot_id, l.remaining FROM bench_lots.lots l
        WHERE l.member_id = member AND l.is_open AND (l.expires_at IS NULL OR l.expires_at > now())
        ORDER BY l.expires_at, l.created_at, l.lot_id
    LOOP
        v_take := least(v_lot.remaining, v_left);
        UPDATE bench_lots.lots l SET remaining = l.remaining - v_take
        WHERE l.member_id = member AND l.lot_id = v_lot.lot_id;
        INSERT INTO bench_lots.allocations (member_id, entry_id, lot_id, points)
        VALUES (member, v_entry, v_lot.lot_id, v_take);
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;
    IF v_left > 0 THEN
        RAISE EXCEPTION 'insufficient points in lots: member %', member USING ERRCODE = 'LY001';
    END IF;
    UPDATE bench_lots.accounts a SET
        balance = a.balance - points,
        lifetime_redeemed = a.lifetime_redeemed + points,
        updated_at = now()
    WHERE a.member_id = member;
    RETURN v_entry;
END $$;
