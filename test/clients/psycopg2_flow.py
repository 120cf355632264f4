#!/usr/bin/python3
"""The documented loyalty flow through psycopg2 (test/scripts/clients.sh).

Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE) to
a database where the extension exists, prints one "ok ..." or "FAIL ..."
line per check and exits 1 on any failure.
"""
import json
import select
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg2
from psycopg2.extras import Json, RealDictCursor

failures = 0


def check(what, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + what + (f": {detail}" if detail else ""))
    failures += 0 if cond else 1


def one(cur, sql, *args):
    cur.execute(sql, args)
    return cur.fetchone()[0]


def types(row):
    return {k: type(v).__name__ for k, v in row.items()}


conn = psycopg2.connect("")
conn.autocommit = True
cur = conn.cursor()
name = "psycopg2"

program = one(cur, "SELECT loyalty.create_program(%s, currency => %s, point_value => %s, earn_rate => %s,"
              " expiry_period => %s, pending_period => %s)",
              f"{name} flow", "EUR", Decimal("0.01"), 10, timedelta(days=365), timedelta(days=14))
member = one(cur, "SELECT loyalty.enroll(%s, %s, %s, region => %s, birthday => %s)",
             program, "pos", f"{name}-card-0042", "Lyon", date(1990, 4, 1))
check("create_program and enroll return int ids", type(program) is int and type(member) is int,
      f"program {program}, member {member}")
check("link_identity returns bool", one(cur, "SELECT loyalty.link_identity(%s, %s, %s)",
                                         member, "web", f"{name}-ana@example.org") is True)

# earn: amount as Decimal; the points credited (bigint) arrive as int
earned = one(cur, "SELECT loyalty.earn(%s, %s, channel => %s, reference => %s, idempotency_key => %s)",
             member, Decimal("23.40"), "pos", "order-981", "pos-17:order-981")
check("earn(Decimal('23.40')) returns points as int", earned == 234, repr(earned))

# lines: a list of dicts is not adaptable as is; Json() sends it as json
lines = [{"category": "books", "product": "B-1", "quantity": 2, "amount": 30.00},
         {"category": "food", "product": "F-9", "quantity": 1, "amount": 12.00}]
occurred = datetime.now(timezone.utc) - timedelta(hours=1)
sql_lines = "SELECT loyalty.earn(%s, NULL, reference => %s, occurred_at => %s, lines => %s)"
try:
    one(cur, sql_lines, member, "order-982", occurred, lines)
    check("lines as a list of dicts is refused (Json() needed)", False, "it was accepted")
except psycopg2.ProgrammingError as e:
    check("lines as a list of dicts is refused (Json() needed)", "can't adapt type 'dict'" in str(e),
          f"{type(e).__name__}: {e}")
earned = one(cur, sql_lines, member, "order-982", occurred, Json(lines))
check("earn(lines => Json(list of dicts), occurred_at => aware datetime)", earned == 420, repr(earned))

# how parameters arrive: psycopg2 writes every one into the statement as a literal
sent = {"int": 5, "big int": 2**40, "Decimal": Decimal("23.40"), "float": 9.99, "str": "x",
        "date": date(1990, 4, 1), "datetime": occurred, "timedelta": timedelta(minutes=5), "Json": Json(lines)}
cur.execute("SELECT " + ", ".join(["pg_typeof(%s)::text"] * len(sent)), list(sent.values()))
arrived = dict(zip(sent, cur.fetchone()))
check("parameters arrive as literals", arrived == {
    "int": "integer", "big int": "bigint", "Decimal": "numeric", "float": "numeric", "str": "unknown",
    "date": "date", "datetime": "timestamp with time zone", "timedelta": "interval", "Json": "unknown"}, arrived)

# award, redeem, hold, capture with int points; reverse by a Decimal amount
award = one(cur, "SELECT loyalty.award(%s, %s, %s)", member, 500, "welcome bonus")
redeem = one(cur, "SELECT loyalty.redeem(%s, %s, channel => %s)", member, 50, "app")
hold = one(cur, "SELECT loyalty.hold(%s, %s, ttl => %s)", member, 300, timedelta(minutes=5))
capture = one(cur, "SELECT loyalty.capture(%s)", hold)
check("award/redeem/hold/capture with int points return int ids",
      all(type(x) is int for x in (award, redeem, hold, capture)), f"{award} {redeem} {hold} {capture}")
entry = one(cur, "SELECT entry_id FROM loyalty.history(%s) WHERE reference = %s AND kind = 'earn'",
            member, "order-981")
reversed_ = one(cur, "SELECT loyalty.reverse(%s, %s, amount => %s)", member, entry, Decimal("11.70"))
check("reverse(amount => Decimal('11.70')) takes back half", reversed_ == 117, repr(reversed_))

# balance(): bigint columns are int, timestamptz a datetime
cur = conn.cursor(cursor_factory=RealDictCursor)
cur.execute("SELECT available, pending, held, balance, as_of FROM loyalty.balance(%s)", (member,))
bal = cur.fetchone()
check("balance(): available 150, pending 537, held 0",
      (bal["available"], bal["pending"], bal["held"]) == (150, 537, 0), dict(bal))
check("balance() types", types(bal) == {"available": "int", "pending": "int", "held": "int",
                                         "balance": "int", "as_of": "datetime"}, types(bal))

cur.execute("SELECT entry_id, kind, points, amount, created_at, details FROM loyalty.history(%s)", (member,))
rows = cur.fetchall()
kinds = sorted({r["kind"] for r in rows})
check("history() has every kind written", kinds == ["award", "capture", "earn", "hold", "redeem", "reverse"],
      kinds)
row = next(r for r in rows if r["kind"] == "earn" and r["details"] is not None)  # the lines earn
check("history() types (bigint, text, bigint, numeric, timestamptz, jsonb)",
      types(row) == {"entry_id": "int", "kind": "str", "points": "int", "amount": "Decimal",
                     "created_at": "datetime", "details": "dict"}
      and row["amount"] == Decimal("42.0") and row["created_at"].tzinfo is not None
      and row["details"]["points"] == 420, types(row))

# the BI views
cur.execute("SELECT members, points_outstanding, liability FROM loyalty.kpi_summary WHERE program_id = %s",
            (program,))
kpi = cur.fetchone()
check("kpi_summary: members (int), points_outstanding and liability (Decimal)",
      kpi["members"] == 1 and types(kpi) == {"members": "int", "points_outstanding": "Decimal",
                                             "liability": "Decimal"}, dict(kpi))
cur.execute("SELECT frequency, monetary, first_purchase, segment FROM loyalty.member_rfm WHERE member_id = %s",
            (member,))
rfm = cur.fetchone()
check("member_rfm: frequency, monetary (Decimal), first_purchase (date), segment",
      rfm is not None and types(rfm) == {"frequency": "int", "monetary": "Decimal",
                                         "first_purchase": "date", "segment": "str"}, rfm and dict(rfm))
cur = conn.cursor()

# events: LISTEN on a second connection, earn, receive the NOTIFY
listener = psycopg2.connect("")
listener.autocommit = True
listener.cursor().execute("LISTEN loyalty_events")
one(cur, "SELECT loyalty.earn(%s, %s, reference => %s)", member, Decimal("5.00"), "order-983")
payload = None
if select.select([listener], [], [], 10)[0]:
    listener.poll()
    while listener.notifies and payload is None:
        n = listener.notifies.pop(0)
        p = json.loads(n.payload)
        if p["member_id"] == member and p["kind"] == "points.earned":
            payload = p
check("LISTEN loyalty_events receives points.earned", payload is not None, payload)
listener.close()

# a float amount: psycopg2 writes it as a literal (9.99), which is a numeric constant
earned = one(cur, "SELECT loyalty.earn(%s, %s, reference => %s)", member, 9.99, "order-984")
check("a float amount (9.99) is sent as a literal and works", earned == 99, repr(earned))
# a list of Json is written as ARRAY['{...}', ...]: one order line each
earned = one(cur, sql_lines, member, "order-987", occurred, [Json(line) for line in lines])
check("earn(lines => [Json(line), ...]) (an array)", earned == 420, repr(earned))

# errors: the SQLSTATE is e.pgcode
try:
    one(cur, "SELECT loyalty.redeem(%s, %s)", member, 1000000)
    check("redeem beyond the balance raises LY001", False, "no error")
except psycopg2.Error as e:
    check("redeem beyond the balance raises LY001", e.pgcode == "LY001", f"{type(e).__name__} {e.pgcode}")
first = one(cur, "SELECT loyalty.award(%s, %s, %s, idempotency_key => %s)", member, 10, "dup", f"{name}-k")
again = one(cur, "SELECT loyalty.award(%s, %s, %s, idempotency_key => %s)", member, 10, "dup", f"{name}-k")
check("a replay returns the first entry", first == again, f"{first} {again}")
try:
    one(cur, "SELECT loyalty.award(%s, %s, %s, idempotency_key => %s)", member, 20, "dup", f"{name}-k")
    check("a key reused with other points raises LY002", False, "no error")
except psycopg2.Error as e:
    check("a key reused with other points raises LY002", e.pgcode == "LY002", f"{type(e).__name__} {e.pgcode}")

# a transfer to another member: int and Decimal points
friend = one(cur, "SELECT loyalty.enroll(%s, %s, %s)", program, "app", f"{name}-friend")
one(cur, "SELECT loyalty.set_transfer_rules(%s, max_points => %s)", program, 100)
sent = one(cur, "SELECT loyalty.transfer(%s, %s, %s, %s, %s)", member, friend, 7, "a gift", f"{name}-t1")
sent2 = one(cur, "SELECT loyalty.transfer(%s, %s, %s)", member, friend, Decimal("3"))
check("transfer() with int and Decimal points returns int entries",
      type(sent) is int and type(sent2) is int, f"{sent} {sent2}")
check("the friend has 10", one(cur, "SELECT available FROM loyalty.balance(%s)", friend) == 10)
try:
    one(cur, "SELECT loyalty.transfer(%s, %s, %s)", member, friend, 101)
    check("a transfer above max_points raises LY040", False, "no error")
except psycopg2.Error as e:
    check("a transfer above max_points raises LY040", e.pgcode == "LY040", f"{type(e).__name__} {e.pgcode}")

# a profile update: a date and JSON objects
changed = one(cur, "SELECT loyalty.update_member(%s, birthday => %s, consent => %s, attributes => %s)",
              friend, date(1990, 4, 1), Json({"email": True}), Json({"vip": True}))
check("update_member(date, Json(dict), Json(dict)) changes three fields", changed == 3, repr(changed))
cur.execute("SELECT * FROM loyalty.verify()")
check("verify() finds nothing", cur.fetchall() == [])
conn.close()
sys.exit(1 if failures else 0)
