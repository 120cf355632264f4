-- Rollups behind the BI views (points summed in numeric, as the views do): per program and day, channel, cohort and
-- month of credit, the counts and sums kpi_monthly, channel_distribution and
-- cohort_retention are made of, kept by loyalty.refresh_rollups() from the
-- ledger rows recorded since its last run (read in entry_id order through a
-- BRIN index), so no write of the books touches a shared row.  The views add
-- the rows recorded since (loyalty.rollup_changes()) and are exact to now.
-- kpi_summary and tier_distribution sum the accounts: per member what was
-- counted, per program (tier, day) the sums of that, and the views add the
-- difference of the accounts changed since (loyalty.rollup_account_changes()).
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
    last_change     bigint NOT NULL DEFAULT 0,
    safe_change_id  bigint NOT NULL DEFAULT 0,
    mark_change_id  bigint,
    vesting_from    timestamptz,
    CHECK (last_entry <= safe_entry_id AND last_member <= safe_member_id AND last_change <= safe_change_id)
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
COMMENT ON COLUMN loyalty.rollup_state.last_change IS 'Account changes (loyalty.account_changes) up to this change_id are counted';
COMMENT ON COLUMN loyalty.rollup_state.safe_change_id IS 'Account changes up to this id are all committed or rolled back';
COMMENT ON COLUMN loyalty.rollup_state.mark_change_id IS 'Pending mark: the account changes sequence''s last value when taken';
COMMENT ON COLUMN loyalty.rollup_state.vesting_from IS 'rollup_vesting holds the points vesting after this time, the last refresh''s start (a reader whose transaction began before it: the points pending computed from the lots)';

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

-- a day's months and channels merged into each buyer's (in C: per buyer, in
-- SQL, a sort in a subquery cost most of the buyers' part of a refresh)
#include "udfs/rollup_array_union/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_array_union(anyarray, anyarray) IS
    'Internal: the union of two arrays, ascending and without duplicates (a NULL side: the other, sorted likewise); the refresh merges each buyer''s months and channels with it';

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

-- The accounts behind kpi_summary and tier_distribution.  A write of the
-- books leaves a ledger row of the member and a new member has a new id; the
-- other changes of what the views sum (status: closed, erased, merged away;
-- tier) leave a row here, written with the change (one row per change, no
-- shared row).  The refresh counts the members they name again and deletes
-- the rows it has counted.
CREATE TABLE loyalty.account_changes (
    member_id       bigint NOT NULL,
    change_id       bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (member_id, change_id)
);
CREATE INDEX account_changes_change_id_idx ON loyalty.account_changes (change_id);
-- the one way a change is recorded (the write path's own, for update_member)
#include "udfs/account_changed/1.4.sql"
COMMENT ON FUNCTION loyalty.account_changed(bigint) IS
    'Internal: record that the member''s account is to be counted again by the rollups (an account_changes row; none on Citus, where the rollups are not refreshed)';
COMMENT ON TABLE loyalty.account_changes IS 'A change of an account''s status or tier, or of its member''s region (no ledger row shows it), for the rollups of kpi_summary, tier_distribution and member_mix; the refresh deletes the rows it has counted';

CREATE TABLE loyalty.rollup_accounts (
    member_id       bigint PRIMARY KEY,
    program_id      bigint NOT NULL,
    status          text NOT NULL,
    tier            loyalty.tier,
    balance         bigint NOT NULL,
    held            bigint NOT NULL,
    earned          bigint NOT NULL,
    redeemed        bigint NOT NULL,
    expired         bigint NOT NULL,
    purchase_count  bigint NOT NULL,
    purchase_amount numeric NOT NULL,
    last_purchase_at timestamptz,
    -- the months (ascending, the first is its cohort) and channels of its
    -- purchases counted (NULL: none): what keeps distinct buyers exact
    months          date[],
    channels        text[],
    -- its member's source channel and region as counted in
    -- rollup_member_mix ('unknown' for none, as member_mix shows them)
    source_channel  text NOT NULL,
    region          text NOT NULL
);
COMMENT ON TABLE loyalty.rollup_accounts IS 'Per member, its account as last counted in rollup_account_sums and rollup_account_days: status, tier, points, purchase statistics; the months and channels of its purchases counted in rollup_channels and rollup_cohorts; its source channel and region counted in rollup_member_mix';

CREATE TABLE loyalty.rollup_vesting (
    member_id       bigint NOT NULL,
    vests_at        timestamptz NOT NULL,
    program_id      bigint NOT NULL,
    points          bigint NOT NULL,
    PRIMARY KEY (member_id, vests_at)
);
-- today's vesting points, read one by one
CREATE INDEX rollup_vesting_vests_at_idx ON loyalty.rollup_vesting (vests_at);
COMMENT ON TABLE loyalty.rollup_vesting IS 'Per member and time, its open lots'' points vesting then, as last counted (only those vesting after rollup_state.vesting_from)';

CREATE TABLE loyalty.rollup_account_sums (
    program_id      bigint NOT NULL,
    tier            text NOT NULL,
    pool            boolean NOT NULL,
    accounts        bigint NOT NULL DEFAULT 0,
    buyers          bigint NOT NULL DEFAULT 0,
    repeat_buyers   bigint NOT NULL DEFAULT 0,
    purchases       numeric NOT NULL DEFAULT 0,
    revenue         numeric NOT NULL DEFAULT 0,
    balance         numeric NOT NULL DEFAULT 0,
    held            numeric NOT NULL DEFAULT 0,
    issued          numeric NOT NULL DEFAULT 0,
    redeemed        numeric NOT NULL DEFAULT 0,
    expired         numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, tier, pool)
);
COMMENT ON TABLE loyalty.rollup_account_sums IS 'Rollup per program, tier (its text form; empty: none) and whether household pools, of the accounts not closed as counted in rollup_accounts: accounts, buyers (a purchase), repeat buyers (more than one), purchases, amounts, balances, held, points earned, redeemed, expired';

-- The buckets of member_rfm's quintiles (in C: the refresh and the view
-- compute them for every buyer they count again).  Only their order matters:
-- a larger value never gets a lower bucket.
#include "udfs/rollup_rfm_day/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_rfm_day(timestamptz) IS
    'Internal: the RFM rollups'' bucket of a last purchase (whole days since 2000-01-01 UTC); never decreases as the time grows';
#include "udfs/rollup_rfm_band/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_rfm_band(numeric) IS
    'Internal: the RFM rollups'' bucket of a spend (number of digits and first three digits of its whole part, negated below zero); never decreases as the amount grows';

-- member_rfm's quintile boundaries lie in one bucket each: its buyers' last
-- purchases or spends as counted, read through these.  The day's index also
-- serves kpi_summary's active members (a last purchase in the last 90 days,
-- a purchase count or not: a refunded one leaves its date), whose first day
-- is read member by member: one index fewer to write per changed account
CREATE INDEX rollup_accounts_rfm_day_idx ON loyalty.rollup_accounts
    (program_id, loyalty.rollup_rfm_day(last_purchase_at)) WHERE last_purchase_at IS NOT NULL AND status <> 'closed';
CREATE INDEX rollup_accounts_rfm_band_idx ON loyalty.rollup_accounts
    (program_id, loyalty.rollup_rfm_band(purchase_amount)) WHERE purchase_count > 0 AND status <> 'closed';

CREATE TABLE loyalty.rollup_rfm_counts (
    program_id      bigint NOT NULL,
    measure         text NOT NULL CHECK (measure = ANY (ARRAY['r', 'f', 'm'])),
    bucket          bigint NOT NULL,
    members         bigint NOT NULL,
    PRIMARY KEY (program_id, measure, bucket)
);
COMMENT ON TABLE loyalty.rollup_rfm_counts IS 'Rollup per program and bucket of the buyers (a purchase, not closed) of rollup_accounts, for member_rfm''s quintiles: r = rollup_rfm_day(last purchase), f = purchase count, m = rollup_rfm_band(spend)';

CREATE TABLE loyalty.rollup_account_days (
    program_id      bigint NOT NULL,
    day             date NOT NULL,
    active_members  bigint NOT NULL DEFAULT 0,
    pending_points  numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (program_id, day)
);
COMMENT ON TABLE loyalty.rollup_account_days IS 'Rollup per program and day (UTC) of rollup_accounts and rollup_vesting: accounts not closed whose last purchase was that day, points vesting that day';

CREATE TABLE loyalty.rollup_member_mix (
    program_id      bigint NOT NULL,
    source_channel  text NOT NULL,
    region          text NOT NULL,
    members         bigint NOT NULL,
    buyers          bigint NOT NULL,
    PRIMARY KEY (program_id, source_channel, region)
);
COMMENT ON TABLE loyalty.rollup_member_mix IS 'Rollup per program, source channel and region (''unknown'' for none) of the members not closed and no household pool, as counted in rollup_accounts: members, and those with a purchase';

#include "udfs/rollup_may_write/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_may_write(oid, text) IS
    'Internal: whether a session (its database and backend type) could write the rows the rollups count: the refresh waits only for those';
#include "udfs/rollup_mark_safe/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_mark_safe(text[], pg_snapshot, timestamptz) IS
    'Internal: whether every transaction running when a refresh mark was taken (virtual ids, snapshot) has ended and none has been prepared since';

#include "udfs/rollup_changes/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_changes(bigint, bigint, bigint, bigint) IS
    'Internal: the changes of the rollups by ledger entries (after_entry, upto_entry] and members (after_member, upto_member] (defaults: all those not counted yet), for the programs the role sees; the BI views add them to the rollups';

CREATE TYPE loyalty.rollup_account_change AS (
    target          text,
    program_id      bigint,
    member_id       bigint,
    tier            text,
    pool            boolean,
    status          text,
    day             date,
    at              timestamptz,
    accounts        bigint,
    buyers          bigint,
    repeat_buyers   bigint,
    purchases       numeric,
    revenue         numeric,
    balance         numeric,
    held            numeric,
    issued          numeric,
    redeemed        numeric,
    expired         numeric,
    active          bigint,
    pending         numeric,
    measure         text,
    bucket          bigint,
    source_channel  text,
    region          text
);
COMMENT ON TYPE loyalty.rollup_account_change IS
    'Internal: one change of the account rollups by the accounts changed since counted. target sums (program, tier, pool: the differences of rollup_account_sums), day (day, active, pending: of rollup_account_days), now (active, pending: the views'' active_members_90d and points_pending in all), account (member_id, status, tier, at = last purchase, the sums: the account now), vest (member_id, at = vests_at, pending = points), rfm (measure, bucket, accounts: the difference of rollup_rfm_counts), mix (source_channel, region, accounts, buyers: the difference of rollup_member_mix); account rows carry the source channel and region too';

#include "udfs/rollup_account_changes/1.4.sql"
COMMENT ON FUNCTION loyalty.rollup_account_changes(bigint, bigint, bigint, bigint, bigint, bigint) IS
    'Internal: the changes of the account rollups by the members with ledger entries in (after_entry, upto_entry], new in (after_member, upto_member] or with account changes in (after_change, upto_change] (defaults: all those not counted yet, and then also the views'' time-dependent columns), for the programs the role sees';

#include "udfs/refresh_rollups_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.refresh_rollups_batch(bigint, boolean) IS
    'One step of loyalty.refresh_rollups in the caller''s transaction: count up to max_entries ledger entries (NULL: all) below the last safe mark, taking a new mark when caught up (new_mark); waits for a concurrent refresh; returns the entries and members counted, as of when the rollups are, and whether they are caught up';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/refresh_rollups/1.4.sql"
COMMENT ON PROCEDURE loyalty.refresh_rollups(bigint, interval) IS
    'Batch job (e.g. every few minutes with pg_cron): bring the rollups behind kpi_monthly, channel_distribution, cohort_retention, kpi_summary, tier_distribution, member_mix and member_rfm up to the start of the run, batch_size ledger entries per commit, waiting at most max_wait for transactions running at the start';

#include "udfs/rollups_as_of/1.4.sql"
COMMENT ON FUNCTION loyalty.rollups_as_of(bigint) IS
    'Everything committed before this time is counted in the program''s rollups (NULL: never refreshed); the BI views add what came since';

#include "udfs/rfm_quintiles/1.4.sql"
COMMENT ON FUNCTION loyalty.rfm_quintiles() IS
    'Internal: per program the role sees, the quintile boundaries of member_rfm (percentile_disc 0.2, 0.4, 0.6, 0.8 of last purchase, purchase count and spend over the buyers not closed), exact to now: from rollup_rfm_counts, rollup_accounts and the accounts changed since, or from the accounts before any refresh, on Citus, and when the ledger has moved on by more entries than a quarter of the buyers';

SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_state', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_days', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_channels', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_cohorts', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_point_months', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_returns', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_pools', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.account_changes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.account_changes_change_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_accounts', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_vesting', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_account_sums', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_account_days', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_rfm_counts', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rollup_member_mix', '');

REVOKE ALL ON loyalty.rollup_state, loyalty.rollup_days, loyalty.rollup_channels, loyalty.rollup_cohorts,
    loyalty.rollup_point_months, loyalty.rollup_returns, loyalty.rollup_pools,
    loyalty.account_changes, loyalty.rollup_accounts, loyalty.rollup_vesting, loyalty.rollup_account_sums,
    loyalty.rollup_account_days, loyalty.rollup_rfm_counts, loyalty.rollup_member_mix FROM PUBLIC;
GRANT SELECT ON loyalty.rollup_state, loyalty.rollup_days, loyalty.rollup_channels, loyalty.rollup_cohorts,
    loyalty.rollup_point_months, loyalty.rollup_returns, loyalty.rollup_pools,
    loyalty.account_changes, loyalty.rollup_accounts, loyalty.rollup_vesting, loyalty.rollup_account_sums,
    loyalty.rollup_account_days, loyalty.rollup_rfm_counts, loyalty.rollup_member_mix TO loyalty_admin;
REVOKE ALL ON FUNCTION loyalty.rollup_mark_safe(text[], pg_snapshot, timestamptz),
    loyalty.rollup_changes(bigint, bigint, bigint, bigint), loyalty.refresh_rollups_batch(bigint, boolean),
    loyalty.rollups_as_of(bigint), loyalty.rollup_account_changes(bigint, bigint, bigint, bigint, bigint, bigint),
    loyalty.rollup_rfm_day(timestamptz), loyalty.rollup_rfm_band(numeric), loyalty.rfm_quintiles(),
    loyalty.rollup_array_union(anyarray, anyarray), loyalty.rollup_may_write(oid, text),
    loyalty.account_changed(bigint) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.refresh_rollups(bigint, interval) FROM PUBLIC;
-- the views call rollup_changes(), rollup_account_changes() and (member_rfm)
-- rfm_quintiles() as their reader
GRANT EXECUTE ON FUNCTION loyalty.rollup_changes(bigint, bigint, bigint, bigint), loyalty.rollups_as_of(bigint),
    loyalty.rollup_account_changes(bigint, bigint, bigint, bigint, bigint, bigint), loyalty.rfm_quintiles()
    TO loyalty_analyst, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.rollup_mark_safe(text[], pg_snapshot, timestamptz),
    loyalty.refresh_rollups_batch(bigint, boolean) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.refresh_rollups(bigint, interval) TO loyalty_admin;
