CREATE FUNCTION loyalty.refresh_rollups_batch(max_entries bigint DEFAULT NULL, new_mark boolean DEFAULT true)
RETURNS TABLE (entries bigint, members bigint, as_of timestamptz, done boolean)
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER: the rollups are written by the extension's owner only
-- (no role may write them), for whoever may run the refresh; search_path pinned
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- each statement runs once per batch over estimates far above its work: JIT
-- compiling the account rollups' statement took longer than running it
SET jit = off
AS $$
DECLARE
    s loyalty.rollup_state;
    v_upto bigint;
    v_entries bigint := 0;
    v_members bigint := 0;
BEGIN
    IF max_entries IS NOT NULL AND max_entries OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'max_entries must be at least 1, or NULL for no limit' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF new_mark IS NULL THEN
        RAISE EXCEPTION 'new_mark must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- on Citus each node draws ledger ids from its own range of the sequence
    -- and runs its own transactions: no mark taken here bounds them
    IF loyalty.books_distributed() THEN
        RAISE EXCEPTION 'the rollups cannot be refreshed on a Citus cluster'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Each node draws ledger ids from its own range, so no watermark taken on the coordinator bounds them.',
                  HINT = 'Read the BI views without refreshing: they then compute from the ledger.';
    END IF;
    -- the rollups count every program: a role bound to some may not write them
    IF EXISTS (SELECT FROM loyalty.programs p WHERE NOT loyalty.program_visible(p.program_id)) THEN
        RAISE EXCEPTION 'the rollups can only be refreshed by a role that sees every program'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Run loyalty.refresh_rollups() as the extension owner or a role bound to no program.';
    END IF;
    IF (SELECT q.seqcache FROM pg_catalog.pg_sequence q
        WHERE q.seqrelid OPERATOR(pg_catalog.=) pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id')::regclass)
       OPERATOR(pg_catalog.>) 1 THEN
        RAISE EXCEPTION 'the ledger''s entry_id sequence caches values'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'With a cache, a row may take an id lower than one the refresh has counted past.',
                  HINT = 'ALTER TABLE loyalty.ledger ALTER COLUMN entry_id SET CACHE 1.';
    END IF;

    -- one refresh at a time: a second waits here, then reads where the first
    -- left off
    INSERT INTO loyalty.rollup_state DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT * INTO STRICT s FROM loyalty.rollup_state FOR UPDATE;

    IF s.last_entry OPERATOR(pg_catalog.=) s.safe_entry_id AND s.last_member OPERATOR(pg_catalog.=) s.safe_member_id
       AND s.last_change OPERATOR(pg_catalog.=) s.safe_change_id THEN
        -- caught up: mark the sequences' positions now, then every transaction
        -- running now (which may hold an id below the mark, committed later);
        -- the rows up to the mark are final once those transactions end
        IF s.mark_at IS NULL AND new_mark THEN
            s.mark_entry_id := coalesce(pg_catalog.pg_sequence_last_value(
                pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id')::regclass), 0);
            s.mark_member_id := coalesce(pg_catalog.pg_sequence_last_value(
                pg_catalog.pg_get_serial_sequence('loyalty.members', 'member_id')::regclass), 0);
            s.mark_change_id := coalesce(pg_catalog.pg_sequence_last_value(
                pg_catalog.pg_get_serial_sequence('loyalty.account_changes', 'change_id')::regclass), 0);
            s.mark_at := pg_catalog.clock_timestamp();
            SELECT coalesce(pg_catalog.array_agg(k.virtualxid), '{}') INTO s.mark_vxids
            FROM pg_catalog.pg_locks k LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) k.pid
            WHERE k.locktype OPERATOR(pg_catalog.=) 'virtualxid' AND k.granted
              AND k.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
              -- (autovacuum and sessions of other databases write none of these
              -- rows, and a long one must not hold the rollups back)
              AND loyalty.rollup_may_write(a.datid, a.backend_type::text);
            s.mark_snapshot := pg_catalog.pg_current_snapshot();
        END IF;
        IF s.mark_at IS NOT NULL AND loyalty.rollup_mark_safe(s.mark_vxids, s.mark_snapshot, s.mark_at) THEN
            s.safe_entry_id := greatest(s.safe_entry_id, s.mark_entry_id);
            s.safe_member_id := greatest(s.safe_member_id, s.mark_member_id);
            s.safe_change_id := greatest(s.safe_change_id, coalesce(s.mark_change_id, 0));
            s.safe_at := s.mark_at;
            s.mark_entry_id := NULL; s.mark_member_id := NULL; s.mark_change_id := NULL; s.mark_at := NULL;
            s.mark_vxids := NULL; s.mark_snapshot := NULL;
        END IF;
    END IF;

    v_upto := CASE WHEN max_entries IS NULL OR s.safe_entry_id OPERATOR(pg_catalog.-) s.last_entry OPERATOR(pg_catalog.<=) max_entries
                   THEN s.safe_entry_id ELSE s.last_entry OPERATOR(pg_catalog.+) max_entries END;
    IF v_upto OPERATOR(pg_catalog.<) s.safe_entry_id
       AND NOT EXISTS (SELECT FROM loyalty.ledger l WHERE l.entry_id OPERATOR(pg_catalog.>) s.last_entry
                                                     AND l.entry_id OPERATOR(pg_catalog.<=) v_upto) THEN
        -- a gap of ids (writes rolled back, lot ids of merges): on to the next row
        v_upto := (SELECT min(l.entry_id) FROM loyalty.ledger l
                   WHERE l.entry_id OPERATOR(pg_catalog.>) s.last_entry AND l.entry_id OPERATOR(pg_catalog.<=) s.safe_entry_id);
        v_upto := CASE WHEN v_upto IS NULL THEN s.safe_entry_id
                       ELSE least(s.safe_entry_id, v_upto OPERATOR(pg_catalog.-) 1 OPERATOR(pg_catalog.+) max_entries) END;
    END IF;

    IF v_upto OPERATOR(pg_catalog.>) s.last_entry OR s.safe_member_id OPERATOR(pg_catalog.>) s.last_member
       OR s.safe_change_id OPERATOR(pg_catalog.>) s.last_change
       OR EXISTS (SELECT FROM loyalty.rollup_pools x JOIN loyalty.members m ON m.member_id OPERATOR(pg_catalog.=) x.member_id
                  WHERE m.status OPERATOR(pg_catalog.<>) 'pool') THEN
        IF pg_catalog.to_regclass('pg_temp.loyalty_rollup_changes') IS NULL THEN
            CREATE TEMP TABLE loyalty_rollup_changes OF loyalty.rollup_change ON COMMIT DROP;
        END IF;
        INSERT INTO loyalty_rollup_changes
        SELECT * FROM loyalty.rollup_changes(s.last_entry, v_upto, s.last_member, s.safe_member_id);
        -- (no autovacuum for temporary tables: without statistics the
        -- planner took a few rows for each and joined the two below in a
        -- nested loop, quadratic in the members of a large batch)
        ANALYZE loyalty_rollup_changes (target, id);

        INSERT INTO loyalty.rollup_days AS r (program_id, day, entries, purchases, revenue, points_issued,
                                              points_redeemed, points_expired, new_members)
        SELECT c.program_id, c.day, c.entries, c.purchases, c.revenue, c.points_issued, c.points_redeemed,
               c.points_expired, c.members
        FROM loyalty_rollup_changes c WHERE c.target OPERATOR(pg_catalog.=) 'day'
        ON CONFLICT (program_id, day) DO UPDATE
        SET entries = r.entries OPERATOR(pg_catalog.+) excluded.entries,
            purchases = r.purchases OPERATOR(pg_catalog.+) excluded.purchases,
            revenue = r.revenue OPERATOR(pg_catalog.+) excluded.revenue,
            points_issued = r.points_issued OPERATOR(pg_catalog.+) excluded.points_issued,
            points_redeemed = r.points_redeemed OPERATOR(pg_catalog.+) excluded.points_redeemed,
            points_expired = r.points_expired OPERATOR(pg_catalog.+) excluded.points_expired,
            new_members = r.new_members OPERATOR(pg_catalog.+) excluded.new_members;

        INSERT INTO loyalty.rollup_channels AS r (program_id, channel, purchases, members, revenue, points_issued)
        SELECT c.program_id, c.label, c.purchases, c.members, c.revenue, c.points_issued
        FROM loyalty_rollup_changes c WHERE c.target OPERATOR(pg_catalog.=) 'channel'
        ON CONFLICT (program_id, channel) DO UPDATE
        SET purchases = r.purchases OPERATOR(pg_catalog.+) excluded.purchases,
            members = r.members OPERATOR(pg_catalog.+) excluded.members,
            -- NULL while no purchase of the channel had an amount, as sum() is
            revenue = CASE WHEN r.revenue IS NULL THEN excluded.revenue WHEN excluded.revenue IS NULL THEN r.revenue
                           ELSE r.revenue OPERATOR(pg_catalog.+) excluded.revenue END,
            points_issued = r.points_issued OPERATOR(pg_catalog.+) excluded.points_issued;

        INSERT INTO loyalty.rollup_cohorts AS r (program_id, cohort_month, month, members)
        SELECT c.program_id, c.day, c.month, c.members
        FROM loyalty_rollup_changes c WHERE c.target OPERATOR(pg_catalog.=) 'cohort'
        ON CONFLICT (program_id, cohort_month, month) DO UPDATE SET members = r.members OPERATOR(pg_catalog.+) excluded.members;
        DELETE FROM loyalty.rollup_cohorts r WHERE r.members OPERATOR(pg_catalog.=) 0;

        INSERT INTO loyalty.rollup_point_months AS r (program_id, month, points_redeemed, points_expired)
        SELECT c.program_id, c.day, coalesce(c.points_redeemed, 0), coalesce(c.points_expired, 0)
        FROM loyalty_rollup_changes c WHERE c.target OPERATOR(pg_catalog.=) 'points'
        ON CONFLICT (program_id, month) DO UPDATE
        SET points_redeemed = r.points_redeemed OPERATOR(pg_catalog.+) excluded.points_redeemed,
            points_expired = r.points_expired OPERATOR(pg_catalog.+) excluded.points_expired;

        INSERT INTO loyalty.rollup_returns AS r (entry_id, month, program_id, kind, returned)
        SELECT c.id, c.day, c.program_id, c.label, c.points_redeemed
        FROM loyalty_rollup_changes c WHERE c.target OPERATOR(pg_catalog.=) 'return'
        ON CONFLICT (entry_id, month) DO UPDATE SET returned = excluded.returned;

        INSERT INTO loyalty.rollup_pools (member_id, program_id)
        SELECT c.id, c.program_id FROM loyalty_rollup_changes c WHERE c.target OPERATOR(pg_catalog.=) 'pool';
        DELETE FROM loyalty.rollup_pools x
        WHERE x.member_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.id FROM loyalty_rollup_changes c
                                                            WHERE c.target OPERATOR(pg_catalog.=) 'unpool'));

        SELECT coalesce(sum(c.entries), 0), coalesce(sum(c.members), 0) INTO v_entries, v_members
        FROM loyalty_rollup_changes c WHERE c.target OPERATOR(pg_catalog.=) 'day';
        -- (the buyers' rows are stored with their accounts, below)

        -- the accounts of the members those rows (and account_changes) name:
        -- read once, then what they add to the sums (new less counted) and
        -- what is counted of them from now on
        IF pg_catalog.to_regclass('pg_temp.loyalty_rollup_account_changes') IS NULL THEN
            CREATE TEMP TABLE loyalty_rollup_account_changes OF loyalty.rollup_account_change ON COMMIT DROP;
        END IF;
        INSERT INTO loyalty_rollup_account_changes
        SELECT * FROM loyalty.rollup_account_changes(s.last_entry, v_upto, s.last_member, s.safe_member_id,
                                                     s.last_change, s.safe_change_id);
        ANALYZE loyalty_rollup_account_changes (target, member_id);

        INSERT INTO loyalty.rollup_account_sums AS r (program_id, tier, pool, accounts, buyers, repeat_buyers, purchases,
                                                      revenue, balance, held, issued, redeemed, expired)
        SELECT c.program_id, c.tier, c.pool, c.accounts, coalesce(c.buyers, 0), coalesce(c.repeat_buyers, 0), c.purchases,
               c.revenue, c.balance, c.held, c.issued, c.redeemed, c.expired
        FROM loyalty_rollup_account_changes c WHERE c.target OPERATOR(pg_catalog.=) 'sums'
          AND (c.accounts, coalesce(c.buyers, 0), coalesce(c.repeat_buyers, 0), c.purchases, c.revenue, c.balance,
               c.held, c.issued, c.redeemed, c.expired)
              OPERATOR(pg_catalog.<>) (0::bigint, 0::bigint, 0::bigint, 0::numeric, 0::numeric, 0::numeric,
                                       0::numeric, 0::numeric, 0::numeric, 0::numeric)
        ON CONFLICT (program_id, tier, pool) DO UPDATE
        SET accounts = r.accounts OPERATOR(pg_catalog.+) excluded.accounts,
            buyers = r.buyers OPERATOR(pg_catalog.+) excluded.buyers,
            repeat_buyers = r.repeat_buyers OPERATOR(pg_catalog.+) excluded.repeat_buyers,
            purchases = r.purchases OPERATOR(pg_catalog.+) excluded.purchases,
            revenue = r.revenue OPERATOR(pg_catalog.+) excluded.revenue,
            balance = r.balance OPERATOR(pg_catalog.+) excluded.balance,
            held = r.held OPERATOR(pg_catalog.+) excluded.held,
            issued = r.issued OPERATOR(pg_catalog.+) excluded.issued,
            redeemed = r.redeemed OPERATOR(pg_catalog.+) excluded.redeemed,
            expired = r.expired OPERATOR(pg_catalog.+) excluded.expired;
        -- (no account left: every sum of the row is 0 too)
        DELETE FROM loyalty.rollup_account_sums r WHERE r.accounts OPERATOR(pg_catalog.=) 0;

        INSERT INTO loyalty.rollup_account_days AS r (program_id, day, active_members, pending_points)
        SELECT c.program_id, c.day, c.active, c.pending
        FROM loyalty_rollup_account_changes c WHERE c.target OPERATOR(pg_catalog.=) 'day'
        ON CONFLICT (program_id, day) DO UPDATE
        SET active_members = r.active_members OPERATOR(pg_catalog.+) excluded.active_members,
            pending_points = r.pending_points OPERATOR(pg_catalog.+) excluded.pending_points;

        INSERT INTO loyalty.rollup_rfm_counts AS r (program_id, measure, bucket, members)
        SELECT c.program_id, c.measure, c.bucket, c.accounts
        FROM loyalty_rollup_account_changes c WHERE c.target OPERATOR(pg_catalog.=) 'rfm'
        ON CONFLICT (program_id, measure, bucket) DO UPDATE SET members = r.members OPERATOR(pg_catalog.+) excluded.members;
        DELETE FROM loyalty.rollup_rfm_counts r
        WHERE r.members OPERATOR(pg_catalog.=) 0
          AND (r.program_id, r.measure, r.bucket) IN (SELECT c.program_id, c.measure, c.bucket
                                                      FROM loyalty_rollup_account_changes c
                                                      WHERE c.target OPERATOR(pg_catalog.=) 'rfm');

        INSERT INTO loyalty.rollup_member_mix AS r (program_id, source_channel, region, members, buyers)
        SELECT c.program_id, c.source_channel, c.region, c.accounts, c.buyers
        FROM loyalty_rollup_account_changes c WHERE c.target OPERATOR(pg_catalog.=) 'mix'
        ON CONFLICT (program_id, source_channel, region) DO UPDATE
        SET members = r.members OPERATOR(pg_catalog.+) excluded.members,
            buyers = r.buyers OPERATOR(pg_catalog.+) excluded.buyers;
        -- (no member left: no buyer either)
        DELETE FROM loyalty.rollup_member_mix r
        WHERE r.members OPERATOR(pg_catalog.=) 0
          AND (r.program_id, r.source_channel, r.region) IN (SELECT c.program_id, c.source_channel, c.region
                                                             FROM loyalty_rollup_account_changes c
                                                             WHERE c.target OPERATOR(pg_catalog.=) 'mix');

        -- each changed account, with its months and channels if they grew (a
        -- buyer has a purchase in the batch, so rollup_account_changes() read
        -- its account: every buyer row finds its account row)
        INSERT INTO loyalty.rollup_accounts AS r (member_id, program_id, status, tier, balance, held, earned, redeemed,
                                                  expired, purchase_count, purchase_amount, last_purchase_at, months,
                                                  channels, source_channel, region)
        SELECT c.member_id, c.program_id, c.status, NULLIF(c.tier, '')::loyalty.tier, c.balance, c.held,
               c.issued, c.redeemed, c.expired, c.purchases, c.revenue, c.at, b.months, b.channels, c.source_channel,
               c.region
        FROM loyalty_rollup_account_changes c
        LEFT JOIN loyalty_rollup_changes b
          ON b.target OPERATOR(pg_catalog.=) 'buyer' AND b.id OPERATOR(pg_catalog.=) c.member_id
        WHERE c.target OPERATOR(pg_catalog.=) 'account'
        ON CONFLICT (member_id) DO UPDATE
        SET status = excluded.status, tier = excluded.tier, balance = excluded.balance, held = excluded.held,
            earned = excluded.earned, redeemed = excluded.redeemed, expired = excluded.expired,
            purchase_count = excluded.purchase_count, purchase_amount = excluded.purchase_amount,
            last_purchase_at = excluded.last_purchase_at, months = coalesce(excluded.months, r.months),
            channels = coalesce(excluded.channels, r.channels), source_channel = excluded.source_channel,
            region = excluded.region
        WHERE (r.status, r.tier::text, r.balance, r.held, r.earned, r.redeemed, r.expired, r.purchase_count,
               r.purchase_amount, r.last_purchase_at, r.source_channel, r.region)
              IS DISTINCT FROM
              (excluded.status, excluded.tier::text, excluded.balance, excluded.held, excluded.earned, excluded.redeemed,
               excluded.expired, excluded.purchase_count, excluded.purchase_amount, excluded.last_purchase_at,
               excluded.source_channel, excluded.region)
           OR excluded.months IS NOT NULL;
        TRUNCATE loyalty_rollup_changes;

        DELETE FROM loyalty.rollup_vesting v
        WHERE v.member_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.member_id FROM loyalty_rollup_account_changes c
                                                            WHERE c.target OPERATOR(pg_catalog.=) 'account'));
        INSERT INTO loyalty.rollup_vesting (member_id, vests_at, program_id, points)
        SELECT c.member_id, c.at, c.program_id, c.pending
        FROM loyalty_rollup_account_changes c WHERE c.target OPERATOR(pg_catalog.=) 'vest';

        -- points vested by this transaction's start are pending for no reader
        -- that began since (rollup_account_changes counted those after the
        -- same bound; an older reader computes them from the lots)
        WITH gone AS (
            DELETE FROM loyalty.rollup_vesting v
            WHERE v.vests_at OPERATOR(pg_catalog.<=) pg_catalog.now()
            RETURNING v.program_id, (v.vests_at AT TIME ZONE 'UTC')::date AS day, v.points
        )
        INSERT INTO loyalty.rollup_account_days AS r (program_id, day, pending_points)
        SELECT g.program_id, g.day, -sum(g.points) FROM gone g GROUP BY 1, 2
        ON CONFLICT (program_id, day) DO UPDATE
        SET pending_points = r.pending_points OPERATOR(pg_catalog.+) excluded.pending_points;
        DELETE FROM loyalty.rollup_account_days r
        WHERE r.active_members OPERATOR(pg_catalog.=) 0 AND r.pending_points OPERATOR(pg_catalog.=) 0;
        s.vesting_from := greatest(s.vesting_from, pg_catalog.now());

        -- the account changes counted are no longer needed
        DELETE FROM loyalty.account_changes x WHERE x.change_id OPERATOR(pg_catalog.<=) s.safe_change_id;
        TRUNCATE loyalty_rollup_account_changes;

        s.last_entry := v_upto;
        s.last_member := s.safe_member_id;
        s.last_change := s.safe_change_id;
        s.refreshed_at := pg_catalog.now();
    END IF;
    IF s.last_entry OPERATOR(pg_catalog.=) s.safe_entry_id AND s.last_change OPERATOR(pg_catalog.=) s.safe_change_id THEN
        s.as_of := s.safe_at;
    END IF;
    UPDATE loyalty.rollup_state x
    SET last_entry = s.last_entry, last_member = s.last_member, as_of = s.as_of, refreshed_at = s.refreshed_at,
        safe_entry_id = s.safe_entry_id, safe_member_id = s.safe_member_id, safe_at = s.safe_at,
        mark_entry_id = s.mark_entry_id, mark_member_id = s.mark_member_id, mark_at = s.mark_at,
        mark_vxids = s.mark_vxids, mark_snapshot = s.mark_snapshot, last_change = s.last_change,
        safe_change_id = s.safe_change_id, mark_change_id = s.mark_change_id, vesting_from = s.vesting_from
    WHERE x.singleton
      AND (x.last_entry, x.last_member, x.as_of, x.refreshed_at, x.safe_entry_id, x.safe_member_id, x.safe_at,
           x.mark_entry_id, x.mark_member_id, x.mark_at, x.mark_vxids, x.mark_snapshot::text, x.last_change,
           x.safe_change_id, x.mark_change_id, x.vesting_from)
          IS DISTINCT FROM
          (s.last_entry, s.last_member, s.as_of, s.refreshed_at, s.safe_entry_id, s.safe_member_id, s.safe_at,
           s.mark_entry_id, s.mark_member_id, s.mark_at, s.mark_vxids, s.mark_snapshot::text, s.last_change,
           s.safe_change_id, s.mark_change_id, s.vesting_from);

    entries := v_entries;
    members := v_members;
    as_of := s.as_of;
    done := s.last_entry OPERATOR(pg_catalog.=) s.safe_entry_id AND s.last_member OPERATOR(pg_catalog.=) s.safe_member_id
            AND s.last_change OPERATOR(pg_catalog.=) s.safe_change_id AND s.mark_at IS NULL;
    RETURN NEXT;
END $$;
