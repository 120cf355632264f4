#!/usr/bin/python3
"""The documented loyalty flow through psycopg 3 (test/scripts/clients.sh).

Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE) to
a database where the extension exists, prints one "ok ..." or "FAIL ..."
line per check and exits 1 on any failure.
"""
import json
import select
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb

failures = 0


def check(what, cond, detail=""):
    global failures
    print(("ok   " if cond else "FAIL ") + what + (f": {detail}" if detail else ""))
    failures += 0 if cond else 1


def types(row):
    return {k: type(v).__name__ for k, v in row.items()}


conn = psycopg.connect(autocommit=True)
name = "psycopg3"


def one(sql, *args):
    return conn.execute(sql, args).fetchone()[0]


program = one("SELECT loyalty.create_program(%s, currency => %s, point_value => %s, earn_rate => %s,"
              " expiry_period => %s, pending_period => %s)",
              f"{name} flow", "EUR", Decimal("0.01"), 10, timedelta(days=365), timedelta(days=14))
member = one("SELECT loyalty.enroll(%s, %s, %s, region => %s, birthday => %s)",
             program, "pos", f"{name}-card-0042", "Lyon", date(1990, 4, 1))
check("create_program and enroll return int ids", type(program) is int and type(member) is int,
      f"program {program}, member {member}")
check("link_identity returns bool", one("SELECT loyalty.link_identity(%s, %s, %s)",
                                         member, "web", f"{name}-ana@example.org") is True)

# earn: amount as Decimal; the points credited (bigint) arrive as int
earned = one("SELECT loyalty.earn(%s, %s, channel => %s, reference => %s, idempotency_key => %s)",
             member, Decimal("23.40"), "pos", "order-981", "pos-17:order-981")
check("earn(Decimal('23.40')) returns points as int", earned == 234, repr(earned))

# lines: a list of dicts has no dumper; Jsonb() sends it as jsonb
lines = [{"category": "books", "product": "B-1", "quantity": 2, "amount": 30.00},
         {"category": "food", "product": "F-9", "quantity": 1, "amount": 12.00}]
occurred = datetime.now(timezone.utc) - timedelta(hours=1)
sql_lines = "SELECT loyalty.earn(%s, NULL, reference => %s, occurred_at => %s, lines => %s)"
try:
    one(sql_lines, member, "order-982", occurred, lines)
    check("lines as a list of dicts is refused (Jsonb() needed)", False, "it was accepted")
except psycopg.ProgrammingError as e:
    check("lines as a list of dicts is refused (Jsonb() needed)", "cannot adapt type 'dict'" in str(e),
          f"{type(e).__name__}: {e}")
earned = one(sql_lines, member, "order-982", occurred, Jsonb(lines))
check("earn(lines => Jsonb(list of dicts), occurred_at => aware datetime)", earned == 420, repr(earned))

# how parameters arrive: psycopg 3 binds them server-side, typed by value
sent = {"int": 5, "int 100000": 100000, "big int": 2**40, "Decimal": Decimal("23.40"), "float": 9.99,
        "date": date(1990, 4, 1), "datetime": occurred, "timedelta": timedelta(minutes=5),
        "Jsonb": Jsonb(lines)}
arrived = dict(zip(sent, conn.execute("SELECT " + ", ".join(["pg_typeof(%s)::text"] * len(sent)),
                                      list(sent.values())).fetchone()))
check("parameters arrive typed", arrived == {
    "int": "smallint", "int 100000": "integer", "big int": "bigint", "Decimal": "numeric",
    "float": "double precision", "date": "date", "datetime": "timestamp with time zone",
    "timedelta": "interval", "Jsonb": "jsonb"}, arrived)

try:  # a str goes untyped (OID 0): the server infers its type from where it is used
    one("SELECT pg_typeof(%s)", "x")
    check("a str parameter is untyped", False, "typed")
except psycopg.errors.IndeterminateDatatype as e:
    check("a str parameter is untyped", e.sqlstate == "42P18", str(e))

# award, redeem, hold, capture with int points; reverse by a Decimal amount
award = one("SELECT loyalty.award(%s, %s, %s)", member, 500, "welcome bonus")
redeem = one("SELECT loyalty.redeem(%s, %s, channel => %s)", member, 50, "app")
hold = one("SELECT loyalty.hold(%s, %s, ttl => %s)", member, 300, timedelta(minutes=5))
capture = one("SELECT loyalty.capture(%s)", hold)
check("award/redeem/hold/capture with int points return int ids",
      all(type(x) is int for x in (award, redeem, hold, capture)), f"{award} {redeem} {hold} {capture}")
entry = one("SELECT entry_id FROM loyalty.history(%s) WHERE reference = %s AND kind = 'earn'", member, "order-981")
reversed_ = one("SELECT loyalty.reverse(%s, %s, amount => %s)", member, entry, Decimal("11.70"))
check("reverse(amount => Decimal('11.70')) takes back half", reversed_ == 117, repr(reversed_))

# balance(): bigint columns are int, in text and binary mode alike
sql_balance = "SELECT available, pending, held, balance, as_of FROM loyalty.balance(%s)"
bal = conn.cursor(row_factory=dict_row).execute(sql_balance, (member,)).fetchone()
check("balance(): available 150, pending 537, held 0",
      (bal["available"], bal["pending"], bal["held"]) == (150, 537, 0), bal)
check("balance() types", types(bal) == {"available": "int", "pending": "int", "held": "int",
                                         "balance": "int", "as_of": "datetime"}, types(bal))
binbal = conn.cursor(row_factory=dict_row, binary=True).execute(sql_balance, (member,)).fetchone()
check("balance() in binary mode: int too",
      binbal["available"] == 150 and type(binbal["as_of"]) is datetime,
      repr(binbal["available"]))

cur = conn.cursor(row_factory=dict_row)
rows = cur.execute("SELECT entry_id, kind, points, amount, created_at, details FROM loyalty.history(%s)",
                   (member,)).fetchall()
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
kpi = cur.execute("SELECT members, points_outstanding, liability FROM loyalty.kpi_summary"
                  " WHERE program_id = %s", (program,)).fetchone()
check("kpi_summary: members (int), points_outstanding and liability (Decimal)",
      kpi["members"] == 1 and types(kpi) == {"members": "int", "points_outstanding": "Decimal",
                                             "liability": "Decimal"}, kpi)
rfm = cur.execute("SELECT frequency, monetary, first_purchase, segment FROM loyalty.member_rfm"
                  " WHERE member_id = %s", (member,)).fetchone()
check("member_rfm: frequency, monetary (Decimal), first_purchase (date), segment",
      rfm is not None and types(rfm) == {"frequency": "int", "monetary": "Decimal",
                                         "first_purchase": "date", "segment": "str"}, rfm)

# events: LISTEN on a second connection, earn, receive the NOTIFY
payload = None
with psycopg.connect(autocommit=True) as listener:
    listener.execute("LISTEN loyalty_events")
    one("SELECT loyalty.earn(%s, %s, reference => %s)", member, Decimal("5.00"), "order-983")
    if select.select([listener.fileno()], [], [], 10)[0]:
        for n in listener.notifies():  # blocks until a notification; data is waiting
            p = json.loads(n.payload)
            if p["member_id"] == member and p["kind"] == "points.earned":
                payload = p
                break
check("LISTEN loyalty_events receives points.earned", payload is not None, payload)

# a float amount is bound as double precision, which the float overloads take,
# reading it to 15 significant digits
earned = one("SELECT loyalty.earn(%s, %s, reference => %s)", member, 9.99, "order-984")
check("a float amount (9.99) earns", earned == 99, repr(earned))
amount = one("SELECT amount FROM loyalty.history(%s) WHERE reference = %s", member, "order-984")
check("...and is recorded as Decimal('9.99')", amount == Decimal("9.99"), repr(amount))
entry = one("SELECT entry_id FROM loyalty.history(%s) WHERE reference = %s", member, "order-984")
reversed_ = one("SELECT loyalty.reverse(%s, %s, amount => %s)", member, entry, 4.99)
check("reverse(amount => 4.99) takes a float too: 49 points", reversed_ == 49, repr(reversed_))
# lines as json (Json()) and as a str of JSON are taken too
earned = one(sql_lines, member, "order-985", occurred, Json(lines))
check("earn(lines => Json(list of dicts))", earned == 420, repr(earned))
earned = one(sql_lines, member, "order-986", occurred, json.dumps(lines))
check("earn(lines => json.dumps(list of dicts))", earned == 420, repr(earned))
# a list of Jsonb is bound as a jsonb[]: one order line each
earned = one(sql_lines, member, "order-987", occurred, [Jsonb(line) for line in lines])
check("earn(lines => [Jsonb(line), ...]) (a jsonb[])", earned == 420, repr(earned))

# errors: the SQLSTATE is e.sqlstate
try:
    one("SELECT loyalty.redeem(%s, %s)", member, 1000000)
    check("redeem beyond the balance raises LY001", False, "no error")
except psycopg.Error as e:
    check("redeem beyond the balance raises LY001", e.sqlstate == "LY001", f"{type(e).__name__} {e.sqlstate}")
first = one("SELECT loyalty.award(%s, %s, %s, idempotency_key => %s)", member, 10, "dup", f"{name}-k")
again = one("SELECT loyalty.award(%s, %s, %s, idempotency_key => %s)", member, 10, "dup", f"{name}-k")
check("a replay returns the first entry", first == again, f"{first} {again}")
try:
    one("SELECT loyalty.award(%s, %s, %s, idempotency_key => %s)", member, 20, "dup", f"{name}-k")
    check("a key reused with other points raises LY002", False, "no error")
except psycopg.Error as e:
    check("a key reused with other points raises LY002", e.sqlstate == "LY002", f"{type(e).__name__} {e.sqlstate}")

# a transfer to another member: int and Decimal points
friend = one("SELECT loyalty.enroll(%s, %s, %s)", program, "app", f"{name}-friend")
one("SELECT loyalty.set_transfer_rules(%s, max_points => %s)", program, 100)
sent = one("SELECT loyalty.transfer(%s, %s, %s, %s, %s)", member, friend, 7, "a gift", f"{name}-t1")
sent2 = one("SELECT loyalty.transfer(%s, %s, %s)", member, friend, Decimal("3"))
check("transfer() with int and Decimal points returns int entries",
      type(sent) is int and type(sent2) is int, f"{sent} {sent2}")
check("the friend has 10", one("SELECT available FROM loyalty.balance(%s)", friend) == 10)
try:
    one("SELECT loyalty.transfer(%s, %s, %s)", member, friend, 101)
    check("a transfer above max_points raises LY040", False, "no error")
except psycopg.Error as e:
    check("a transfer above max_points raises LY040", e.sqlstate == "LY040", f"{type(e).__name__} {e.sqlstate}")

# a profile update: a date and JSON objects
changed = one("SELECT loyalty.update_member(%s, birthday => %s, consent => %s, attributes => %s)",
              friend, date(1990, 4, 1), Jsonb({"email": True}), Jsonb({"vip": True}))
check("update_member(date, Jsonb(dict), Jsonb(dict)) changes three fields", changed == 3, repr(changed))
# a coupon at checkout and a paid membership: money as a float, an int, a Decimal
one("SELECT loyalty.create_coupon_campaign(%s, %s, %s, %s, code => %s)", program, f"{name}-ten", "percent_off", 10, f"{name}TEN")
v = one("SELECT loyalty.validate_coupon(%s, %s, %s)", friend, f"{name}TEN", 99.5)
check("validate_coupon() takes a float basket (10% of 99.5)", v["discount"] == 9.95, repr(v))
use = one("SELECT loyalty.redeem_coupon(%s, %s, %s, reference => %s)", friend, f"{name}TEN", Decimal("40.00"), f"{name}-o1")
check("redeem_coupon() with a Decimal basket, then capture_coupon()",
      one("SELECT loyalty.capture_coupon(%s, %s)", friend, use) == 0, repr(use))
one("SELECT loyalty.create_plan(%s, %s, %s, %s, %s)", program, f"{name}-plus", "Plus", Decimal("4.99"), "month")
sub = one("SELECT loyalty.subscribe(%s, %s, %s, %s)", friend, f"{name}-plus", f"{name}-pay1", 4.99)
end = one("SELECT loyalty.renew_membership(%s, %s, %s)", friend, f"{name}-pay2", 5)
check("subscribe() with a float fee and renew_membership() with an int", type(sub) is int and end is not None, repr(sub))
check("verify() finds nothing", conn.execute("SELECT * FROM loyalty.verify()").fetchall() == [])
conn.close()
sys.exit(1 if failures else 0)
