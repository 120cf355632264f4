-- What a DBA may do to the extension's tables, and what the API's writes do
-- then: what an INSERT or UPDATE of the same row would do.  Runs with
-- loyalty.fast_store on and off, with the same output: where the fast store
-- would differ, both modes write through SQL statements (write_store() says
-- why); where it may write, "fast_unless_off" is true in both.
-- Statements that must run outside a transaction block (CREATE INDEX
-- CONCURRENTLY) keep this a pg_regress test.
SET search_path = loyalty, public;
\set VERBOSITY terse
CREATE FUNCTION pg_temp.fast_unless_off(t text) RETURNS boolean LANGUAGE sql AS $$
    SELECT store = 'fast' OR reason = 'loyalty.fast_store is off' FROM loyalty.write_store() WHERE table_name = t
$$;
SELECT create_program('dba', expiry_period => '1 year') AS p \gset
SELECT enroll(:p, 'pos', 'dba-1') AS m \gset
SELECT earn(:m, 100, reference => 'first');
SELECT table_name, pg_temp.fast_unless_off(table_name) FROM write_store() ORDER BY 1;

-- == column types ===========================================================
-- a narrowed type: a reference too long is refused, as by an INSERT
ALTER TABLE ledger ALTER COLUMN reference TYPE varchar(16);
SELECT store, reason FROM write_store() WHERE table_name = 'ledger';
SELECT earn(:m, 10, reference => 'order-0123456789-0123456789');
SELECT earn(:m, 10, reference => 'order-42');
SELECT reference, pg_typeof(reference) FROM ledger WHERE member_id = :m ORDER BY entry_id;
ALTER TABLE ledger ALTER COLUMN reference TYPE text;
-- a domain with a CHECK: its rule holds for the API too
CREATE DOMAIN public.dba_key AS text CHECK (VALUE ~ '^[a-z0-9:-]+$');
ALTER TABLE ledger ALTER COLUMN idempotency_key TYPE public.dba_key;
SELECT store, reason FROM write_store() WHERE table_name = 'ledger';
SELECT earn(:m, 10, idempotency_key => 'Bad Key!');
SELECT earn(:m, 10, idempotency_key => 'good-key');
ALTER TABLE ledger ALTER COLUMN idempotency_key TYPE text;
DROP DOMAIN public.dba_key;
-- a type no text converts to by assignment: refused, nothing written
ALTER TABLE ledger ALTER COLUMN reference TYPE uuid USING NULL;
SELECT store, reason FROM write_store() WHERE table_name = 'ledger';
SELECT earn(:m, 10, reference => 'b1a1c6de-0000-4000-8000-000000000001');
SELECT count(*) AS entries FROM ledger WHERE member_id = :m;
ALTER TABLE ledger ALTER COLUMN reference TYPE text;
-- a column added with a default: filled, as by an INSERT that leaves it out
ALTER TABLE ledger ADD COLUMN source_system text NOT NULL DEFAULT 'loyalty';
SELECT store, reason FROM write_store() WHERE table_name = 'ledger';
SELECT earn(:m, 3);
SELECT kind, points, source_system FROM ledger WHERE member_id = :m ORDER BY entry_id DESC LIMIT 1;
ALTER TABLE ledger DROP COLUMN source_system;
SELECT pg_temp.fast_unless_off('ledger');

-- == triggers and rules =====================================================
CREATE TABLE public.dba_audit (seq serial, what text, n bigint);
CREATE FUNCTION public.dba_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' AND TG_ARGV[0] = 'new_rows' THEN
        EXECUTE 'INSERT INTO public.dba_audit (what, n) SELECT $1, sum(points::bigint) FROM new_rows'
            USING TG_NAME;
    ELSIF TG_LEVEL = 'STATEMENT' THEN
        INSERT INTO public.dba_audit (what) VALUES (TG_NAME);
    ELSE
        INSERT INTO public.dba_audit (what, n) VALUES (TG_NAME, (to_jsonb(NEW) ->> TG_ARGV[0])::bigint);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_statement AFTER INSERT ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION public.dba_audit();
CREATE TRIGGER ledger_transition AFTER INSERT ON ledger REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.dba_audit('new_rows');
CREATE RULE lots_also AS ON INSERT TO lots DO ALSO
    INSERT INTO public.dba_audit (what, n) VALUES ('lots_also', NEW.original::bigint);
CREATE FUNCTION public.dba_cap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance::bigint > 1000 THEN
        RAISE EXCEPTION 'balance cap of 1000 points' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_cap BEFORE UPDATE OF balance ON accounts
    FOR EACH ROW EXECUTE FUNCTION public.dba_cap();
CREATE TRIGGER accounts_balance AFTER UPDATE OF balance ON accounts
    FOR EACH ROW EXECUTE FUNCTION public.dba_audit('balance');
CREATE TRIGGER accounts_status AFTER UPDATE OF status ON accounts
    FOR EACH ROW EXECUTE FUNCTION public.dba_audit('balance');
SELECT table_name, store, reason FROM write_store() WHERE table_name IN ('ledger', 'lots', 'accounts') ORDER BY 1;
SELECT earn(:m, 20);
SELECT what, n FROM public.dba_audit ORDER BY seq;
-- the cap refuses an earn that would pass it; nothing is written
SELECT earn(:m, 5000);
SELECT balance, (SELECT count(*) FROM ledger WHERE member_id = :m) AS entries FROM accounts WHERE member_id = :m;
DROP TRIGGER ledger_statement ON ledger;
DROP TRIGGER ledger_transition ON ledger;
DROP RULE lots_also ON lots;
DROP TRIGGER accounts_cap ON accounts;
-- AFTER ROW triggers are fired by the fast store too (UPDATE OF balance
-- included: its update declares the columns the SQL store's UPDATE sets)
TRUNCATE public.dba_audit;
SELECT table_name, pg_temp.fast_unless_off(table_name) FROM write_store()
WHERE table_name IN ('ledger', 'lots', 'accounts') ORDER BY 1;
-- a trigger on a generated column fires when what it is computed from is
-- updated (is_open from remaining), as for an UPDATE of that column
CREATE TRIGGER lots_open AFTER UPDATE OF is_open ON lots
    FOR EACH ROW EXECUTE FUNCTION public.dba_audit('remaining');
SELECT redeem(:m, '15') > 0 AS redeemed;
SELECT what, n FROM public.dba_audit ORDER BY seq;
DROP TRIGGER accounts_balance ON accounts;
DROP TRIGGER accounts_status ON accounts;
DROP TRIGGER lots_open ON lots;

-- == constraints ============================================================
-- accounts_sound made stricter under the same name: the new rule applies
ALTER TABLE accounts DROP CONSTRAINT accounts_sound, ADD CONSTRAINT accounts_sound CHECK (
    (balance OPERATOR(loyalty.>=) '0'::loyalty.points OR debt OPERATOR(loyalty.>) '0'::loyalty.points)
    AND held OPERATOR(loyalty.>=) '0'::loyalty.points
    AND debt OPERATOR(loyalty.>=) '0'::loyalty.points
    AND balance OPERATOR(loyalty.<=) '2000'::loyalty.points);
SELECT pg_temp.fast_unless_off('accounts');
SELECT earn(:m, 3000);
SELECT earn(:m, 30);
ALTER TABLE accounts DROP CONSTRAINT accounts_sound, ADD CONSTRAINT accounts_sound CHECK (
    (balance OPERATOR(loyalty.>=) '0'::loyalty.points OR debt OPERATOR(loyalty.>) '0'::loyalty.points)
    AND held OPERATOR(loyalty.>=) '0'::loyalty.points
    AND debt OPERATOR(loyalty.>=) '0'::loyalty.points);
-- a CHECK added to the ledger is checked for every entry
ALTER TABLE ledger ADD CONSTRAINT dba_small CHECK (points OPERATOR(loyalty.<) '500'::loyalty.points);
SELECT pg_temp.fast_unless_off('ledger');
SELECT earn(:m, 600);
ALTER TABLE ledger DROP CONSTRAINT dba_small;

-- == indexes ================================================================
-- an interrupted CREATE INDEX CONCURRENTLY leaves an invalid index behind
-- (here a unique one, refused by two lots of one transaction): the write
-- path never reads through it
SELECT enroll(:p, 'pos', 'dba-2') AS m2 \gset
BEGIN;
SELECT award(:m2, '5', 'a', expires_at => '2099-01-01') > 0 AS awarded;
SELECT award(:m2, '5', 'b', expires_at => '2099-01-01') > 0 AS awarded;
COMMIT;
DROP INDEX lots_open_idx;
CREATE UNIQUE INDEX CONCURRENTLY lots_open_idx ON lots (member_id, expires_at, created_at) WHERE is_open;
SELECT indisvalid FROM pg_index WHERE indexrelid = 'loyalty.lots_open_idx'::regclass;
SELECT store, reason FROM write_store() WHERE table_name = 'lots';
SELECT redeem(:m2, '7') > 0 AS redeemed;
SELECT sum(remaining::bigint) FROM lots WHERE member_id = :m2;
DROP INDEX lots_open_idx;
CREATE INDEX lots_open_idx ON lots (member_id, expires_at, created_at) WHERE is_open;
SELECT pg_temp.fast_unless_off('lots');
-- an index of another predicate cannot stand in for it
DROP INDEX lots_open_idx;
CREATE INDEX lots_open_idx ON lots (member_id, expires_at, created_at) WHERE remaining OPERATOR(loyalty.>) '100'::loyalty.points;
SELECT store, reason FROM write_store() WHERE table_name = 'lots';
SELECT redeem(:m2, '1') > 0 AS redeemed;
DROP INDEX lots_open_idx;
CREATE INDEX lots_open_idx ON lots (member_id, expires_at, created_at) WHERE is_open;

-- == replica identity ======================================================
-- (without wal_level = logical PostgreSQL warns that nothing is published)
SET client_min_messages = error;
CREATE PUBLICATION dba_pub FOR TABLE accounts;
RESET client_min_messages;
ALTER TABLE accounts REPLICA IDENTITY NOTHING;
UPDATE accounts SET updated_at = updated_at WHERE member_id = :m;
SELECT earn(:m, 1);
ALTER TABLE accounts REPLICA IDENTITY DEFAULT;
DROP PUBLICATION dba_pub;

-- == challenge progress ====================================================
-- a purchase writes its challenges' progress (the member's state row: the
-- latest period of each challenge) and facts through the same stores: an
-- AFTER ROW trigger fires in both, a CHECK a DBA adds holds, and a column the
-- store does not write sends the rows to an INSERT (its default filled)
SELECT create_challenge(:p, 'dba-three', 'Three purchases', 'purchases', 3, 'campaign', badge => 'dba') AS ch \gset
SELECT enroll(:p, 'pos', 'dba-3') AS m3 \gset
CREATE FUNCTION public.dba_audit_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.dba_audit (what, n) VALUES (TG_NAME, NEW.period_values[1]);
    RETURN NULL;
END $$;
CREATE TRIGGER progress_row AFTER INSERT OR UPDATE ON challenge_state
    FOR EACH ROW EXECUTE FUNCTION public.dba_audit_state();
TRUNCATE public.dba_audit;
SELECT table_name, pg_temp.fast_unless_off(table_name) FROM write_store()
WHERE table_name IN ('challenge_state', 'challenge_periods', 'challenge_facts') ORDER BY 1;
SELECT earn(:m3, 10), earn(:m3, 10);
SELECT what, n FROM public.dba_audit ORDER BY seq;
DROP TRIGGER progress_row ON challenge_state;
ALTER TABLE challenge_state ADD CONSTRAINT dba_at_most_two CHECK (period_values[1] <= 2);
SELECT earn(:m3, 10);
SELECT value, completed_at IS NOT NULL AS completed FROM challenge_progress WHERE member_id = :m3;
ALTER TABLE challenge_state DROP CONSTRAINT dba_at_most_two;
ALTER TABLE challenge_state ADD COLUMN dba_note text DEFAULT 'noted';
ALTER TABLE challenge_facts ADD COLUMN dba_note text DEFAULT 'noted';
SELECT table_name, store, reason FROM write_store()
WHERE table_name IN ('challenge_state', 'challenge_facts') ORDER BY 1;
SELECT enroll(:p, 'pos', 'dba-4') AS m4 \gset
SELECT earn(:m4, 10);
SELECT p.value, s.dba_note, f.dba_note AS fact_note
FROM challenge_progress p JOIN challenge_state s USING (member_id) JOIN challenge_facts f USING (member_id)
WHERE p.member_id = :m4;
SELECT earn(:m3, 10);
SELECT value, completed_at IS NOT NULL AS completed FROM challenge_progress WHERE member_id = :m3;
ALTER TABLE challenge_state DROP COLUMN dba_note;
ALTER TABLE challenge_facts DROP COLUMN dba_note;
SELECT set_challenge_active(:ch, false);
-- a period that a later one replaces moves to challenge_periods, and a fact
-- dated in it moves it there, through the same stores: a DBA's trigger on
-- that table sees both rows
SELECT create_challenge(:p, 'dba-monthly', 'Five purchases a month', 'purchases', 5, 'month', repeating => true,
                        badge => 'dba-monthly') AS chm \gset
SELECT enroll(:p, 'pos', 'dba-5') AS m5 \gset
CREATE TRIGGER period_row AFTER INSERT OR UPDATE ON challenge_periods
    FOR EACH ROW EXECUTE FUNCTION public.dba_audit('value');
TRUNCATE public.dba_audit;
SELECT earn(:m5, 10, reference => 'm5a', occurred_at => date_trunc('month', now()) - interval '10 days');
SELECT earn(:m5, 10, reference => 'm5b');
SELECT earn(:m5, 10, reference => 'm5c', occurred_at => date_trunc('month', now()) - interval '9 days');
SELECT what, n FROM public.dba_audit ORDER BY seq;
SELECT p.value, EXISTS (SELECT FROM challenge_periods h
                        WHERE h.member_id = p.member_id AND h.period_start = p.period_start) AS in_periods
FROM challenge_progress p WHERE p.member_id = :m5 ORDER BY p.period_start;
DROP TRIGGER period_row ON challenge_periods;
SELECT set_challenge_active(:chm, false);

-- == a rule on members ====================================================
-- the fast store reads nothing of a table with rules: a challenge of the
-- first days of membership reads joined_at through SQL, and still counts
-- from the day the member joined
CREATE RULE dba_members_changed AS ON UPDATE TO members DO ALSO NOTIFY dba_members;
SELECT store, reason FROM write_store() WHERE table_name = 'members';
SELECT create_program('dba-joining') AS jp \gset
SELECT create_challenge(:jp, 'welcome', 'Two purchases in your first month', 'purchases', 2, 'joining',
                        period_days => 30, badge => 'welcome') AS jc \gset
SELECT enroll(:jp, 'app', 'dba-joining-1') AS jm \gset
SELECT earn(:jm, 5, reference => 'j0', occurred_at => now() - interval '1 day');
SELECT earn(:jm, 5, reference => 'j1');
SELECT value, period_start = (SELECT joined_at FROM members WHERE member_id = :jm) AS from_joining,
       period_end - period_start AS length
FROM challenge_progress WHERE member_id = :jm AND challenge_id = :jc;
DROP RULE dba_members_changed ON members;
SELECT pg_temp.fast_unless_off('members');

-- == a partitioned ledger with a foreign key and a row trigger ================
-- the DBA's foreign key survives partitioning; writes leak nothing (a
-- WARNING here would fail the test)
ALTER TABLE ledger ADD CONSTRAINT dba_ledger_member FOREIGN KEY (member_id) REFERENCES members;
SELECT partition_ledger('1 month', 1) > 0 AS partitioned;
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'loyalty.ledger'::regclass AND contype = 'f';
CREATE TRIGGER ledger_row AFTER INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION public.dba_audit('points');
TRUNCATE public.dba_audit;
SELECT pg_temp.fast_unless_off('ledger');
SELECT earn(:m, 8);
SELECT award(:m, '9', 'goodwill') > 0 AS awarded;
SELECT what, n FROM public.dba_audit ORDER BY seq;
SELECT * FROM verify();

-- back to an unaltered installation for the tests that follow
DROP EXTENSION loyalty CASCADE;
DROP TABLE public.dba_audit;
DROP FUNCTION public.dba_audit(), public.dba_audit_state(), public.dba_cap();
CREATE EXTENSION loyalty;
