-- loyalty 1.2 -> 1.3 (ALTER EXTENSION loyalty UPDATE TO '1.3')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.3'" to load this file. \quit

-- == write path (issue 3) =====================================================
-- Lots: the open-lot index is partial on a generated flag instead of on
-- remaining, so a debit that leaves a lot open is a HOT update; room on each
-- page for it.  Adding the stored column rewrites loyalty.lots (ACCESS
-- EXCLUSIVE for the rewrite's duration: plan the update at a quiet time).
ALTER TABLE loyalty.lots
    ADD COLUMN is_open boolean NOT NULL GENERATED ALWAYS AS (remaining OPERATOR(loyalty.>) '0'::loyalty.points) STORED;
ALTER TABLE loyalty.lots SET (fillfactor = 90);
COMMENT ON COLUMN loyalty.lots.is_open IS 'remaining > 0 (generated): the lot still has points to spend or expire';
DROP INDEX loyalty.lots_open_idx;
CREATE INDEX lots_open_idx ON loyalty.lots (member_id, expires_at, created_at) WHERE is_open;
-- Keys led by the lot's and the debit's own id, so that new rows go to the
-- right edge of the index instead of a random leaf (30_ledger.sql).
ALTER TABLE loyalty.lots DROP CONSTRAINT lots_pkey, ADD PRIMARY KEY (lot_id, member_id);
ALTER TABLE loyalty.allocations DROP CONSTRAINT allocations_pkey, ADD PRIMARY KEY (entry_id, member_id, lot_id);

-- The global expiry index of lots (written by every earn) gives way to a
-- per-member expiry bound on the account, written only when it moves.
DROP INDEX loyalty.lots_expiry_idx;
ALTER TABLE loyalty.accounts ADD COLUMN next_expiry_at timestamptz;
COMMENT ON COLUMN loyalty.accounts.next_expiry_at IS 'No open lot of the member expires before this (NULL: none expires); may lie earlier than the true first expiry until loyalty.expire_member() runs';
UPDATE loyalty.accounts a SET next_expiry_at = x.first
FROM (SELECT l.member_id, pg_catalog.min(l.expires_at) AS first FROM loyalty.lots l
      WHERE l.is_open AND l.expires_at IS NOT NULL GROUP BY l.member_id) x
WHERE a.member_id OPERATOR(pg_catalog.=) x.member_id;
CREATE INDEX accounts_next_expiry_idx ON loyalty.accounts (next_expiry_at) WHERE next_expiry_at IS NOT NULL;

-- (loyalty.merge_members: see below)


CREATE OR REPLACE FUNCTION loyalty.expire_member(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_as_of timestamptz := coalesce(as_of, now());
    v_now timestamptz := now();
    v_program bigint;
    v_bound timestamptz;
    v_next timestamptz;
    v_total bigint;
    v_entry bigint;
BEGIN
    PERFORM loyalty.require_member(expire_member.member);
    IF v_as_of > now() THEN
        RAISE EXCEPTION 'cannot expire points as of a future time %', v_as_of USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT a.program_id, a.next_expiry_at INTO v_program, v_bound FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) member FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT pg_catalog.sum(l.remaining::bigint) INTO v_total FROM loyalty.lots l
    WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.is_open
      AND l.expires_at OPERATOR(pg_catalog.<=) v_as_of;
    IF v_total IS NOT NULL THEN
        INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, occurred_at)
        VALUES (member, v_program, 'expire', (OPERATOR(pg_catalog.-) v_total)::loyalty.points, 'points expired', v_as_of)
        RETURNING entry_id INTO v_entry;
        WITH x AS (
            UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
            FROM (SELECT l2.lot_id, l2.remaining FROM loyalty.lots l2
                  WHERE l2.member_id OPERATOR(pg_catalog.=) member AND l2.is_open
                    AND l2.expires_at OPERATOR(pg_catalog.<=) v_as_of) o
            WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.lot_id OPERATOR(pg_catalog.=) o.lot_id
            RETURNING l.lot_id, o.remaining)
        INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
        SELECT member, v_entry, x.lot_id, x.remaining FROM x;
    END IF;
    -- The expiry bound becomes exact: the job then leaves this member alone
    -- until its next lot expires (running twice changes nothing).
    SELECT pg_catalog.min(l.expires_at) INTO v_next FROM loyalty.lots l
    WHERE l.member_id OPERATOR(pg_catalog.=) member AND l.is_open AND l.expires_at IS NOT NULL;
    IF v_total IS NOT NULL OR v_next IS DISTINCT FROM v_bound THEN
        UPDATE loyalty.accounts a SET
            balance = (a.balance::bigint OPERATOR(pg_catalog.-) coalesce(v_total, 0))::loyalty.points,
            lifetime_expired = (a.lifetime_expired::bigint OPERATOR(pg_catalog.+) coalesce(v_total, 0))::loyalty.points,
            next_expiry_at = v_next,
            -- (a variable, not now(): Citus refuses volatile calls in a CASE)
            updated_at = CASE WHEN v_total IS NULL THEN a.updated_at ELSE v_now END
        WHERE a.member_id OPERATOR(pg_catalog.=) member;
    END IF;
    RETURN coalesce(v_total, 0)::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.expire_member(bigint, timestamptz) IS
    'Write off the unspent remainder of the member''s lots expired by as_of (default now); idempotent';


CREATE OR REPLACE FUNCTION loyalty.expire_batch(as_of timestamptz, batch_size integer)
RETURNS TABLE (members bigint, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint;
    v_n bigint := 0;
    v_pts bigint := 0;
BEGIN
    -- Members whose expiry bound has come: each is expired (or, when the bound
    -- was only a lower one, has it raised), so the next batch moves on.
    FOR v_member IN
        SELECT a.member_id FROM loyalty.accounts a
        WHERE a.next_expiry_at OPERATOR(pg_catalog.<=) as_of
        ORDER BY a.next_expiry_at
        LIMIT batch_size
    LOOP
        v_pts := v_pts OPERATOR(pg_catalog.+) loyalty.expire_member(v_member, as_of)::bigint;
        v_n := v_n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN QUERY SELECT v_n, v_pts::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.expire_batch(timestamptz, integer) IS
    'Expire the lots of up to batch_size members (one step of loyalty.expire_points)';


CREATE OR REPLACE FUNCTION loyalty.notify_expiring(within interval DEFAULT interval '30 days', batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint := 0;
    r record;
BEGIN
    IF within IS NULL OR within <= interval '0' THEN
        RAISE EXCEPTION 'within must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- one notice per member and expiry day, however often this runs
    FOR r IN
        SELECT l.member_id, (l.expires_at AT TIME ZONE 'UTC')::date AS day,
               sum(l.remaining::bigint) AS points, min(l.expires_at) AS expires_at
        FROM loyalty.accounts a JOIN loyalty.lots l ON l.member_id = a.member_id
        -- members whose expiry bound falls in the window, then their open lots
        WHERE a.next_expiry_at <= now() + within
          AND l.is_open AND l.expires_at > now() AND l.expires_at <= now() + within
          AND l.vests_at <= now()
        GROUP BY 1, 2
        ORDER BY 1, 2
        LIMIT coalesce(batch_size, 10000)
    LOOP
        IF loyalty.emit_event(r.member_id, 'points.expiring',
                              jsonb_build_object('points', r.points, 'expires_at', r.expires_at),
                              'expiring:' || r.day) IS NOT NULL THEN
            v_n := v_n + 1;
        END IF;
    END LOOP;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.notify_expiring(interval, integer) IS
    'Emit one points.expiring event per member and expiry day for spendable points expiring within the interval; safe to run repeatedly (schedule daily)';


CREATE OR REPLACE FUNCTION loyalty.verify()
RETURNS TABLE (invariant text, member_id bigint, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Every check reads whole tables, so hash joins are right whatever the
-- statistics say.  With statistics from before the ledger grew (analysed
-- while it held only earns), the planner expected no debits and rescanned an
-- aggregate of all allocations for every debit: minutes instead of seconds
-- at 300,000 rows (test/pgtap/plans.sql).
SET enable_nestloop = off
AS $$
    WITH led AS (
        SELECT l.member_id, sum(l.points::bigint) AS points, sum(l.held_delta::bigint) AS held
        FROM loyalty.ledger l GROUP BY l.member_id
    ), lots AS (
        SELECT l.member_id, sum(l.remaining::bigint) AS remaining
        FROM loyalty.lots l GROUP BY l.member_id
    ), holds AS (
        SELECT h.member_id, sum(h.points::bigint) AS held
        FROM loyalty.holds h WHERE h.status = 'active' GROUP BY h.member_id
    ), alloc AS (
        SELECT a.member_id, a.entry_id, sum(a.points::bigint) AS points
        FROM loyalty.allocations a GROUP BY a.member_id, a.entry_id
    )
    SELECT 'balance = sum(ledger)', a.member_id,
           format('balance %s, ledger %s', a.balance, coalesce(led.points, 0))
    FROM loyalty.accounts a LEFT JOIN led USING (member_id)
    WHERE a.balance::bigint <> coalesce(led.points, 0)
    UNION ALL
    SELECT 'balance = sum(lots) - debt', a.member_id,
           format('balance %s, lots %s, debt %s', a.balance, coalesce(lots.remaining, 0), a.debt)
    FROM loyalty.accounts a LEFT JOIN lots USING (member_id)
    WHERE a.balance::bigint <> coalesce(lots.remaining, 0) - a.debt::bigint
    UNION ALL
    SELECT 'held = sum(active holds) = sum(ledger.held_delta)', a.member_id,
           format('held %s, active holds %s, ledger %s', a.held, coalesce(holds.held, 0), coalesce(led.held, 0))
    FROM loyalty.accounts a LEFT JOIN holds USING (member_id) LEFT JOIN led USING (member_id)
    WHERE a.held::bigint <> coalesce(holds.held, 0) OR a.held::bigint <> coalesce(led.held, 0)
    UNION ALL
    SELECT 'no negative balance without debt', a.member_id, format('balance %s, debt %s', a.balance, a.debt)
    FROM loyalty.accounts a
    WHERE a.balance::bigint < 0 AND a.balance::bigint + a.debt::bigint < 0
    UNION ALL
    SELECT 'a debit consumed exactly its points from lots', l.member_id,
           format('entry %s (%s) of %s points, allocations %s', l.entry_id, l.kind, l.points, coalesce(al.points, 0))
    FROM loyalty.ledger l LEFT JOIN alloc al USING (member_id, entry_id)
    WHERE l.kind = ANY (ARRAY['redeem', 'hold', 'expire', 'merge', 'adjust'])
      AND l.points::bigint < 0 AND coalesce(al.points, 0) <> -l.points::bigint
    UNION ALL
    SELECT 'a credit has one lot of its points', l.member_id,
           format('entry %s (%s) of %s points, lots %s', l.entry_id, l.kind, l.points, coalesce(lo.original, 0))
    FROM loyalty.ledger l
    LEFT JOIN (SELECT x.member_id, x.entry_id, sum(x.original::bigint) AS original, count(*) AS n
               FROM loyalty.lots x GROUP BY 1, 2) lo USING (member_id, entry_id)
    WHERE l.kind = ANY (ARRAY['earn', 'award', 'adjust']) AND l.points::bigint > 0
      AND (lo.n IS DISTINCT FROM 1 OR lo.original <> l.points::bigint)
    UNION ALL
    SELECT 'a resolved hold has a resolving entry', h.member_id, format('hold %s is %s', h.hold_id, h.status)
    FROM loyalty.holds h
    WHERE (h.status = 'active') <> (h.resolved_entry IS NULL)
    UNION ALL
    SELECT 'reversals of a debit never exceed it', l.member_id,
           format('entry %s (%s) of %s points, given back %s', l.entry_id, l.kind, l.points, r.back)
    FROM loyalty.ledger l
    JOIN (SELECT x.member_id, x.source_entry, sum(x.points::bigint) AS back FROM loyalty.ledger x
          WHERE x.kind = 'reverse' AND x.points::bigint > 0 GROUP BY 1, 2) r
      ON r.member_id = l.member_id AND r.source_entry = l.entry_id
    WHERE r.back > -l.points::bigint AND l.kind <> 'capture'
    UNION ALL
    SELECT 'a ledger entry has a known kind', l.member_id, format('entry %s has kind %s', l.entry_id, l.kind)
    FROM loyalty.ledger l
    WHERE NOT l.kind = ANY (ARRAY['earn', 'award', 'redeem', 'hold', 'capture', 'release', 'reverse',
                                  'expire', 'adjust', 'merge', 'carry_forward'])
    UNION ALL
    SELECT 'lot bounds: 0 <= reversed, remaining <= original', l.member_id,
           format('lot %s: original %s, remaining %s, reversed %s', l.lot_id, l.original, l.remaining, l.reversed)
    FROM loyalty.lots l
    WHERE NOT (l.original::bigint > 0 AND l.remaining::bigint >= 0 AND l.remaining::bigint <= l.original::bigint
               AND l.reversed::bigint >= 0 AND l.reversed::bigint <= l.original::bigint)
    UNION ALL
    SELECT 'a lot belongs to a ledger entry', l.member_id, format('lot %s, entry %s', l.lot_id, l.entry_id)
    FROM loyalty.lots l
    -- (a lot is recorded with its entry: the entries of lots older than the
    -- archive horizon were archived)
    WHERE l.created_at >= coalesce((SELECT p.archived_before FROM loyalty.ledger_partitioning p), '-infinity')
      AND NOT EXISTS (SELECT 1 FROM loyalty.ledger x WHERE x.member_id = l.member_id AND x.entry_id = l.entry_id)
    UNION ALL
    SELECT 'allocation bounds: 0 <= returned <= points, points > 0', a.member_id,
           format('entry %s lot %s: points %s, returned %s', a.entry_id, a.lot_id, a.points, a.returned)
    FROM loyalty.allocations a
    WHERE NOT (a.points::bigint > 0 AND a.returned::bigint >= 0 AND a.returned::bigint <= a.points::bigint)
    UNION ALL
    SELECT 'an allocation names a lot of its member', a.member_id, format('entry %s, lot %s', a.entry_id, a.lot_id)
    FROM loyalty.allocations a
    WHERE NOT EXISTS (SELECT 1 FROM loyalty.lots l WHERE l.member_id = a.member_id AND l.lot_id = a.lot_id)
    UNION ALL
    SELECT 'no open lot expires before the account''s expiry bound', a.member_id,
           format('next_expiry_at %s, first open lot expires %s', coalesce(a.next_expiry_at::text, 'NULL'), x.first)
    FROM loyalty.accounts a
    JOIN (SELECT l.member_id, min(l.expires_at) AS first FROM loyalty.lots l
          WHERE l.is_open AND l.expires_at IS NOT NULL GROUP BY l.member_id) x USING (member_id)
    WHERE a.next_expiry_at IS NULL OR x.first < a.next_expiry_at
    UNION ALL
    SELECT 'account status = member status', a.member_id, format('account %s, member %s', a.status, m.status)
    FROM loyalty.accounts a JOIN loyalty.members m USING (member_id)
    WHERE a.status <> m.status
    UNION ALL
    SELECT 'at most one effect per idempotency key', l.member_id,
           format('key %s used by %s entries', l.idempotency_key, count(*))
    FROM loyalty.ledger l
    WHERE l.idempotency_key IS NOT NULL AND l.kind <> 'release'
    GROUP BY l.member_id, l.idempotency_key
    HAVING count(*) > 1
$$;
COMMENT ON FUNCTION loyalty.verify() IS
    'Check the ledger invariants; returns one row per violation and no rows when the books are sound';



-- == tier programs: an earn reads the qualification window only when it could upgrade ==
CREATE OR REPLACE FUNCTION loyalty.tier_after_write(member bigint, cause text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acc loyalty.accounts;
    v_q loyalty.tier;
    v_demote boolean;
    v_metric text;
    v_next numeric;
BEGIN
    PERFORM loyalty.require_member(tier_after_write.member);
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) member;
    SELECT p.tier_refund_demotes, p.tier_metric INTO v_demote, v_metric FROM loyalty.programs p
    WHERE p.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND p.tier_metric IS NOT NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF cause OPERATOR(pg_catalog.<>) 'refund' THEN
        -- An earn can only upgrade.  The window's metric never exceeds the
        -- member's lifetime total of it (net of refunds, kept on the account),
        -- so when that total is below every higher tier's threshold, or there
        -- is no higher tier, the window need not be read (it grows with the
        -- member's purchases: reading it on every earn made earns O(window)).
        SELECT pg_catalog.min(t.threshold) INTO v_next FROM loyalty.tiers t
        WHERE t.program_id OPERATOR(pg_catalog.=) v_acc.program_id AND NOT t.invitation_only
          AND (v_acc.tier IS NULL OR t.rank OPERATOR(pg_catalog.>) loyalty.tier_rank(v_acc.tier));
        IF v_next IS NULL OR (CASE v_metric
                                  WHEN 'spend' THEN v_acc.purchase_amount
                                  WHEN 'points' THEN v_acc.lifetime_earned::bigint::numeric
                                  WHEN 'visits' THEN v_acc.purchase_days::numeric
                              END) OPERATOR(pg_catalog.<) v_next THEN
            RETURN false;
        END IF;
    END IF;
    v_q := loyalty.qualified_tier(member);
    IF v_q IS NOT NULL AND (v_acc.tier IS NULL OR v_q OPERATOR(loyalty.>) v_acc.tier) THEN
        -- an upgrade never waits, and ends a manual or invitation lock below it
        RETURN loyalty.tier_change(member, v_q, 'qualified (' || cause || ')');
    END IF;
    IF cause = 'refund' AND v_demote AND v_acc.tier IS NOT NULL
       AND (v_q IS NULL OR v_q OPERATOR(loyalty.<) v_acc.tier)
       AND (v_acc.tier_locked_until IS NULL OR v_acc.tier_locked_until <= now()) THEN
        RETURN loyalty.tier_change(member, v_q, 'refund lowered the qualifying metric');
    END IF;
    RETURN false;
END $$;
COMMENT ON FUNCTION loyalty.tier_after_write(bigint, text) IS
    'Internal: upgrade at once after an earn; after a refund, demote only if the program says so';


-- == retention (issue 8): lots and allocations leave with archived partitions ==
CREATE OR REPLACE FUNCTION loyalty.archive_ledger(before timestamptz, archive_schema text DEFAULT 'loyalty_archive')
RETURNS TABLE (archived text, entries bigint, carried_members bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_parts regclass[];
    v_horizon timestamptz;
    v_default regclass;
    v_union text;
    v_n bigint;
    v_at timestamptz;
    v_months integer;
    v_p regclass;
    v_name text;
    v_lots bigint;
    v_allocs bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'loyalty.ledger'::regclass) <> 'p' THEN
        RAISE EXCEPTION 'loyalty.ledger is not partitioned'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Partition it first with loyalty.partition_ledger().';
    END IF;
    IF before IS NULL OR before > now() THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: not a past time', before USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF archive_schema IS NOT NULL AND (archive_schema = '' OR archive_schema = ANY (ARRAY['loyalty', 'pg_catalog', 'public'])) THEN
        RAISE EXCEPTION 'invalid archive schema "%"', archive_schema
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Name a schema of its own, or NULL to drop the archived partitions.';
    END IF;
    SELECT array_agg(p.partition ORDER BY p.lower_bound), max(p.upper_bound) INTO v_parts, v_horizon
    FROM loyalty.ledger_partitions() p WHERE NOT p.is_default AND p.upper_bound <= before;
    IF v_parts IS NULL THEN
        RETURN;
    END IF;
    SELECT p.partition INTO v_default FROM loyalty.ledger_partitions() p WHERE p.is_default;

    -- no more writes into what is archived (a transaction that started
    -- before the horizon may still write there: it is waited for)
    FOREACH v_p IN ARRAY v_parts LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_p);
    END LOOP;

    -- what must stay: the entries of open lots (a refund reverses them), of
    -- active holds (a capture completes them), the tier qualification
    -- window, and rows the DEFAULT partition holds from before the horizon
    SELECT count(*), min(l.created_at) INTO v_n, v_at FROM loyalty.lots l
    WHERE l.is_open AND l.created_at < v_horizon;
    IF v_n > 0 THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: % lots credited before it are still open', v_horizon, v_n
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('The oldest open lot was credited at %s; its entry must stay for refunds.', v_at),
                  HINT = 'Archive before an earlier time, or wait until those points are spent or expire.';
    END IF;
    SELECT count(*), min(h.created_at) INTO v_n, v_at FROM loyalty.holds h
    WHERE h.status = 'active' AND h.created_at < v_horizon;
    IF v_n > 0 THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: % holds placed before it are still active', v_horizon, v_n
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Resolve the holds first (loyalty.release_expired_batch()), or archive before an earlier time.';
    END IF;
    SELECT max(p.tier_window_months) INTO v_months FROM loyalty.programs p;
    IF v_horizon > now() - pg_catalog.make_interval(months => coalesce(v_months, 0)) THEN
        RAISE EXCEPTION 'cannot archive the ledger before %: tiers qualify on the last % months of it', v_horizon, v_months
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Archive only entries older than the longest tier window (loyalty.programs.tier_window_months).';
    END IF;
    IF v_default IS NOT NULL THEN
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_default);
        EXECUTE format('SELECT count(*) FROM %s WHERE created_at < %L', v_default, v_horizon) INTO v_n;
        IF v_n > 0 THEN
            RAISE EXCEPTION 'cannot archive the ledger before %: the DEFAULT partition holds % entries from before it', v_horizon, v_n
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Give them partitions first: loyalty.create_ledger_partitions(since => <their oldest created_at>).';
        END IF;
    END IF;

    -- per member, one entry that carries what the archived ones summed to
    SELECT string_agg(format('SELECT member_id, program_id, points, held_delta FROM %s', p), ' UNION ALL ')
    INTO v_union FROM unnest(v_parts) p;
    EXECUTE format($q$
        INSERT INTO loyalty.ledger (member_id, program_id, kind, points, held_delta, reason, actor,
                                    created_at, occurred_at, details)
        SELECT x.member_id, x.program_id, 'carry_forward',
               pg_catalog.sum(x.points::bigint)::bigint::loyalty.points,
               pg_catalog.sum(x.held_delta::bigint)::bigint::loyalty.points,
               'entries before the archive horizon', session_user, %1$L, %1$L,
               pg_catalog.jsonb_build_object('archived_entries', count(*), 'archived_before', %1$L::timestamptz)
        FROM (%2$s) x
        GROUP BY x.member_id, x.program_id$q$, v_horizon, v_union);

    IF archive_schema IS NOT NULL THEN
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', archive_schema);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO loyalty_admin', archive_schema);
        -- lots and allocations leave with their entries (plain copies: no
        -- generated column, no index; read them with the archived partitions)
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.lots (LIKE loyalty.lots)', archive_schema);
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.allocations (LIKE loyalty.allocations)', archive_schema);
        EXECUTE format('GRANT SELECT ON %I.lots, %I.allocations TO loyalty_admin', archive_schema, archive_schema);
    END IF;

    -- Lots and allocations grow with the ledger: the allocations of archived
    -- debits go, then the closed lots credited before the horizon that no
    -- remaining allocation names (a later debit may still be refunded into
    -- an old lot: that lot stays).  Every old lot is closed (checked above),
    -- so balances and sum(lots) do not move.
    SELECT string_agg(format('SELECT member_id, entry_id FROM %s', p), ' UNION ALL ')
    INTO v_union FROM unnest(v_parts) p;
    EXECUTE format($q$
        WITH gone AS (
            DELETE FROM loyalty.allocations a USING (%s) x
            WHERE a.member_id OPERATOR(pg_catalog.=) x.member_id AND a.entry_id OPERATOR(pg_catalog.=) x.entry_id
            RETURNING a.*)%s
        SELECT count(*) FROM gone$q$,
        v_union,
        CASE WHEN archive_schema IS NULL THEN ''
             ELSE format(', kept AS (INSERT INTO %I.allocations SELECT * FROM gone)', archive_schema) END)
    INTO v_allocs;
    EXECUTE format($q$
        WITH gone AS (
            DELETE FROM loyalty.lots l
            WHERE l.created_at OPERATOR(pg_catalog.<) %L AND NOT l.is_open
              AND NOT EXISTS (SELECT 1 FROM loyalty.allocations a
                              WHERE a.member_id OPERATOR(pg_catalog.=) l.member_id
                                AND a.lot_id OPERATOR(pg_catalog.=) l.lot_id)
            RETURNING l.*)%s
        SELECT count(*) FROM gone$q$,
        v_horizon,
        CASE WHEN archive_schema IS NULL THEN ''
             ELSE format(', kept AS (INSERT INTO %I.lots SELECT * FROM gone)', archive_schema) END)
    INTO v_lots;

    FOREACH v_p IN ARRAY v_parts LOOP
        SELECT c.relname INTO v_name FROM pg_catalog.pg_class c WHERE c.oid = v_p;
        EXECUTE format('SELECT count(*) FROM %s', v_p) INTO v_n;
        archived := CASE WHEN archive_schema IS NULL THEN v_p::text || ' (dropped)'
                         ELSE format('%I.%I', archive_schema, v_name) END;
        entries := v_n;
        EXECUTE format('SELECT count(DISTINCT member_id) FROM %s', v_p) INTO carried_members;
        EXECUTE format('ALTER TABLE loyalty.ledger DETACH PARTITION %s', v_p);
        IF archive_schema IS NULL THEN
            EXECUTE format('DROP TABLE %s', v_p);
        ELSE
            EXECUTE format('ALTER TABLE %s SET SCHEMA %I', v_p, archive_schema);
            -- archived entries stay immutable
            EXECUTE format('CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON %I.%I'
                           ' FOR EACH ROW EXECUTE FUNCTION loyalty.ledger_refuse_change()', archive_schema, v_name);
            EXECUTE format('GRANT SELECT ON %I.%I TO loyalty_admin', archive_schema, v_name);
        END IF;
        RETURN NEXT;
    END LOOP;
    archived := CASE WHEN archive_schema IS NULL THEN 'loyalty.lots (deleted)' ELSE format('%I.lots', archive_schema) END;
    entries := v_lots;
    carried_members := NULL;
    RETURN NEXT;
    archived := CASE WHEN archive_schema IS NULL THEN 'loyalty.allocations (deleted)' ELSE format('%I.allocations', archive_schema) END;
    entries := v_allocs;
    RETURN NEXT;
    UPDATE loyalty.ledger_partitioning p SET archived_before = v_horizon;
END $$;
COMMENT ON FUNCTION loyalty.archive_ledger(timestamptz, text) IS
    'Retire the ledger partitions that end at or before a time: one carry_forward entry per member keeps balances and held points, then the partitions are detached into archive_schema (NULL: dropped), and with them the allocations of archived debits and the closed old lots no later debit names (archive_schema.lots and .allocations); one row per partition, then one for lots and one for allocations (entries = rows moved); refused while an open lot, active hold, tier window or DEFAULT-partition row needs them';


-- == Citus (issue 8) ==========================================================
-- 1.3 closes gaps of the Citus mode (README "Scale-out on Citus"); every
-- change below also holds on a database without Citus.

-- balance(): every table of its query filtered by the member itself, so Citus
-- plans the statement as one task on the member's shard.

CREATE OR REPLACE FUNCTION loyalty.balance(member bigint)
RETURNS TABLE (
    member_id bigint, available loyalty.points, pending loyalty.points, held loyalty.points,
    expired_unposted loyalty.points, debt loyalty.points, balance loyalty.points,
    lifetime_earned loyalty.points, lifetime_redeemed loyalty.points, lifetime_expired loyalty.points,
    next_expiry timestamptz, next_expiry_points loyalty.points, as_of timestamptz)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    -- Expiry and hold timeouts are exact at read time: a lot past its expiry
    -- is not available even before the batch runs, and an expired hold's
    -- points are available again before anything releases it.
    -- Every table is filtered by v_member itself, the correlated subquery
    -- too (not through h.member_id): Citus then plans the whole statement as
    -- one task on the member's shard; with the correlation alone it ran the
    -- holds part on every shard (about 0.3 s a call on 3 nodes).
    RETURN QUERY
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = v_member AND lots.is_open
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = v_member AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = v_member AND h.status = 'active' AND h.expires_at <= now()
    )
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::loyalty.points,
           coalesce(l.pending, 0)::loyalty.points,
           (a.held::bigint - coalesce(h.points, 0))::loyalty.points,
           coalesce(l.expired, 0)::loyalty.points,
           a.debt, a.balance, a.lifetime_earned, a.lifetime_redeemed, a.lifetime_expired,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = v_member AND x.expires_at = l.next_expiry
                       AND x.is_open AND x.vests_at <= now()), 0)::loyalty.points,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = v_member;
END $$;
COMMENT ON FUNCTION loyalty.balance(bigint) IS
    'Balances of a member now: available (spendable), pending (vesting), held, expired but not yet written down, debt, posted balance, lifetime totals, next expiry';


-- merge_members(): the two account locks as two single-member statements.

CREATE OR REPLACE FUNCTION loyalty.merge_members(survivor bigint, absorbed bigint, idempotency_key text DEFAULT NULL)
RETURNS loyalty.points
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog_s bigint;
    v_prog_a bigint;
    v_status text;
    a_acc loyalty.accounts;
    v_hold bigint;
    v_out bigint;
    v_in bigint;
    v_moved bigint;
    v_lot record;
    v_hash bigint;
    v_prev record;
BEGIN
    PERFORM loyalty.require_member(merge_members.survivor);
    PERFORM loyalty.require_member(merge_members.absorbed);
    IF survivor IS NULL OR absorbed IS NULL THEN
        RAISE EXCEPTION 'survivor and absorbed must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF survivor OPERATOR(pg_catalog.=) absorbed THEN
        RAISE EXCEPTION 'cannot merge member % into itself', survivor USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- both account rows, always in member_id order, so merges never deadlock;
    -- one statement per member, so that each is routed to its shard on Citus
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) LEAST(survivor, absorbed) FOR UPDATE;
    PERFORM FROM loyalty.accounts a
    WHERE a.member_id OPERATOR(pg_catalog.=) GREATEST(survivor, absorbed) FOR UPDATE;

    SELECT m.program_id, m.status INTO v_prog_s, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) survivor;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', survivor USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'surviving member % is closed', survivor USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    v_hash := pg_catalog.hashtextextended(pg_catalog.concat_ws('|', 'merge', survivor, absorbed), 0);
    IF idempotency_key IS NOT NULL THEN
        SELECT k.operation, k.request_hash, k.result INTO v_prev FROM loyalty.idempotency_keys k
        WHERE k.member_id OPERATOR(pg_catalog.=) survivor
          AND k.idempotency_key OPERATOR(pg_catalog.=) merge_members.idempotency_key;
        IF FOUND THEN
            IF v_prev.operation OPERATOR(pg_catalog.<>) 'merge' OR v_prev.request_hash OPERATOR(pg_catalog.<>) v_hash THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN v_prev.result::loyalty.points;
        END IF;
    END IF;

    SELECT m.program_id, m.status INTO v_prog_a, v_status FROM loyalty.members m
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', absorbed USING ERRCODE = 'no_data_found';
    END IF;
    IF v_status OPERATOR(pg_catalog.=) 'closed' THEN
        RAISE EXCEPTION 'member % is closed (already merged?)', absorbed USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_prog_s OPERATOR(pg_catalog.<>) v_prog_a THEN
        RAISE EXCEPTION 'members % and % belong to different programs', survivor, absorbed
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- open holds of the absorbed member go back to it before its lots move
    -- (those whose time is up first, as on any write: releasing them by id
    -- would be refused as expired)
    PERFORM loyalty.release_expired(absorbed);
    FOR v_hold IN SELECT h.hold_id FROM loyalty.holds h
                  WHERE h.member_id OPERATOR(pg_catalog.=) absorbed AND h.status OPERATOR(pg_catalog.=) 'active'
                  ORDER BY h.hold_id LOOP
        PERFORM loyalty.release(v_hold);
    END LOOP;

    SELECT * INTO STRICT a_acc FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;
    v_moved := a_acc.balance::bigint;

    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, details)
    VALUES (absorbed, v_prog_a, 'merge', (OPERATOR(pg_catalog.-) v_moved)::loyalty.points,
            'merged into member ' || survivor, NULL,
            pg_catalog.jsonb_build_object('merged_into', survivor, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_out;
    INSERT INTO loyalty.ledger (member_id, program_id, kind, points, reason, source_entry, idempotency_key, details)
    VALUES (survivor, v_prog_s, 'merge', v_moved::loyalty.points,
            'merged from member ' || absorbed, v_out, idempotency_key,
            pg_catalog.jsonb_build_object('merged_from', absorbed, 'debt', a_acc.debt::bigint))
    RETURNING entry_id INTO v_in;

    -- every open lot moves with its vesting and expiry dates
    FOR v_lot IN SELECT l.lot_id, l.remaining, l.vests_at, l.expires_at FROM loyalty.lots l
                 WHERE l.member_id OPERATOR(pg_catalog.=) absorbed AND l.is_open
                 ORDER BY l.lot_id LOOP
        INSERT INTO loyalty.allocations (member_id, entry_id, lot_id, points)
        VALUES (absorbed, v_out, v_lot.lot_id, v_lot.remaining);
        UPDATE loyalty.lots l SET remaining = '0'::loyalty.points
        WHERE l.member_id OPERATOR(pg_catalog.=) absorbed AND l.lot_id OPERATOR(pg_catalog.=) v_lot.lot_id;
        -- one merge entry brings many lots: they number from the ledger's
        -- sequence, so they never collide with a credit's lot (= its entry_id)
        INSERT INTO loyalty.lots (member_id, lot_id, entry_id, original, remaining, vests_at, expires_at)
        VALUES (survivor, pg_catalog.nextval('loyalty.ledger_entry_id_seq'::pg_catalog.regclass), v_in,
                v_lot.remaining, v_lot.remaining, v_lot.vests_at, v_lot.expires_at);
    END LOOP;

    UPDATE loyalty.accounts s SET
        balance = (s.balance::bigint OPERATOR(pg_catalog.+) a_acc.balance::bigint)::loyalty.points,
        debt = (s.debt::bigint OPERATOR(pg_catalog.+) a_acc.debt::bigint)::loyalty.points,
        lifetime_earned = (s.lifetime_earned::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_earned::bigint)::loyalty.points,
        lifetime_redeemed = (s.lifetime_redeemed::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_redeemed::bigint)::loyalty.points,
        lifetime_expired = (s.lifetime_expired::bigint OPERATOR(pg_catalog.+) a_acc.lifetime_expired::bigint)::loyalty.points,
        first_purchase_at = LEAST(s.first_purchase_at, a_acc.first_purchase_at),
        last_purchase_at = GREATEST(s.last_purchase_at, a_acc.last_purchase_at),
        purchase_count = s.purchase_count OPERATOR(pg_catalog.+) a_acc.purchase_count,
        purchase_days = s.purchase_days OPERATOR(pg_catalog.+) a_acc.purchase_days,
        purchase_amount = s.purchase_amount OPERATOR(pg_catalog.+) a_acc.purchase_amount,
        -- the moved lots may expire before the survivor's own
        next_expiry_at = LEAST(s.next_expiry_at,
                               (SELECT pg_catalog.min(l.expires_at) FROM loyalty.lots l
                                WHERE l.member_id OPERATOR(pg_catalog.=) survivor
                                  AND l.is_open AND l.entry_id OPERATOR(pg_catalog.=) v_in)),
        updated_at = now()
    WHERE s.member_id OPERATOR(pg_catalog.=) survivor;
    UPDATE loyalty.accounts a SET
        balance = '0', debt = '0', lifetime_earned = '0', lifetime_redeemed = '0', lifetime_expired = '0',
        first_purchase_at = NULL, last_purchase_at = NULL, purchase_count = 0, purchase_days = 0,
        purchase_amount = 0, status = 'closed', next_expiry_at = NULL, updated_at = now()
    WHERE a.member_id OPERATOR(pg_catalog.=) absorbed;

    UPDATE loyalty.identities i SET member_id = survivor WHERE i.member_id OPERATOR(pg_catalog.=) absorbed;
    UPDATE loyalty.members m SET status = 'closed', merged_into = survivor
    WHERE m.member_id OPERATOR(pg_catalog.=) absorbed;
    -- members merged into the absorbed one now point at the survivor
    UPDATE loyalty.members m SET merged_into = survivor WHERE m.merged_into OPERATOR(pg_catalog.=) absorbed;

    IF idempotency_key IS NOT NULL THEN
        INSERT INTO loyalty.idempotency_keys (member_id, idempotency_key, operation, request_hash, result, entry_id)
        VALUES (survivor, idempotency_key, 'merge', v_hash, v_moved, v_in);
    END IF;
    RETURN v_moved::loyalty.points;
END $$;
COMMENT ON FUNCTION loyalty.merge_members(bigint, bigint, text) IS
    'Merge two records of one person: lots (with their expiry), debt, statistics and identities move to the survivor through merge ledger entries; the absorbed member is closed; returns the points moved';


-- The rules-version trigger bumps the node's own copy of loyalty.programs
-- when it fires on a shard of a Citus reference table;
-- create_earning_rule() without CASE x WHEN (Citus deparses it wrongly).

CREATE OR REPLACE FUNCTION loyalty.rules_version_bump() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_programs text;
    v_ids bigint[] := ARRAY[
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN OLD.program_id END,
        CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN NEW.program_id END];
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.=) ANY (ARRAY['loyalty.earning_rules'::regclass, 'loyalty.tiers'::regclass]::oid[]) THEN
        UPDATE loyalty.programs p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
        WHERE p.program_id OPERATOR(pg_catalog.=) ANY (v_ids);
        RETURN NULL;
    END IF;
    -- a shard of a Citus reference table (Citus's catalog is read by EXECUTE:
    -- it does not exist without Citus)
    EXECUTE 'SELECT pg_catalog.shard_name(s.logicalrelid, s.shardid) FROM pg_catalog.pg_dist_shard s
             WHERE s.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.programs''::pg_catalog.regclass'
        INTO v_programs;
    IF v_programs IS NULL OR pg_catalog.to_regclass(v_programs) IS NULL THEN
        RAISE EXCEPTION 'no copy of loyalty.programs on this node to record the change of %.% in', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Rule and tier changes bump loyalty.programs.rules_version on the node of the changed copy.',
                  HINT = 'Replicate the reference tables to this node: SELECT replicate_reference_tables().';
    END IF;
    EXECUTE pg_catalog.format('UPDATE %s p SET rules_version = p.rules_version OPERATOR(pg_catalog.+) 1
                               WHERE p.program_id OPERATOR(pg_catalog.=) ANY ($1)', v_programs)
        USING v_ids;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION loyalty.rules_version_bump() IS 'Trigger: bump programs.rules_version when an earning rule or a tier changes';


CREATE OR REPLACE FUNCTION loyalty.create_earning_rule(
    program bigint, name text, effect text,
    multiplier numeric DEFAULT NULL, bonus_points loyalty.points DEFAULT NULL,
    stacking text DEFAULT NULL, priority integer DEFAULT 100, stop boolean DEFAULT false,
    valid_from timestamptz DEFAULT NULL, valid_until timestamptz DEFAULT NULL,
    weekdays integer[] DEFAULT NULL, hour_from integer DEFAULT NULL, hour_to integer DEFAULT NULL,
    channels text[] DEFAULT NULL, stores text[] DEFAULT NULL,
    categories text[] DEFAULT NULL, products text[] DEFAULT NULL,
    min_tier loyalty.tier DEFAULT NULL, segments text[] DEFAULT NULL,
    birthday text DEFAULT NULL, first_purchase boolean DEFAULT false, min_amount numeric DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM loyalty.require_program(create_earning_rule.program);
    IF program IS NULL OR name IS NULL OR effect IS NULL THEN
        RAISE EXCEPTION 'program, name and effect must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF effect NOT IN ('multiply', 'bonus') THEN
        RAISE EXCEPTION 'unknown rule effect "%"', effect USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use multiply (with multiplier) or bonus (with bonus_points).';
    END IF;
    IF effect = 'multiply' AND (multiplier IS NULL OR bonus_points IS NOT NULL) THEN
        RAISE EXCEPTION 'a multiply rule needs a multiplier and no bonus_points' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND (bonus_points IS NULL OR multiplier IS NOT NULL OR bonus_points::bigint <= 0) THEN
        RAISE EXCEPTION 'a bonus rule needs positive bonus_points and no multiplier' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF multiplier IS NOT NULL AND (multiplier = 'NaN' OR multiplier < 0 OR multiplier >= 1000) THEN
        RAISE EXCEPTION 'multiplier must be between 0 and 1000, got %', multiplier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF effect = 'bonus' AND coalesce(stacking, 'add') = 'multiply' THEN
        RAISE EXCEPTION 'a bonus stacks by add or best_of, not multiply' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id OPERATOR(pg_catalog.=) program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    BEGIN
        INSERT INTO loyalty.earning_rules (program_id, name, effect, multiplier, bonus_points, stacking, priority,
            stop, valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores, categories, products,
            min_tier, segments, birthday, first_purchase, min_amount)
        VALUES (program, name, effect, multiplier, bonus_points,
            coalesce(stacking, CASE WHEN effect OPERATOR(pg_catalog.=) 'bonus' THEN 'add' ELSE 'multiply' END), coalesce(priority, 100),
            coalesce(stop, false), valid_from, valid_until, weekdays, hour_from, hour_to, channels, stores,
            categories, products, min_tier, segments, birthday, coalesce(first_purchase, false), min_amount)
        RETURNING rule_id INTO v_id;
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'program % already has a rule named "%"', program, name
                USING ERRCODE = 'unique_violation';
        WHEN check_violation THEN
            RAISE EXCEPTION 'invalid earning rule "%": %', name, SQLERRM
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Check stacking, weekdays (1..7), hours (0..24, from < to), the validity window, birthday (day or month).';
    END;
    RETURN v_id;
END $$;
COMMENT ON FUNCTION loyalty.create_earning_rule(bigint, text, text, numeric, loyalty.points, text, integer, boolean,
    timestamptz, timestamptz, integer[], integer, integer, text[], text[], text[], text[], loyalty.tier, text[], text, boolean, numeric) IS
    'Add a multiplier or bonus rule to a program; returns its id (see README "Earning rules" for stacking)';


-- tier_metric() and qualified_tier(): no call of a querying function inside a
-- query that Citus routes to a shard.

CREATE OR REPLACE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
    v_stop timestamptz := coalesce($2, now());
    v_metric text;
    v_kind text;
    v_start timestamptz;
BEGIN
    SELECT p.tier_metric, p.tier_window INTO v_metric, v_kind
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = v_member;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- a statement of its own, not a call inside the query below: on Citus
    -- that query runs on the member's shard, where a function that queries
    -- distributed tables itself cannot run
    v_start := loyalty.tier_window_start(v_member, v_stop);
    RETURN (
    WITH e AS (
        SELECT l.occurred_at, coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM loyalty.ledger l
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
        WHERE l.member_id = v_member AND l.kind = 'earn' AND l.occurred_at <= v_stop
          AND (l.occurred_at > v_start OR (v_kind <> 'rolling' AND l.occurred_at = v_start))
    )
    SELECT CASE
        WHEN v_metric = 'spend' THEN coalesce((SELECT sum(spend) FROM e), 0)
        WHEN v_metric = 'points' THEN coalesce((SELECT sum(points) FROM e), 0)
        WHEN v_metric = 'visits' THEN (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM e WHERE spend > 0)
    END);
END $$;
COMMENT ON FUNCTION loyalty.tier_metric(bigint, timestamptz) IS
    'The member''s qualifying metric (spend, points earned or visits, net of refunds) over the window ending at as_of (default now)';


CREATE OR REPLACE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.tier
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
    v_value numeric;
BEGIN
    -- the metric first, in a statement of its own (see tier_metric)
    v_value := loyalty.tier_metric(v_member, $2);
    RETURN (
    SELECT loyalty.tier(t.rank, t.name)
    FROM loyalty.members m JOIN loyalty.tiers t ON t.program_id = m.program_id
    WHERE m.member_id = v_member AND NOT t.invitation_only AND t.threshold <= v_value
    ORDER BY t.rank DESC LIMIT 1);
END $$;
COMMENT ON FUNCTION loyalty.qualified_tier(bigint, timestamptz) IS
    'The highest tier (not invitation-only) whose threshold the member''s metric reaches at as_of';


-- Vouchers start with the member id: distinct by construction, checked per
-- member (one shard).

COMMENT ON COLUMN loyalty.redemptions.voucher IS 'Voucher code: the member id in hex, a dash, 16 random hex digits (gen_random_uuid); distinct across redemptions by construction';

CREATE OR REPLACE FUNCTION loyalty.redeem_reward(member bigint, reward bigint, idempotency_key text DEFAULT NULL,
                                      channel text DEFAULT NULL)
RETURNS TABLE (redemption_id bigint, voucher text, points loyalty.points)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_acc loyalty.accounts;
    v_r loyalty.rewards;
    v_prev loyalty.redemptions;
    v_used bigint;
    v_entry bigint;
    v_id bigint;
    v_voucher text;
BEGIN
    PERFORM loyalty.require_member(redeem_reward.member);
    IF member IS NULL OR reward IS NULL THEN
        RAISE EXCEPTION 'member and reward must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO v_acc FROM loyalty.accounts a WHERE a.member_id = redeem_reward.member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', member USING ERRCODE = 'no_data_found';
    END IF;
    IF idempotency_key IS NOT NULL THEN
        SELECT * INTO v_prev FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.idempotency_key = redeem_reward.idempotency_key;
        IF FOUND THEN
            IF v_prev.reward_id <> reward THEN
                RAISE EXCEPTION 'idempotency key "%" was already used for a different request', idempotency_key
                    USING ERRCODE = 'LY002';
            END IF;
            RETURN QUERY SELECT v_prev.redemption_id, v_prev.voucher, v_prev.points;
            RETURN;
        END IF;
    END IF;
    SELECT * INTO v_r FROM loyalty.rewards r WHERE r.reward_id = reward AND r.program_id = v_acc.program_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reward % does not exist in the program of member %', reward, member USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT v_r.active OR (v_r.valid_from IS NOT NULL AND now() < v_r.valid_from)
       OR (v_r.valid_until IS NOT NULL AND now() >= v_r.valid_until) THEN
        RAISE EXCEPTION 'reward "%" is not available now', v_r.code USING ERRCODE = 'LY011',
            DETAIL = format('active: %s, valid from %s until %s', v_r.active, coalesce(v_r.valid_from::text, '-'),
                            coalesce(v_r.valid_until::text, '-'));
    END IF;
    IF v_r.min_tier IS NOT NULL
       AND (v_acc.tier IS NULL OR loyalty.tier_rank(v_acc.tier) < loyalty.tier_rank(v_r.min_tier)) THEN
        RAISE EXCEPTION 'reward "%" needs tier % or above', v_r.code, v_r.min_tier USING ERRCODE = 'LY012',
            DETAIL = format('The member''s tier is %s.', coalesce(v_acc.tier::text, 'none'));
    END IF;
    IF v_r.per_member_limit IS NOT NULL THEN
        SELECT count(*) INTO v_used FROM loyalty.redemptions x
        WHERE x.member_id = redeem_reward.member AND x.reward_id = reward AND x.status = 'issued';
        IF v_used >= v_r.per_member_limit THEN
            RAISE EXCEPTION 'member % already redeemed reward "%" % times (the limit)', member, v_r.code, v_used
                USING ERRCODE = 'LY013';
        END IF;
    END IF;
    IF v_r.stock IS NOT NULL THEN
        -- waits for a concurrent buyer of the same reward, then re-checks the stock
        UPDATE loyalty.rewards r SET stock = r.stock - 1 WHERE r.reward_id = reward AND r.stock > 0;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'reward "%" is out of stock', v_r.code USING ERRCODE = 'LY010';
        END IF;
    END IF;
    v_entry := loyalty.redeem(member, v_r.point_cost, channel, 'reward:' || v_r.code,
                              CASE WHEN idempotency_key IS NOT NULL THEN 'reward:' || idempotency_key END);
    -- the member id, then 64 bits from the strong random source: distinct from
    -- every other member's vouchers by the prefix, so only this member's are
    -- checked (one shard on Citus); the unique index is the last word
    LOOP
        v_voucher := upper(to_hex(member)) || '-' || upper(substr(md5(gen_random_uuid()::text), 1, 16));
        EXIT WHEN NOT EXISTS (SELECT FROM loyalty.redemptions x
                              WHERE x.member_id = redeem_reward.member AND x.voucher = v_voucher);
    END LOOP;
    INSERT INTO loyalty.redemptions (member_id, reward_id, points, entry_id, voucher, idempotency_key, channel)
    VALUES (member, reward, v_r.point_cost, v_entry, v_voucher, idempotency_key, channel)
    RETURNING redemptions.redemption_id INTO v_id;
    PERFORM loyalty.emit_event(member, 'reward.redeemed',
        jsonb_build_object('reward_id', reward, 'reward_code', v_r.code, 'redemption_id', v_id,
                           'voucher', v_voucher, 'points', v_r.point_cost::bigint));
    RETURN QUERY SELECT v_id, v_voucher, v_r.point_cost;
END $$;
COMMENT ON FUNCTION loyalty.redeem_reward(bigint, bigint, text, text) IS
    'Redeem a catalog reward: checks window, tier gate, per-member limit and stock atomically, spends the points, issues a voucher code';


-- refer(): the referral chain walked one member at a time; both account
-- locks as single-member statements.

CREATE OR REPLACE FUNCTION loyalty.referral_refusal(new_member bigint, referrer bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_up bigint := referral_refusal.referrer;
    v_depth integer := 0;
BEGIN
    PERFORM loyalty.require_member(referral_refusal.new_member);
    PERFORM loyalty.require_member(referral_refusal.referrer);
    IF EXISTS (SELECT FROM loyalty.referrals r WHERE r.member_id = new_member) THEN
        RETURN format('member %s was already referred', new_member);
    END IF;
    IF (SELECT a.purchase_count FROM loyalty.accounts a WHERE a.member_id = new_member) > 0 THEN
        RETURN format('member %s has already made a purchase', new_member);
    END IF;
    -- a loop: the referrer was itself referred, directly or further up, by
    -- the new member.  One lookup per member of the chain (at most 1000), each
    -- by its member_id: on Citus each is routed to that member's shard, where
    -- one recursive query across members cannot be planned.
    LOOP
        SELECT r.referrer INTO v_up FROM loyalty.referrals r WHERE r.member_id OPERATOR(pg_catalog.=) v_up;
        EXIT WHEN NOT FOUND OR v_depth OPERATOR(pg_catalog.>=) 1000;
        IF v_up OPERATOR(pg_catalog.=) new_member THEN
            RETURN format('member %s is in the referral chain of member %s', new_member, referrer);
        END IF;
        v_depth := v_depth OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION loyalty.referral_refusal(bigint, bigint) IS
    'Internal: the reason a referral of new_member by referrer is refused for good (already referred, already bought, a loop), or NULL';


CREATE OR REPLACE FUNCTION loyalty.refer(new_member bigint, code text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_prog bigint;
    v_referrer bigint;
    v_rules loyalty.referral_rules;
    v_n bigint;
    v_why text;
BEGIN
    PERFORM loyalty.require_member(refer.new_member);
    IF new_member IS NULL OR code IS NULL THEN
        RAISE EXCEPTION 'new_member and code must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.program_id INTO v_prog FROM loyalty.accounts a WHERE a.member_id = new_member;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'member % does not exist', new_member USING ERRCODE = 'no_data_found';
    END IF;
    SELECT c.member_id INTO v_referrer FROM loyalty.referral_codes c
    WHERE c.program_id = v_prog AND c.code = upper(refer.code);
    IF NOT FOUND THEN
        IF EXISTS (SELECT FROM loyalty.referral_codes c WHERE c.code = upper(refer.code)) THEN
            RAISE EXCEPTION 'referral refused: code "%" belongs to a member of another program', code
                USING ERRCODE = 'LY020', DETAIL = format('Member %s is in program %s.', new_member, v_prog);
        END IF;
        RAISE EXCEPTION 'referral refused: no member of program % has code "%"', v_prog, code USING ERRCODE = 'LY020';
    END IF;
    IF v_referrer = new_member THEN
        RAISE EXCEPTION 'referral refused: member % cannot refer itself', new_member USING ERRCODE = 'LY020';
    END IF;
    -- A refusal for good is raised before any lock: a purchase of a referred
    -- member locks it, then its referrer, so the reverse pair (the referrer
    -- entering its referee's code) must not wait for a lock.
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    -- both members, in member_id order (no deadlock with another referral);
    -- one statement per member, so that each is routed to its shard on Citus
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) least(new_member, v_referrer) FOR NO KEY UPDATE;
    PERFORM FROM loyalty.accounts a WHERE a.member_id OPERATOR(pg_catalog.=) greatest(new_member, v_referrer) FOR NO KEY UPDATE;
    SELECT * INTO v_rules FROM loyalty.referral_rules r WHERE r.program_id = v_prog;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'referral refused: program % has no referral rules', v_prog USING ERRCODE = 'LY020',
            HINT = 'Set them with loyalty.set_referral_rules().';
    END IF;
    -- again under the locks: a racing referral or purchase has committed by now
    v_why := loyalty.referral_refusal(new_member, v_referrer);
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'referral refused: %', v_why USING ERRCODE = 'LY020';
    END IF;
    IF v_rules.max_referrals_per_referrer IS NOT NULL THEN
        SELECT count(*) INTO v_n FROM loyalty.referrals r WHERE r.referrer = v_referrer;
        IF v_n >= v_rules.max_referrals_per_referrer THEN
            RAISE EXCEPTION 'referral refused: member % has reached % referrals', v_referrer, v_n USING ERRCODE = 'LY020',
                DETAIL = format('The program allows %s referrals per member.', v_rules.max_referrals_per_referrer);
        END IF;
    END IF;
    INSERT INTO loyalty.referrals (member_id, referrer, code) VALUES (new_member, v_referrer, upper(refer.code));
    UPDATE loyalty.accounts a SET referral_pending = true WHERE a.member_id = new_member;
    RETURN v_referrer;
END $$;
COMMENT ON FUNCTION loyalty.refer(bigint, text) IS
    'Link a new member (before any purchase) to the owner of a referral code; refuses self-referral, a second referrer, loops and capped referrers (LY020); returns the referrer';


-- claim_events() and ack_events() in PL/pgSQL; on Citus claim_events() lists
-- across shards and claims member by member.

CREATE OR REPLACE FUNCTION loyalty.claim_events(max_events integer DEFAULT 100, consumer text DEFAULT NULL,
                                     visibility interval DEFAULT interval '5 minutes')
RETURNS SETOF loyalty.events
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_want bigint := greatest(coalesce(max_events, 100), 0);
    v_by text := coalesce(consumer, session_user::text);
    -- a claim not acknowledged within `visibility` is handed out again
    -- (at-least-once delivery)
    v_before timestamptz := now() - coalesce(visibility, interval '5 minutes');
    v_citus boolean := false;
    v_got bigint := 0;
    v_n bigint;
    v_asked bigint;
    v_found bigint;
    v_members bigint[];
    v_events bigint[];
    v_last_at timestamptz;
    v_last_id bigint;
    v_member bigint;
    v_ids bigint[];
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
                                WHERE d.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.events''::pg_catalog.regclass)'
            INTO v_citus;
    END IF;
    IF NOT v_citus THEN
        -- pending events, oldest first, skipping those another consumer holds
        RETURN QUERY
        WITH c AS (
            SELECT e.member_id, e.event_id FROM loyalty.events e
            WHERE e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
            ORDER BY e.created_at, e.event_id
            LIMIT v_want
            FOR UPDATE SKIP LOCKED
        )
        UPDATE loyalty.events e SET claimed_at = now(), claimed_by = v_by
        FROM c WHERE e.member_id = c.member_id AND e.event_id = c.event_id
        RETURNING e.*;
        RETURN;
    END IF;
    -- On Citus (loyalty.events distributed by member) a locking query cannot
    -- span shards: the oldest pending events are listed across the shards
    -- (no lock), then claimed member by member, each a statement on one shard
    -- that locks its rows with SKIP LOCKED and re-checks that they are still
    -- pending; events another consumer holds or has just claimed are skipped,
    -- and the listing goes on after the last one listed until enough are
    -- claimed or none are left.
    WHILE v_got < v_want LOOP
        v_asked := v_want - v_got;
        SELECT pg_catalog.array_agg(c.member_id ORDER BY c.created_at, c.event_id),
               pg_catalog.array_agg(c.event_id ORDER BY c.created_at, c.event_id),
               pg_catalog.max(c.created_at), pg_catalog.count(*)
        INTO v_members, v_events, v_last_at, v_found
        FROM (SELECT e.member_id, e.event_id, e.created_at FROM loyalty.events e
              WHERE e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
                AND (v_last_at IS NULL OR (e.created_at, e.event_id) > (v_last_at, v_last_id))
              ORDER BY e.created_at, e.event_id
              LIMIT v_asked) c;
        EXIT WHEN v_found = 0;
        v_last_id := v_events[v_found];     -- the last listed: the newest (created_at is max(...))
        FOR v_member, v_ids IN
            SELECT u.m, pg_catalog.array_agg(u.e) FROM unnest(v_members, v_events) u(m, e) GROUP BY u.m
        LOOP
            RETURN QUERY
            WITH c AS (
                SELECT e.member_id, e.event_id FROM loyalty.events e
                WHERE e.member_id = v_member AND e.event_id = ANY (v_ids)
                  AND e.acked_at IS NULL AND (e.claimed_at IS NULL OR e.claimed_at < v_before)
                FOR UPDATE SKIP LOCKED
            )
            UPDATE loyalty.events e SET claimed_at = now(), claimed_by = v_by
            FROM c WHERE e.member_id = v_member AND e.member_id = c.member_id AND e.event_id = c.event_id
            RETURNING e.*;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_got := v_got + v_n;
        END LOOP;
        EXIT WHEN v_found < v_asked;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.claim_events(integer, text, interval) IS
    'Claim up to max_events pending events, oldest first, skipping those other consumers hold; unacknowledged claims come back after the visibility interval';


CREATE OR REPLACE FUNCTION loyalty.ack_events(event_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    -- PL/pgSQL, not SQL: Citus cannot plan an SQL function's parameterised
    -- statement on a distributed table
    UPDATE loyalty.events e SET acked_at = now()
    WHERE e.event_id = ANY (ack_events.event_ids) AND e.acked_at IS NULL;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.ack_events(bigint[]) IS
    'Acknowledge processed events (by id); returns how many were newly acknowledged; acknowledging twice is harmless';


-- kpi_summary: points pending by a join instead of a correlated subquery.

CREATE OR REPLACE VIEW loyalty.kpi_summary AS
SELECT p.program_id, p.name AS program, p.currency,
       count(a.member_id)::bigint AS members,
       count(a.member_id) FILTER (WHERE a.last_purchase_at > now() - interval '90 days')::bigint AS active_members_90d,
       CASE WHEN count(a.member_id) FILTER (WHERE a.purchase_count > 0) > 0
            THEN round(count(a.member_id) FILTER (WHERE a.purchase_count > 1) * 1.0
                       / count(a.member_id) FILTER (WHERE a.purchase_count > 0), 4) END AS repeat_purchase_rate,
       CASE WHEN sum(a.purchase_count) > 0 THEN round(sum(a.purchase_amount) / sum(a.purchase_count), 2) END AS avg_order_value,
       coalesce(sum(a.balance::bigint), 0)::bigint AS points_outstanding,
       coalesce(sum(a.held::bigint), 0)::bigint AS points_held,
       coalesce(max(pp.pending), 0)::bigint AS points_pending,
       coalesce(sum(a.lifetime_earned::bigint), 0)::bigint AS points_issued,
       coalesce(sum(a.lifetime_redeemed::bigint), 0)::bigint AS points_redeemed,
       coalesce(sum(a.lifetime_expired::bigint), 0)::bigint AS points_expired,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_redeemed::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS redemption_rate,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_expired::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS breakage,
       round(coalesce(sum(a.balance::bigint + a.held::bigint), 0) * p.point_value, 2) AS liability
FROM loyalty.programs p LEFT JOIN loyalty.accounts a ON a.program_id = p.program_id AND a.status <> 'closed'
-- points still vesting, per program (a join, not a subquery per program: Citus
-- cannot plan a correlated subquery beside the programs reference table)
LEFT JOIN (SELECT x.program_id, sum(l.remaining::bigint) AS pending
           FROM loyalty.lots l JOIN loyalty.accounts x ON x.member_id = l.member_id
           WHERE l.is_open AND l.vests_at > now() GROUP BY x.program_id) pp ON pp.program_id = p.program_id
WHERE loyalty.program_visible(p.program_id)
GROUP BY p.program_id;

-- review_tiers_batch() (and so review_tiers() and review_member_tier()): on
-- Citus the batch is listed without a lock and reviewed member by member with
-- single-shard statements (a locking query cannot span shards); the same
-- decision rules; unchanged without Citus.

CREATE OR REPLACE FUNCTION loyalty.review_tiers_batch(program bigint, as_of timestamptz, after_member bigint, batch_size integer)
RETURNS TABLE (last_member bigint, reviewed bigint, changed bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_p loyalty.programs;
    v_as_of timestamptz := coalesce(as_of, now());
    v_last bigint;
    v_n bigint;
    v_c bigint := 0;
    v_ids bigint[];
    r2 bigint;
    r bigint;
    v_citus boolean := false;
    v_member bigint;
    v_tier loyalty.tier;
    v_status text;
    v_locked timestamptz;
    v_grace timestamptz;
    v_value numeric;
    v_cur integer;
    v_q integer;
    v_new integer;
    v_to loyalty.tier;
    v_action text;
BEGIN
    PERFORM loyalty.require_program(review_tiers_batch.program);
    SELECT * INTO v_p FROM loyalty.programs p WHERE p.program_id = program;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    IF v_p.tier_metric IS NULL THEN
        RAISE EXCEPTION 'program % has no tiers', program USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set one with loyalty.set_tier_policy() and loyalty.define_tier().';
    END IF;

    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
                                WHERE d.logicalrelid OPERATOR(pg_catalog.=) ''loyalty.accounts''::pg_catalog.regclass)'
            INTO v_citus;
    END IF;
    IF v_citus THEN
        -- On Citus (accounts distributed by member) a locking query cannot
        -- span shards: the batch's members are listed across the shards (no
        -- lock), then reviewed one by one in member_id order, each with
        -- statements filtered by that member (one shard): lock the account,
        -- then the metric (read after the lock, as below), the same decision
        -- rules as the set-based statement, and loyalty.tier_change() for a
        -- change (history and tier.changed event).
        SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}') INTO v_ids
        FROM (SELECT a.member_id FROM loyalty.accounts a
              WHERE a.program_id = program AND a.member_id > after_member
              ORDER BY a.member_id LIMIT batch_size) x;
        v_n := cardinality(v_ids);
        v_last := v_ids[v_n];
        FOREACH v_member IN ARRAY v_ids LOOP
            SELECT a.tier, a.status, a.tier_locked_until, a.tier_grace_until
            INTO v_tier, v_status, v_locked, v_grace
            FROM loyalty.accounts a WHERE a.member_id = v_member AND a.program_id = program
            FOR NO KEY UPDATE;
            CONTINUE WHEN NOT FOUND;
            v_value := loyalty.tier_metric(v_member, v_as_of);
            v_cur := loyalty.tier_rank(v_tier);
            SELECT max(t.rank) INTO v_q FROM loyalty.tiers t
            WHERE t.program_id = program AND NOT t.invitation_only AND t.threshold <= v_value;
            v_new := NULL;
            v_action := 'none';
            -- the rules of the set-based statement below, in its order
            IF v_status = 'closed' THEN
                NULL;                                   -- closed members are left alone
            ELSIF v_q IS NOT NULL AND (v_cur IS NULL OR v_q > v_cur) THEN
                v_new := v_q; v_action := 'change';     -- qualified for more: up at once
            ELSIF v_cur IS NULL OR (v_q IS NOT NULL AND v_q >= v_cur) THEN
                IF v_grace IS NOT NULL THEN             -- qualified for the same: end any grace
                    v_action := 'clear_grace';
                END IF;
            ELSIF v_locked > v_as_of THEN
                NULL;                                   -- a manual or invitation lock holds
            ELSIF v_grace IS NULL AND v_p.tier_grace > interval '0' THEN
                v_action := 'start_grace';              -- grace starts
            ELSIF v_grace > v_as_of THEN
                NULL;                                   -- grace runs
            ELSE
                -- down: to the qualified tier, or one step (never below the qualified tier)
                v_action := 'change';
                IF v_p.tier_downgrade = 'to_qualified' THEN
                    v_new := v_q;
                ELSE
                    v_new := greatest(v_q, (SELECT max(t.rank) FROM loyalty.tiers t
                                            WHERE t.program_id = program AND NOT t.invitation_only AND t.rank < v_cur));
                END IF;
            END IF;
            IF v_action = 'start_grace' THEN
                UPDATE loyalty.accounts a SET tier_grace_until = v_as_of + v_p.tier_grace WHERE a.member_id = v_member;
            ELSIF v_action = 'clear_grace' THEN
                UPDATE loyalty.accounts a SET tier_grace_until = NULL WHERE a.member_id = v_member;
            ELSIF v_action = 'change' AND v_new IS DISTINCT FROM v_cur THEN
                SELECT loyalty.tier(t.rank, t.name) INTO v_to FROM loyalty.tiers t
                WHERE t.program_id = program AND t.rank = v_new;
                IF loyalty.tier_change(v_member, v_to,
                                       CASE WHEN v_new > coalesce(v_cur, -1) THEN 'qualified (review)'
                                            ELSE 'review: below the threshold' END) THEN
                    v_c := v_c + 1;
                END IF;
            END IF;
        END LOOP;
        RETURN QUERY SELECT v_last, v_n, v_c;
        RETURN;
    END IF;

    -- Lock the batch first, in its own statement: the next statement then
    -- reads with a snapshot taken after the locks were granted, so it sees
    -- what a concurrent earn committed while the review waited for it.  (No
    -- temporary table: a caller's own pg_temp table of the same name would
    -- be used by this SECURITY DEFINER function.)
    SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}') INTO v_ids
    FROM (SELECT a.member_id FROM loyalty.accounts a
          WHERE a.program_id = program AND a.member_id > after_member
          ORDER BY a.member_id LIMIT batch_size
          FOR NO KEY UPDATE OF a) x;
    v_n := cardinality(v_ids);
    v_last := v_ids[v_n];

    -- one statement: metrics, decisions, grace updates, tier changes,
    -- history and tier.changed events of the whole batch
    WITH batch AS (
        SELECT a.member_id, a.tier, a.status, a.tier_locked_until, a.tier_grace_until
        FROM loyalty.accounts a WHERE a.member_id = ANY (v_ids)
    ), win AS (
        SELECT b.*, CASE v_p.tier_window
            WHEN 'rolling' THEN v_as_of - make_interval(months => v_p.tier_window_months)
            WHEN 'calendar' THEN
                ((date_trunc('year', v_as_of AT TIME ZONE v_p.time_zone)
                  + make_interval(months => ((extract(month FROM v_as_of AT TIME ZONE v_p.time_zone)::integer - 1)
                                              / v_p.tier_window_months) * v_p.tier_window_months))
                 AT TIME ZONE v_p.time_zone)
            ELSE m.joined_at + make_interval(months => v_p.tier_window_months
                    * floor((extract(year FROM age(v_as_of, m.joined_at)) * 12 + extract(month FROM age(v_as_of, m.joined_at)))
                            / v_p.tier_window_months)::integer)
            END AS start
        FROM batch b JOIN loyalty.members m ON m.member_id = b.member_id
    ), e AS (
        SELECT w.member_id, l.occurred_at,
               coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM win w
        JOIN loyalty.ledger l ON l.member_id = w.member_id AND l.kind = 'earn' AND l.occurred_at <= v_as_of
             AND (l.occurred_at > w.start OR (v_p.tier_window <> 'rolling' AND l.occurred_at = w.start))
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
    ), met AS (
        SELECT w.member_id, CASE v_p.tier_metric
            WHEN 'spend' THEN coalesce(sum(e.spend), 0)
            WHEN 'points' THEN coalesce(sum(e.points), 0)
            ELSE count(DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date) FILTER (WHERE e.spend > 0)
            END AS value
        FROM win w LEFT JOIN e ON e.member_id = w.member_id
        GROUP BY w.member_id
    ), d AS (
        SELECT b.member_id, b.status, b.tier_locked_until, b.tier_grace_until,
               loyalty.tier_rank(b.tier) AS cur,
               (SELECT max(t.rank) FROM loyalty.tiers t
                WHERE t.program_id = program AND NOT t.invitation_only AND t.threshold <= met.value) AS q
        FROM batch b JOIN met ON met.member_id = b.member_id
    )
    , res AS (
    SELECT d.member_id, d.cur, d.q, x.new_rank, x.grace_until, x.action
    FROM d, LATERAL (
        SELECT * FROM (VALUES
            -- closed members are left alone
            (d.status = 'closed', NULL::integer, NULL::timestamptz, 'none'),
            -- qualified for more: up at once; for the same: end any grace
            (d.q IS NOT NULL AND (d.cur IS NULL OR d.q > d.cur), d.q, NULL, 'change'),
            (d.cur IS NULL OR (d.q IS NOT NULL AND d.q >= d.cur),
                NULL, NULL, CASE WHEN d.tier_grace_until IS NOT NULL THEN 'clear_grace' ELSE 'none' END),
            -- below: a manual or invitation lock holds
            (d.tier_locked_until > v_as_of, NULL, NULL, 'none'),
            -- grace starts, or runs
            (d.tier_grace_until IS NULL AND v_p.tier_grace > interval '0', NULL, v_as_of + v_p.tier_grace, 'start_grace'),
            (d.tier_grace_until > v_as_of, NULL, NULL, 'none'),
            -- down: to the qualified tier, or one step (never below the qualified tier)
            (true,
                CASE WHEN v_p.tier_downgrade = 'to_qualified' THEN d.q
                     ELSE greatest(d.q, (SELECT max(t.rank) FROM loyalty.tiers t
                                         WHERE t.program_id = program AND NOT t.invitation_only AND t.rank < d.cur)) END,
                NULL, 'change')
        ) AS v(cond, new_rank, grace_until, action)
        WHERE v.cond LIMIT 1
    ) x
    )
    , gr AS (
        UPDATE loyalty.accounts a SET tier_grace_until = res.grace_until
        FROM res WHERE a.member_id = res.member_id AND res.action IN ('start_grace', 'clear_grace')
        RETURNING a.member_id
    ), ch AS (
        SELECT res.member_id, b.tier AS from_tier,
               (SELECT loyalty.tier(x.rank, x.name) FROM loyalty.tiers x
                WHERE x.program_id = program AND x.rank = res.new_rank) AS to_tier,
               CASE WHEN res.new_rank > coalesce(res.cur, -1) THEN 'qualified (review)'
                    ELSE 'review: below the threshold' END AS reason
        FROM res JOIN batch b ON b.member_id = res.member_id
        WHERE res.action = 'change' AND res.new_rank IS DISTINCT FROM res.cur
    ), up AS (
        UPDATE loyalty.accounts a SET tier = ch.to_tier, tier_since = now(), tier_locked_until = NULL,
            tier_grace_until = NULL, updated_at = now()
        FROM ch WHERE a.member_id = ch.member_id
        RETURNING a.member_id
    ), hist AS (
        INSERT INTO loyalty.tier_history (member_id, from_tier, to_tier, reason)
        SELECT ch.member_id, ch.from_tier, ch.to_tier, ch.reason FROM ch
    ), ev AS (
        INSERT INTO loyalty.events (member_id, program_id, kind, payload)
        SELECT ch.member_id, program, 'tier.changed',
               jsonb_build_object('from', ch.from_tier::text, 'to', ch.to_tier::text, 'reason', ch.reason)
        FROM ch WHERE 'tier.changed' = ANY (v_p.event_kinds)
        RETURNING event_id, member_id
    )
    SELECT (SELECT count(*) FROM up),
           (SELECT count(pg_notify('loyalty_events',
                jsonb_build_object('event_id', ev.event_id, 'member_id', ev.member_id, 'kind', 'tier.changed')::text))
            FROM ev),
           (SELECT count(*) FROM gr)
    INTO v_c, r, r2;
    RETURN QUERY SELECT v_last, v_n, v_c;
END $$;
COMMENT ON FUNCTION loyalty.review_tiers_batch(bigint, timestamptz, bigint, integer) IS
    'One step of loyalty.review_tiers: review up to batch_size members of a program after a member id, set-based (on Citus member by member, same rules)';

-- == partitioning (issue 8) ====================================================
-- ledger_restore_indexes(): serialise the sessions of a parallel restore
-- (pg_restore -j), which could each create the same parent index.
CREATE OR REPLACE FUNCTION loyalty.ledger_restore_indexes()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_ddl record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        RETURN;                 -- see loyalty.ledger_restore_convert()
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.ledger_pending_ddl) THEN
        RETURN;
    END IF;
    -- pg_restore -j attaches partition indexes from several sessions at once:
    -- the first runs the pending statements, the others wait here and then
    -- find them done (each ALTER INDEX commits on its own)
    LOCK TABLE loyalty.ledger_pending_ddl IN SHARE ROW EXCLUSIVE MODE;
    FOR v_ddl IN SELECT d.seq, d.ddl FROM loyalty.ledger_pending_ddl d ORDER BY d.seq LOOP
        EXECUTE v_ddl.ddl;
        DELETE FROM loyalty.ledger_pending_ddl d WHERE d.seq = v_ddl.seq;
    END LOOP;
END $$;

-- The C write path keeps the program row of its last call in each backend
-- (src/direct.c); after any change of programs every backend drops it, at
-- commit.  ALWAYS: also under session_replication_role = replica (logical
-- replication's apply, some restores), or a changed rate could go unseen.
CREATE FUNCTION loyalty.programs_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'loyalty_programs_changed' LANGUAGE C SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.programs_changed() IS
    'Trigger: makes every session re-read changed program rows after the change commits';
REVOKE ALL ON FUNCTION loyalty.programs_changed() FROM PUBLIC;
CREATE TRIGGER programs_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.programs
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.programs_changed();
ALTER TABLE loyalty.programs ENABLE ALWAYS TRIGGER programs_changed;
