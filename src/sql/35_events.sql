-- ---------------------------------------------------------------------------
-- Lifecycle events: a transactional outbox plus NOTIFY.
-- ---------------------------------------------------------------------------
-- An event row is written by the same transaction as the fact it reports, so
-- a rolled-back sale emits nothing, and a NOTIFY on channel 'loyalty_events'
-- (delivered only at commit) wakes consumers, which then claim rows with
-- loyalty.claim_events() and acknowledge them with loyalty.ack_events().
--
-- Order: a member's events are written under the member's account lock, so
-- per member they are in commit order; across members there is no global
-- order (event_id is not a commit sequence).  Claims take pending events
-- oldest first and skip rows another consumer holds.

CREATE TABLE loyalty.event_kinds (
    kind        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO loyalty.event_kinds VALUES
    ('member.enrolled', 'A member was enrolled (welcome)'),
    ('points.earned', 'A purchase earned points'),
    ('reward.redeemed', 'A reward was redeemed from the catalog'),
    ('points.expiring', 'Points of the member expire soon (from loyalty.notify_expiring)'),
    ('tier.changed', 'The member moved to another tier');
COMMENT ON TABLE loyalty.event_kinds IS 'The event kinds the outbox carries';

CREATE TABLE loyalty.events (
    member_id       bigint NOT NULL,
    event_id        bigint GENERATED ALWAYS AS IDENTITY,
    program_id      bigint NOT NULL,
    kind            text NOT NULL REFERENCES loyalty.event_kinds,
    payload         jsonb NOT NULL DEFAULT '{}',
    dedup_key       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    claimed_by      text,
    acked_at        timestamptz,
    PRIMARY KEY (member_id, event_id)
);
-- the consumers' queue: pending events only
CREATE INDEX events_pending_idx ON loyalty.events (created_at, event_id) WHERE acked_at IS NULL;
-- an event with a dedup key is emitted once per member (e.g. one "expiring"
-- notice per expiry date)
CREATE UNIQUE INDEX events_dedup_idx ON loyalty.events (member_id, kind, dedup_key) WHERE dedup_key IS NOT NULL;
COMMENT ON TABLE loyalty.events IS 'Outbox of lifecycle events, written in the transaction of the fact; consumers claim and acknowledge them';
COMMENT ON COLUMN loyalty.events.dedup_key IS 'When set, the event is emitted at most once per member, kind and key';

-- Which kinds a program emits (all by default).
ALTER TABLE loyalty.programs ADD COLUMN event_kinds text[] NOT NULL
    DEFAULT ARRAY['member.enrolled', 'points.earned', 'reward.redeemed', 'points.expiring', 'tier.changed'];
COMMENT ON COLUMN loyalty.programs.event_kinds IS 'Event kinds this program writes to the outbox (an empty array: none)';

-- Internal: used by the extension's own functions (not granted to anyone).
#include "udfs/emit_event/1.1.sql"
COMMENT ON FUNCTION loyalty.emit_event(bigint, text, jsonb, text) IS
    'Internal: write one outbox event for a member (if the program emits that kind) and NOTIFY loyalty_events; returns the event id, or NULL when not emitted or a duplicate';

#include "udfs/claim_events/1.3.sql"
COMMENT ON FUNCTION loyalty.claim_events(integer, text, interval) IS
    'Claim up to max_events pending events, oldest first, skipping those other consumers hold; unacknowledged claims come back after the visibility interval';

#include "udfs/ack_events/1.3.sql"
COMMENT ON FUNCTION loyalty.ack_events(bigint[]) IS
    'Acknowledge processed events (by id); returns how many were newly acknowledged; acknowledging twice is harmless';

#include "udfs/notify_expiring/1.4.sql"
COMMENT ON FUNCTION loyalty.notify_expiring(interval, integer) IS
    'Emit one points.expiring event per member and expiry day for spendable points expiring within the interval; safe to run repeatedly (schedule daily)';

SELECT pg_catalog.pg_extension_config_dump('loyalty.events', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.events_event_id_seq', '');

REVOKE ALL ON FUNCTION loyalty.emit_event(bigint, text, jsonb, text),
    loyalty.claim_events(integer, text, interval), loyalty.ack_events(bigint[]),
    loyalty.notify_expiring(interval, integer) FROM PUBLIC;
-- consumers are applications
GRANT EXECUTE ON FUNCTION loyalty.claim_events(integer, text, interval), loyalty.ack_events(bigint[])
    TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.notify_expiring(interval, integer) TO loyalty_admin;
