-- Rollups behind the BI views (points summed in numeric, as the views do): per program and day, channel, cohort and
-- month of credit, the counts and sums kpi_monthly, channel_distribution and
-- cohort_retention are made of, kept by loyalty.refresh_rollups() from the
-- ledger rows recorded since its last run (read in entry_id order through a
-- BRIN index), so no write of the books touches a shared row.  The views add
-- the rows recorded since (loyalty.rollup_changes()) and are exact to now.
-- See doc/architecture.md, "Rollups".

-- The ledger's order of recording: a BRIN index costs a write next to
-- nothing (a new row extends the last, unsummarized range) and finds the
-- rows above a watermark in the pages written since.
CREATE INDEX ledger_entry_id_brin ON loyalty.ledger USING brin (entry_id) WITH (autosummarize = on);

CREATE TYPE loyalty.rollup_change AS (
    target          text,
    program_id      bigint,
    day             date,
    month           date,
    label           text,
    id              bigint,
    entries         bigint,
    purchases       bigint,
    members         bigint,
    revenue         numeric,
    points_issued   numeric,
    points_redeemed numeric,
    points_expired  numeric,
    months          date[],
    channels        text[]
);
COMMENT ON TYPE loyalty.rollup_change IS
    'Internal: one change of the rollups by ledger rows and members not counted yet. target day (day, entries, purchases, members = new members, revenue, points), channel (label = channel), cohort (day = cohort month, month, members), points (day = month of the credit, points_redeemed, points_expired), return (id = debit entry, day = month of the credit, label = kind, points_redeemed = points given back), buyer (id = member, months, channels), pool, unpool (id = member)';

-- Where the refresh is.  No row until the first refresh (nothing counted).
CREATE TABLE loyalty.rollup_state (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_entry      bigint NOT NULL DEFAULT 0,
    last_member     bigint NOT NULL DEFAULT 0,
    as_of           timestamptz,
    refreshed_at    timestamptz,
    safe_entry_id   bigint NOT NULL DEFAULT 0,
    safe_member_id  bigint NOT NULL DEFAULT 0,
    safe_at         timestamptz,
    mark_entry_id   bigint,
    mark_member_id  bigint,
    mark_at         timestamptz,
    mark_vxids      text[],
    mark_snapshot   pg_snapshot,
    CHECK (last_entry <= safe_entry_id AND last_member <= safe_member_id)
);
COMMENT ON TABLE loyalty.rollup_state IS 'Watermark of the rollups (one row once refreshed): the ledger entries and members counted, and the mark the refresh waits on';
COMMENT ON COLUMN loyalty.rollup_state.last_entry IS 'Ledger entries up to this entry_id are counted';
COMMENT ON COLUMN loyalty.rollup_state.last_member IS 'Members up to this member_id are counted';
COMMENT ON COLUMN loyalty.rollup_state.as_of IS 'Everything committed before this time is counted';
COMMENT ON COLUMN loyalty.rollup_state.refreshed_at IS 'When a refresh last counted rows';
COMMENT ON COLUMN loyalty.rollup_state.safe_entry_id IS 'Entries up to this id are all committed or rolled back (a promoted mark): the refresh may count up to it';
COMMENT ON COLUMN loyalty.rollup_state.safe_member_id IS 'Members up to this id are all committed or rolled back';
COMMENT ON COLUMN loyalty.rollup_state.safe_at IS 'When the mark of safe_entry_id was taken';
COMMENT ON COLUMN loyalty.rollup_state.mark_entry_id IS 'Pending mark: the ledger sequence''s last value when taken';
COMMENT ON COLUMN loyalty.rollup_state.mark_member_id IS 'Pending mark: the members sequence''s last value when taken';
COMMENT ON COLUMN loyalty.rollup_state.mark_at IS 'Pending mark: when it was taken';
COMMENT ON COLUMN loyalty.rollup_state.mark_vxids IS 'Pending mark: the transactions running then (virtual ids); the mark is safe once all have ended';
COMMENT ON COLUMN loyalty.rollup_state.mark_snapshot IS 'Pending mark: the snapshot then (prepared transactions holding ids below the mark)';

CREATE TABLE loyalty.rollup_days (
    program_id      bigint NOT NULL,
    day             date NOT NULL,
    entries         bigint NOT NULL DEFAULT 0,
    purchases       bigint NOT NULL DEFAULT 0,
    revenue         numeric NOT NULL DEFAULT 0,
    points_issued   numeric NOT NULL DEFAULT 0,
    points_redeemed numeric NOT NULL DEFAULT 0,
    points_expired  numeric NOT NULL DEFAULT 0,
    new_members     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, day)
);
COMMENT ON TABLE loyalty.rollup_days IS 'Rollup per program and day (occurred_at in the program time zone): ledger entries, purchases, revenue, points issued, redeemed, expired, members who joined';
COMMENT ON COLUMN loyalty.rollup_days.entries IS 'Ledger entries of the day (any kind but carry_forward)';
COMMENT ON COLUMN loyalty.rollup_days.points_redeemed IS 'Points spent (redeem, hold) less holds released';
COMMENT ON COLUMN loyalty.rollup_days.new_members IS 'Members (not household pools) who joined that day';

CREATE TABLE loyalty.rollup_channels (
    program_id      bigint NOT NULL,
    channel         text NOT NULL,
    purchases       bigint NOT NULL DEFAULT 0,
    members         bigint NOT NULL DEFAULT 0,
    revenue         numeric,
    points_issued   numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, channel)
);
COMMENT ON TABLE loyalty.rollup_channels IS 'Rollup per program and channel of purchase (unknown: none given): purchases, distinct buyers, revenue (NULL while no purchase had an amount), points earned';

CREATE TABLE loyalty.rollup_cohorts (
    program_id      bigint NOT NULL,
    cohort_month    date NOT NULL,
    month           date NOT NULL,
    members         bigint NOT NULL,
    PRIMARY KEY (program_id, cohort_month, month)
);
COMMENT ON TABLE loyalty.rollup_cohorts IS 'Rollup per program, cohort (month of the first purchase) and month: members of the cohort who bought in the month (month = cohort_month: the cohort''s size)';

CREATE TABLE loyalty.rollup_point_months (
    program_id      bigint NOT NULL,
    month           date NOT NULL,
    points_redeemed numeric NOT NULL DEFAULT 0,
    points_expired  numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, month)
);
COMMENT ON TABLE loyalty.rollup_point_months IS 'Rollup per program and month in which credits (earn, award, adjust) occurred: their points redeemed (net of holds released and redemptions reversed) and expired since';

CREATE TABLE loyalty.rollup_buyers (
    member_id       bigint PRIMARY KEY,
    program_id      bigint NOT NULL,
    months          date[] NOT NULL,
    channels        text[] NOT NULL
);
COMMENT ON TABLE loyalty.rollup_buyers IS 'Per buyer, the months (ascending, the first is its cohort) and channels it bought in: what keeps distinct buyers exact';

CREATE TABLE loyalty.rollup_returns (
    entry_id        bigint NOT NULL,
    month           date NOT NULL,
    program_id      bigint NOT NULL,
    kind            text NOT NULL,
    returned        numeric NOT NULL,
    PRIMARY KEY (entry_id, month)
);
COMMENT ON TABLE loyalty.rollup_returns IS 'Per debit (redeem, hold, expire) given points back, and month of the credits they return to: the points given back that rollup_point_months counts';

CREATE TABLE loyalty.rollup_pools (
    member_id       bigint PRIMARY KEY,
    program_id      bigint NOT NULL
);
COMMENT ON TABLE loyalty.rollup_pools IS 'Household pools seen by the refresh: no members while pools, counted as joined if that changes (as kpi_daily counts them)';

#include "udfs/rollup_mark_safe/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_mark_safe(text[], pg_snapshot, timestamptz) IS
    'Internal: whether every transaction running when a refresh mark was taken (virtual ids, snapshot) has ended and none has been prepared since';

#include "udfs/rollup_changes/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_changes(bigint, bigint, bigint, bigint) IS
    'Internal: the changes of the rollups by ledger entries (after_entry, upto_entry] and members (after_member, upto_member] (defaults: all those not counted yet), for the programs the role sees; the BI views add them to the rollups';

#include "udfs/refresh_rollups_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.refresh_rollups_batch(bigint, boolean) IS
    'One step of loyalty.refresh_rollups in the caller''s transaction: count up to max_entries ledger entries (NULL: all) below the last safe mark, taking a new mark when caught up (new_mark); waits for a concurrent refresh; returns the entries and members counted, as of when the rollups are, and whether they are caught up';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/refresh_rollups/1.4.sql"
COMMENT ON PROCEDURE loyalty.refresh_rollups(bigint, interval) IS
    'Batch job (e.g. every few minutes with pg_cron): bring the rollups behind kpi_monthly, channel_distribution and cohort_retention up to the start of the run, batch_size ledger entries per commit, waiting at most max_wait for transactions running at the start';

#include "udfs/rollups_as_of/1.4.sql"
COMMENT ON FUNCTION loyalty.rollups_as_of(bigint) IS
    'Everything committed before this time is counted in the program''s rollups (NULL: never refreshed); the BI views add what came since';

SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_state', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_days', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_channels', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_cohorts', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_point_months', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_buyers', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_returns', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_pools', '');

REVOKE ALL ON loyalty.rollup_state, loyalty.rollup_days, loyalty.rollup_channels, loyalty.rollup_cohorts,
    loyalty.rollup_point_months, loyalty.rollup_buyers, loyalty.rollup_returns, loyalty.rollup_pools FROM PUBLIC;
GRANT SELECT ON loyalty.rollup_state, loyalty.rollup_days, loyalty.rollup_channels, loyalty.rollup_cohorts,
    loyalty.rollup_point_months, loyalty.rollup_buyers, loyalty.rollup_returns, loyalty.rollup_pools TO loyalty_admin;
REVOKE ALL ON FUNCTION loyalty.rollup_mark_safe(text[], pg_snapshot, timestamptz),
    loyalty.rollup_changes(bigint, bigint, bigint, bigint), loyalty.refresh_rollups_batch(bigint, boolean),
    loyalty.rollups_as_of(bigint) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.refresh_rollups(bigint, interval) FROM PUBLIC;
-- the views call rollup_changes() as their reader
GRANT EXECUTE ON FUNCTION loyalty.rollup_changes(bigint, bigint, bigint, bigint), loyalty.rollups_as_of(bigint)
    TO loyalty_analyst, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.rollup_mark_safe(text[], pg_snapshot, timestamptz),
    loyalty.refresh_rollups_batch(bigint, boolean) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.refresh_rollups(bigint, interval) TO loyalty_admin;
