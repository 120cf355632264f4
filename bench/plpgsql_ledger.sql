-- ---------------------------------------------------------------------------
-- Reference ledger for bench/ledger.sh: what a user would hand-write in
-- PL/pgSQL instead of using the loyalty extension.  One balance per member,
-- one ledger row per change, the account row as the member's lock, and no
-- overspend.  No lots, no expiry, no allocations, no idempotency keys, no
-- purchase statistics, no SECURITY DEFINER / pinned search_path.
-- Loaded by bench/ledger.sh into the benchmark database; not part of the
-- extension.
-- ---------------------------------------------------------------------------
CREATE SCHEMA bench_plpgsql;

CREATE TABLE bench_plpgsql.accounts (
    member_id   bigint PRIMARY KEY,
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0)
);

CREATE TABLE bench_plpgsql.ledger (
    id          bigserial PRIMARY KEY,
    member_id   bigint NOT NULL REFERENCES bench_plpgsql.accounts,
    delta       bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- a member's history is what such a ledger is read by
CREATE INDEX ledger_member_time_idx ON bench_plpgsql.ledger (member_id, created_at);

-- Credit floor(amount) points (earn rate 1); returns the points credited.
CREATE FUNCTION bench_plpgsql.earn(member bigint, amount numeric)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_points bigint;
BEGIN
    IF member IS NULL OR amount IS NULL OR amount <= 0 THEN
        RAISE EXCEPTION 'member must not be null and amount must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_points := floor(amount)::bigint;
    PERFORM FROM bench_plpgsql.accounts a WHERE a.member_id = member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO bench_plpgsql.ledger (member_id, delta) VALUES (member, v_points);
    UPDATE bench_plpgsql.accounts a SET balance = a.balance + v_points WHERE a.member_id = member;
    RETURN v_points;
END $$;

-- Spend points; refuses to overspend (LY001, like loyalty.redeem); returns
-- the ledger row id.
CREATE FUNCTION bench_plpgsql.redeem(member bigint, points bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_balance bigint;
    v_id bigint;
BEGIN
    IF member IS NULL OR points IS NULL OR points <= 0 THEN
        RAISE EXCEPTION 'member must not be null and points must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.balance INTO v_balance FROM bench_plpgsql.accounts a WHERE a.member_id = member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF v_balance < points THEN
        RAISE EXCEPTION 'insufficient points: member % has %, % requested', member, v_balance, points
            USING ERRCODE = 'LY001';
    END IF;
    INSERT INTO bench_plpgsql.ledger (member_id, delta) VALUES (member, -points) RETURNING id INTO v_id;
    UPDATE bench_plpgsql.accounts a SET balance = a.balance - points WHERE a.member_id = member;
    RETURN v_id;
END $$;
