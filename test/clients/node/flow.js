'use strict'
// The documented loyalty flow through node-postgres (test/scripts/clients.sh).
// Connects with the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
// PGDATABASE) to a database where the extension exists, prints one "ok ..."
// or "FAIL ..." line per check and exits 1 on any failure.
const { Client } = require('pg')

let failures = 0
function check (what, cond, detail) {
  const d = detail === undefined ? '' : ': ' + (typeof detail === 'string' ? detail : JSON.stringify(detail))
  console.log((cond ? 'ok   ' : 'FAIL ') + what + d)
  if (!cond) failures++
}
const types = (row) => Object.fromEntries(Object.entries(row).map(([k, v]) =>
  [k, v === null ? 'null' : v instanceof Date ? 'Date' : typeof v]))
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

// the error a query rejects with ({ code: 'none' } when it succeeds)
async function failure (promise) {
  try { await promise; return { code: 'none' } } catch (err) { return err }
}

async function main () {
  const db = new Client()
  await db.connect()
  const one = async (sql, args) => Object.values((await db.query(sql, args)).rows[0])[0]
  const name = 'node-postgres'

  const program = await one(`SELECT loyalty.create_program($1, currency => $2, point_value => $3,
      earn_rate => $4, expiry_period => $5, pending_period => $6)`,
  [`${name} flow`, 'EUR', 0.01, 10, '1 year', '14 days'])
  const member = await one('SELECT loyalty.enroll($1, $2, $3, region => $4, birthday => $5)',
    [program, 'pos', `${name}-card-0042`, 'Lyon', new Date(1990, 3, 1)])
  check('create_program and enroll return bigint ids as strings', typeof program === 'string' &&
    typeof member === 'string', `program ${program}, member ${member}`)
  check('link_identity returns a boolean', await one('SELECT loyalty.link_identity($1, $2, $3)',
    [member, 'web', `${name}-ana@example.org`]) === true)

  // every parameter goes as untyped text: the server types it from the call
  check('parameters are untyped text', (await failure(db.query('SELECT pg_typeof($1)', [5]))).code === '42P18')

  // earn: a number amount is sent as its text, '23.4'; points come back as a string
  let earned = await one(`SELECT loyalty.earn($1, $2, channel => $3, reference => $4,
      idempotency_key => $5)`, [member, 23.40, 'pos', 'order-981', 'pos-17:order-981'])
  check('earn(23.40) (a number) returns points (bigint) as a string', earned === '234', earned)

  // lines: a JS array is sent as a PostgreSQL array literal of JSON texts,
  // which lines accepts as well as JSON.stringify(lines)
  const lines = [{ category: 'books', product: 'B-1', quantity: 2, amount: 30.00 },
    { category: 'food', product: 'F-9', quantity: 1, amount: 12.00 }]
  const occurred = new Date(Date.now() - 3600 * 1000)
  const sqlLines = 'SELECT loyalty.earn($1, NULL, reference => $2, occurred_at => $3, lines => $4)'
  earned = await one(sqlLines, [member, 'order-982', occurred, lines])
  check('earn(lines => a JS array of objects, occurred_at => Date)', earned === '420', earned)
  earned = await one(sqlLines, [member, 'order-982b', occurred, JSON.stringify(lines)])
  check('earn(lines => JSON.stringify(array))', earned === '420', earned)

  // award, redeem, hold, capture with number points; reverse by an amount
  const award = await one('SELECT loyalty.award($1, $2, $3)', [member, 500, 'welcome bonus'])
  const redeem = await one('SELECT loyalty.redeem($1, $2, channel => $3)', [member, 50n, 'app'])
  const hold = await one('SELECT loyalty.hold($1, $2, ttl => $3)', [member, 300, '5 minutes'])
  const capture = await one('SELECT loyalty.capture($1)', [hold])
  check('award/redeem (a BigInt)/hold/capture return bigint ids as strings',
    [award, redeem, hold, capture].every((x) => typeof x === 'string'), [award, redeem, hold, capture])
  const entry = await one(`SELECT entry_id FROM loyalty.history($1) WHERE reference = $2
      AND kind = 'earn'`, [member, 'order-981'])
  const reversed = await one('SELECT loyalty.reverse($1, $2, amount => $3)', [member, entry, '11.70'])
  check("reverse(amount => '11.70') takes back half", reversed === '117', reversed)

  // balance() and history(): bigint, points and numeric are strings (node-postgres
  // parses no 64-bit integer into a number)
  const bal = (await db.query(`SELECT available, pending, held, balance, as_of
      FROM loyalty.balance($1)`, [member])).rows[0]
  check('balance(): available 150, pending 957, held 0',
    bal.available === '150' && bal.pending === '957' && bal.held === '0', bal)
  check('balance() types', same(types(bal), { available: 'string', pending: 'string', held: 'string',
    balance: 'string', as_of: 'Date' }), types(bal))
  const rows = (await db.query(`SELECT entry_id, kind, points, amount, created_at, details
      FROM loyalty.history($1)`, [member])).rows
  const kinds = [...new Set(rows.map((r) => r.kind))].sort()
  check('history() has every kind written',
    same(kinds, ['award', 'capture', 'earn', 'hold', 'redeem', 'reverse']), kinds)
  const row = rows.find((r) => r.kind === 'earn' && r.details !== null) // the lines earn
  check('history() types (bigint, text, bigint, numeric, timestamptz, jsonb)',
    same(types(row), { entry_id: 'string', kind: 'string', points: 'string', amount: 'string',
      created_at: 'Date', details: 'object' }) && Number(row.amount) === 42 && row.details.points === 420,
    types(row))

  // the BI views
  const kpi = (await db.query(`SELECT members, points_outstanding, liability
      FROM loyalty.kpi_summary WHERE program_id = $1`, [program])).rows[0]
  check('kpi_summary: members, points_outstanding, liability (all strings)', kpi.members === '1' &&
    same(types(kpi), { members: 'string', points_outstanding: 'string', liability: 'string' }), kpi)
  const rfm = (await db.query(`SELECT frequency, monetary, first_purchase, segment
      FROM loyalty.member_rfm WHERE member_id = $1`, [member])).rows[0]
  check('member_rfm: frequency, monetary (strings), first_purchase (Date), segment', rfm !== undefined &&
    same(types(rfm), { frequency: 'string', monetary: 'string', first_purchase: 'Date', segment: 'string' }),
  rfm)

  // events: LISTEN on a second client, earn, receive the NOTIFY
  const listener = new Client()
  await listener.connect()
  await listener.query('LISTEN loyalty_events')
  const heard = new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 10000)
    listener.on('notification', (n) => {
      const p = JSON.parse(n.payload)
      if (String(p.member_id) === member && p.kind === 'points.earned') { clearTimeout(timer); resolve(p) }
    })
  })
  await one('SELECT loyalty.earn($1, $2, reference => $3)', [member, '5.00', 'order-983'])
  const payload = await heard
  check('LISTEN loyalty_events receives points.earned', payload !== null, payload)
  await listener.end()

  // a fractional number is sent as its shortest text: 9.99 is exact, 0.1 + 0.2 is not
  earned = await one('SELECT loyalty.earn($1, $2, reference => $3)', [member, 9.99, 'order-984'])
  check('a number amount 9.99 is sent as the text 9.99 and works', earned === '99', earned)
  const sum = await one('SELECT $1::numeric::text', [0.1 + 0.2])
  check('0.1 + 0.2 arrives as 0.30000000000000004', sum === '0.30000000000000004', sum)

  // errors: the SQLSTATE is err.code
  const err = await failure(db.query('SELECT loyalty.redeem($1, $2)', [member, 1000000]))
  check('redeem beyond the balance raises LY001', err.code === 'LY001', `${err.constructor.name} ${err.code}`)
  const key = `${name}-k`
  const first = await one('SELECT loyalty.award($1, $2, $3, idempotency_key => $4)', [member, 10, 'dup', key])
  const again = await one('SELECT loyalty.award($1, $2, $3, idempotency_key => $4)', [member, 10, 'dup', key])
  check('a replay returns the first entry', first === again, `${first} ${again}`)
  const code = (await failure(db.query('SELECT loyalty.award($1, $2, $3, idempotency_key => $4)',
    [member, 20, 'dup', key]))).code
  check('a key reused with other points raises LY002', code === 'LY002', code)

  // a transfer (a BigInt and a number), a profile update (a Date, JSON text), a membership
  const friend = await one('SELECT loyalty.enroll($1, $2, $3)', [program, 'app', `${name}-friend`])
  await one('SELECT loyalty.set_transfer_rules($1, max_points => $2)', [program, 100])
  const sent = await one('SELECT loyalty.transfer($1, $2, $3, $4)', [member, friend, 7n, 'a gift'])
  const sent2 = await one('SELECT loyalty.transfer($1, $2, $3)', [member, friend, 3])
  check('transfer() with a BigInt and a number returns entries as strings',
    typeof sent === 'string' && typeof sent2 === 'string', [sent, sent2])
  const friendHas = await one('SELECT available FROM loyalty.balance($1)', [friend])
  check('the friend has 10', friendHas === '10', friendHas)
  const changed = await one('SELECT loyalty.update_member($1, birthday => $2, consent => $3)',
    [friend, new Date(1990, 3, 1), JSON.stringify({ email: true })])
  check('update_member(Date, JSON text) changes two fields', changed === 2, changed)
  await one('SELECT loyalty.create_plan($1, $2, $3, $4, $5)', [program, 'PLUS', 'Plus', 4.99, 'month'])
  const sub = await one('SELECT loyalty.subscribe($1, $2, $3)', [friend, 'PLUS', `${name}-pay-1`])
  check('subscribe() returns the subscription id as a string', typeof sub === 'string', sub)

  check('verify() finds nothing', (await db.query('SELECT * FROM loyalty.verify()')).rows.length === 0)
  await db.end()
}

main().then(() => process.exit(failures ? 1 : 0), (err) => {
  console.log(`FAIL ${err.code || ''} ${err.stack}`)
  process.exit(1)
})
