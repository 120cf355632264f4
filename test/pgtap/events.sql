-- Lifecycle events: outbox rows in the fact's transaction, NOTIFY, claim/ack.
BEGIN;
SELECT plan(16);

SELECT loyalty.create_program('ev', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.create_program('quiet') AS q \gset
UPDATE loyalty.programs SET event_kinds = '{}' WHERE program_id = :q;

SELECT loyalty.enroll(:p, 'web', 'ev-1') AS m \gset
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :m AND kind = 'member.enrolled'), 1::bigint,
          'enrolling writes one welcome event');
SELECT is(loyalty.enroll(:p, 'web', 'ev-1'), :m::bigint, 're-enrolling the same identity...');
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :m AND kind = 'member.enrolled'), 1::bigint,
          '... writes no second welcome');

SELECT loyalty.earn(:m, 12.5, 'pos', 'order-1') AS pts \gset
SELECT results_eq($$SELECT payload->>'points', payload->>'amount', payload->>'reference', payload->>'channel'
                    FROM loyalty.events WHERE kind = 'points.earned'$$,
                  $$VALUES ('12', '12.5', 'order-1', 'pos')$$, 'an earn writes points.earned with its facts');
SELECT is((SELECT (payload->>'entry_id')::bigint FROM loyalty.events WHERE kind = 'points.earned'),
          (SELECT max(entry_id) FROM loyalty.ledger WHERE member_id = :m AND kind = 'earn'),
          'the event names the ledger entry');

-- a rolled-back earn emits nothing
SAVEPOINT s;
SELECT loyalty.earn(:m, 5);
ROLLBACK TO SAVEPOINT s;
SELECT is((SELECT count(*) FROM loyalty.events WHERE kind = 'points.earned'), 1::bigint,
          'a rolled-back earn leaves no event');
-- a replayed earn emits nothing new
SELECT loyalty.earn(:m, 7, idempotency_key => 'k1');
SELECT loyalty.earn(:m, 7, idempotency_key => 'k1');
SELECT is((SELECT count(*) FROM loyalty.events WHERE kind = 'points.earned'), 2::bigint,
          'a replayed earn writes its event once');
-- a failed earn emits nothing
SELECT throws_ok(format('SELECT loyalty.earn(%s, -1)', :m), '22023', NULL, 'a refused earn...');
SELECT is((SELECT count(*) FROM loyalty.events WHERE kind = 'points.earned'), 2::bigint, '... writes no event');

-- a program that emits nothing
SELECT loyalty.enroll(:q, 'web', 'quiet-1') AS qm \gset
SELECT loyalty.earn(:qm, 10);
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :qm), 0::bigint,
          'a program with no event kinds writes no events');

-- expiring soon: once per member and expiry day
SELECT loyalty.award(:m, '40', 'welcome gift', expires_at => now() + interval '3 days');
SELECT is(loyalty.notify_expiring(interval '7 days'), 1::bigint, 'notify_expiring emits for points expiring within 7 days');
SELECT is(loyalty.notify_expiring(interval '7 days'), 0::bigint, '... and not twice');
SELECT throws_ok($$SELECT loyalty.notify_expiring(interval '-1 day')$$, '22023', NULL, 'a negative window is refused');

-- claim and acknowledge
SELECT is((SELECT count(*) FROM loyalty.claim_events(100, 'test')), 4::bigint, 'a consumer claims all pending events');
SELECT is((SELECT count(*) FROM loyalty.claim_events(100, 'other')), 0::bigint, 'claimed events are not handed out twice');
SELECT is(loyalty.ack_events(ARRAY(SELECT event_id FROM loyalty.events)), 4::bigint, 'acknowledging marks them done');

SELECT * FROM finish();
ROLLBACK;
