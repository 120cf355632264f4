-- Seeded random sequence of API calls checked against a small independent
-- model of each member's balances.  A failing seed becomes a regression test.
BEGIN;
SET search_path = loyalty, public;
SELECT plan(4);

SELECT setseed(0.42);
CREATE TEMP TABLE model (member bigint PRIMARY KEY, avail bigint NOT NULL DEFAULT 0, held bigint NOT NULL DEFAULT 0);
CREATE TEMP TABLE open_holds (hold bigint PRIMARY KEY, member bigint, pts bigint);
CREATE TEMP TABLE debits (entry bigint PRIMARY KEY, member bigint, open bigint);
CREATE TEMP TABLE credits (entry bigint PRIMARY KEY, member bigint, open bigint);
CREATE TEMP TABLE outcome (op text, ok boolean, sqlstate text);

SELECT loyalty.create_program('model', earn_rate => 1) AS p \gset
INSERT INTO model (member) SELECT loyalty.enroll(:p, 'pos', 'm' || g) FROM generate_series(1, 6) g;

DO $$
DECLARE
    i int; r float8; m bigint; n bigint; e bigint; h record; d record; a bigint;
BEGIN
    FOR i IN 1..600 LOOP
        SELECT member INTO m FROM model ORDER BY random() LIMIT 1;
        r := random();
        n := 1 + floor(random() * 60)::bigint;
        BEGIN
            IF r < 0.30 THEN                                   -- earn
                a := loyalty.earn(m, n)::bigint;
                UPDATE model SET avail = avail + a WHERE member = m;
                INSERT INTO credits SELECT entry_id, m, a FROM loyalty.ledger
                  WHERE member_id = m AND kind = 'earn' ORDER BY entry_id DESC LIMIT 1;
                INSERT INTO outcome VALUES ('earn', true, NULL);
            ELSIF r < 0.45 THEN                                -- redeem
                e := loyalty.redeem(m, n::loyalty.points);
                UPDATE model SET avail = avail - n WHERE member = m;
                INSERT INTO debits VALUES (e, m, n);
                INSERT INTO outcome VALUES ('redeem', true, NULL);
            ELSIF r < 0.58 THEN                                -- hold
                e := loyalty.hold(m, n::loyalty.points, '1 hour');
                UPDATE model SET avail = avail - n, held = held + n WHERE member = m;
                INSERT INTO open_holds VALUES (e, m, n);
                INSERT INTO outcome VALUES ('hold', true, NULL);
            ELSIF r < 0.68 THEN                                -- capture part of a hold
                SELECT * INTO h FROM open_holds ORDER BY random() LIMIT 1;
                CONTINUE WHEN h IS NULL;
                a := 1 + floor(random() * h.pts)::bigint;
                PERFORM loyalty.capture(h.hold, a::loyalty.points);
                UPDATE model SET held = held - h.pts, avail = avail + (h.pts - a) WHERE member = h.member;
                DELETE FROM open_holds WHERE hold = h.hold;
                INSERT INTO outcome VALUES ('capture', true, NULL);
            ELSIF r < 0.76 THEN                                -- release
                SELECT * INTO h FROM open_holds ORDER BY random() LIMIT 1;
                CONTINUE WHEN h IS NULL;
                PERFORM loyalty.release(h.hold);
                UPDATE model SET held = held - h.pts, avail = avail + h.pts WHERE member = h.member;
                DELETE FROM open_holds WHERE hold = h.hold;
                INSERT INTO outcome VALUES ('release', true, NULL);
            ELSIF r < 0.84 THEN                                -- give back part of a redemption
                SELECT * INTO d FROM debits WHERE open > 0 ORDER BY random() LIMIT 1;
                CONTINUE WHEN d IS NULL;
                a := 1 + floor(random() * d.open)::bigint;
                PERFORM loyalty.reverse(d.member, d.entry, a::loyalty.points);
                UPDATE model SET avail = avail + a WHERE member = d.member;
                UPDATE debits SET open = open - a WHERE entry = d.entry;
                INSERT INTO outcome VALUES ('reverse-debit', true, NULL);
            ELSIF r < 0.90 THEN                                -- take back part of an earn (forgive policy)
                SELECT * INTO d FROM credits WHERE open > 0 ORDER BY random() LIMIT 1;
                CONTINUE WHEN d IS NULL;
                a := 1 + floor(random() * d.open)::bigint;
                PERFORM loyalty.reverse(d.member, d.entry, a::loyalty.points);
                -- forgive: what is no longer available is written off
                UPDATE model SET avail = greatest(avail - a, 0) WHERE member = d.member;
                UPDATE credits SET open = open - a WHERE entry = d.entry;
                INSERT INTO outcome VALUES ('reverse-credit', true, NULL);
            ELSIF r < 0.95 THEN                                -- award
                PERFORM loyalty.award(m, n::loyalty.points, 'random award');
                UPDATE model SET avail = avail + n WHERE member = m;
                INSERT INTO outcome VALUES ('award', true, NULL);
            ELSE                                               -- adjust down
                PERFORM loyalty.adjust(m, (-n)::loyalty.points, 'random correction');
                UPDATE model SET avail = avail - n WHERE member = m;
                INSERT INTO outcome VALUES ('adjust', true, NULL);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO outcome VALUES ('error', false, SQLSTATE);
        END;
    END LOOP;
END $$;

SELECT is_empty($$SELECT sqlstate FROM outcome WHERE NOT ok AND sqlstate <> 'LY001'$$,
                'the only errors seen were insufficient points');
SELECT cmp_ok((SELECT count(*) FROM outcome WHERE ok), '>', 300::bigint, 'most random calls succeeded');
SELECT results_eq(
    $$SELECT b.member_id, b.available::bigint, b.held::bigint
      FROM model, LATERAL loyalty.balance(model.member) b ORDER BY 1$$,
    $$SELECT member, avail, held FROM model ORDER BY 1$$,
    'every member''s available and held points match the independent model');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds no broken invariant');

SELECT * FROM finish();
ROLLBACK;
