CREATE FUNCTION loyalty.rollup_changes(
    after_entry  bigint DEFAULT NULL, upto_entry  bigint DEFAULT NULL,
    after_member bigint DEFAULT NULL, upto_member bigint DEFAULT NULL)
RETURNS SETOF loyalty.rollup_change
LANGUAGE plpgsql STABLE
-- SECURITY DEFINER: the BI views call it for their readers, who may not read
-- the ledger; it returns only the programs the calling role may see
-- (program_visible), and its search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_after_entry  bigint := after_entry;
    v_after_member bigint := after_member;
BEGIN
    IF v_after_entry IS NULL OR v_after_member IS NULL THEN
        -- the rows the rollups do not count yet (no state row: none counted)
        SELECT coalesce(max(s.last_entry), 0), coalesce(max(s.last_member), 0)
        INTO STRICT v_after_entry, v_after_member FROM loyalty.rollup_state s;
        v_after_entry := coalesce(after_entry, v_after_entry);
        v_after_member := coalesce(after_member, v_after_member);
    END IF;
    -- EXECUTE: planned with the bounds' values, so the ledger's tail is read
    -- through ledger_entry_id_brin and a first build scans the table
    RETURN QUERY EXECUTE $q$
    WITH p AS MATERIALIZED (
        -- the programs the role sees, each tested once (program_visible()
        -- pins its search_path: a call per ledger row cost a third of a
        -- refresh)
        SELECT p.program_id, p.time_zone FROM loyalty.programs p WHERE loyalty.program_visible(p.program_id)
    ), l AS MATERIALIZED (
        SELECT l.member_id, l.entry_id, l.program_id, l.kind, l.points::bigint AS points, l.amount,
               coalesce(l.channel, 'unknown') AS channel, l.source_entry,
               (l.occurred_at AT TIME ZONE p.time_zone)::date AS day
        FROM loyalty.ledger l JOIN p ON p.program_id OPERATOR(pg_catalog.=) l.program_id
        WHERE l.entry_id OPERATOR(pg_catalog.>) $1 AND l.entry_id OPERATOR(pg_catalog.<=) $2
          -- an archive's carry_forward entries stand for rows already counted
          AND l.kind OPERATOR(pg_catalog.<>) 'carry_forward'
    ), m AS MATERIALIZED (
        -- members who joined (pools are no members; a pool no longer one,
        -- e.g. closed, counts then, as in kpi_daily)
        SELECT m.member_id, m.program_id, m.status, (m.joined_at AT TIME ZONE p.time_zone)::date AS day,
               m.member_id OPERATOR(pg_catalog.<=) $4 AND m.member_id OPERATOR(pg_catalog.>) $3 AS is_new
        FROM loyalty.members m JOIN p ON p.program_id OPERATOR(pg_catalog.=) m.program_id
        WHERE ((m.member_id OPERATOR(pg_catalog.>) $3 AND m.member_id OPERATOR(pg_catalog.<=) $4)
               OR m.member_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT x.member_id FROM loyalty.rollup_pools x)))
    ), b AS (
        -- each buyer's months and channels in these rows, in any order and
        -- repeated (rollup_array_union sorts them: DISTINCT ... ORDER BY here
        -- sorted per buyer)
        SELECT l.member_id, l.program_id,
               pg_catalog.array_agg(pg_catalog.date_trunc('month', l.day::timestamp)::date) AS months,
               pg_catalog.array_agg(l.channel) AS channels
        FROM l WHERE l.kind OPERATOR(pg_catalog.=) 'earn' GROUP BY l.member_id, l.program_id
    ), bc AS MATERIALIZED (
        -- buyers whose months or channels grow: old and new state
        SELECT b.member_id, b.program_id, r.months AS old_months, r.channels AS old_channels,
               loyalty.rollup_array_union(r.months, b.months) AS months,
               loyalty.rollup_array_union(r.channels, b.channels) AS channels
        FROM b LEFT JOIN loyalty.rollup_accounts r ON r.member_id OPERATOR(pg_catalog.=) b.member_id
        WHERE r.months IS NULL
           OR NOT (b.months OPERATOR(pg_catalog.<@) r.months AND b.channels OPERATOR(pg_catalog.<@) r.channels)
    ), co AS (
        -- cohorts: a buyer whose first month moves leaves its old cohort
        -- (every month of it) and joins the new one; otherwise only its new
        -- months count
        SELECT bc.program_id, bc.old_months[1] AS cohort, x.month, -1 AS n
        FROM bc, pg_catalog.unnest(bc.old_months) x(month)
        WHERE bc.old_months[1] OPERATOR(pg_catalog.<>) bc.months[1]
        UNION ALL
        SELECT bc.program_id, bc.months[1], x.month, 1
        FROM bc, pg_catalog.unnest(bc.months) x(month)
        WHERE bc.old_months IS NULL OR bc.old_months[1] OPERATOR(pg_catalog.<>) bc.months[1]
           OR NOT x.month OPERATOR(pg_catalog.=) ANY (bc.old_months)
    ), ch AS (
        SELECT l.program_id, l.channel, count(*) AS purchases, 0 AS members, sum(l.amount) AS revenue,
               sum(l.points) AS points
        FROM l WHERE l.kind OPERATOR(pg_catalog.=) 'earn' GROUP BY 1, 2
        UNION ALL
        SELECT bc.program_id, x.channel, 0, 1, NULL, 0
        FROM bc, pg_catalog.unnest(bc.channels) x(channel)
        WHERE bc.old_channels IS NULL OR NOT x.channel OPERATOR(pg_catalog.=) ANY (bc.old_channels)
    ), deb AS (
        -- debits whose allocations count: new ones (their member and kind
        -- known), and older ones given back to (named by a new entry)
        SELECT l.member_id, l.entry_id, true AS is_new, l.kind FROM l
        WHERE l.kind OPERATOR(pg_catalog.=) ANY (ARRAY['redeem', 'hold', 'expire'])
        UNION ALL
        SELECT d.member_id, d.entry_id, false, d.kind
        FROM (SELECT DISTINCT l.source_entry FROM l WHERE l.source_entry IS NOT NULL) x
        JOIN loyalty.allocations a ON a.entry_id OPERATOR(pg_catalog.=) x.source_entry
        JOIN loyalty.ledger d ON d.member_id OPERATOR(pg_catalog.=) a.member_id AND d.entry_id OPERATOR(pg_catalog.=) a.entry_id
        WHERE d.kind OPERATOR(pg_catalog.=) ANY (ARRAY['redeem', 'hold', 'expire'])
          AND d.entry_id OPERATOR(pg_catalog.<=) $1
        GROUP BY d.member_id, d.entry_id, d.kind
    ), ret AS MATERIALIZED (
        -- per debit and month of the credit its lots came from: points taken
        -- and given back (as kpi_monthly's redemption rate and breakage)
        SELECT deb.entry_id, deb.is_new, cr.program_id, deb.kind,
               pg_catalog.date_trunc('month', cr.occurred_at AT TIME ZONE p.time_zone)::date AS month,
               sum(a.points::bigint) AS points, sum(a.returned::bigint) AS returned
        FROM deb
        JOIN loyalty.allocations a ON a.entry_id OPERATOR(pg_catalog.=) deb.entry_id AND a.member_id OPERATOR(pg_catalog.=) deb.member_id
        JOIN loyalty.lots t ON t.member_id OPERATOR(pg_catalog.=) a.member_id AND t.lot_id OPERATOR(pg_catalog.=) a.lot_id
        JOIN loyalty.ledger cr ON cr.member_id OPERATOR(pg_catalog.=) t.member_id AND cr.entry_id OPERATOR(pg_catalog.=) t.entry_id
        JOIN p ON p.program_id OPERATOR(pg_catalog.=) cr.program_id
        WHERE cr.kind OPERATOR(pg_catalog.=) ANY (ARRAY['earn', 'award', 'adjust'])
        GROUP BY 1, 2, 3, 4, 5
    ), rt AS (
        SELECT ret.*, coalesce(o.returned, 0) AS counted
        FROM ret LEFT JOIN loyalty.rollup_returns o
          ON o.entry_id OPERATOR(pg_catalog.=) ret.entry_id AND o.month OPERATOR(pg_catalog.=) ret.month
    )
    SELECT 'day', x.program_id, x.day, NULL::date, NULL::text, NULL::bigint,
           sum(x.entries)::bigint, sum(x.purchases)::bigint, sum(x.members)::bigint, sum(x.revenue),
           sum(x.issued), sum(x.redeemed), sum(x.expired), NULL::date[], NULL::text[]
    FROM (SELECT l.program_id, l.day, count(*) AS entries,
                 count(*) FILTER (WHERE l.kind OPERATOR(pg_catalog.=) 'earn') AS purchases, 0 AS members,
                 coalesce(sum(l.amount) FILTER (WHERE l.kind OPERATOR(pg_catalog.=) 'earn'), 0) AS revenue,
                 coalesce(sum(l.points) FILTER (WHERE l.kind OPERATOR(pg_catalog.=) ANY (ARRAY['earn', 'award'])
                                                   OR (l.kind OPERATOR(pg_catalog.=) 'adjust' AND l.points OPERATOR(pg_catalog.>) 0)), 0) AS issued,
                 coalesce(-sum(l.points) FILTER (WHERE l.kind OPERATOR(pg_catalog.=) ANY (ARRAY['redeem', 'hold'])), 0)
                   - coalesce(sum(l.points) FILTER (WHERE l.kind OPERATOR(pg_catalog.=) 'release'), 0) AS redeemed,
                 coalesce(-sum(l.points) FILTER (WHERE l.kind OPERATOR(pg_catalog.=) 'expire'), 0) AS expired
          FROM l GROUP BY 1, 2
          UNION ALL
          SELECT m.program_id, m.day, 0, 0, count(*), 0, 0, 0, 0
          FROM m WHERE m.status OPERATOR(pg_catalog.<>) 'pool' GROUP BY 1, 2) x
    GROUP BY x.program_id, x.day
    UNION ALL
    SELECT 'channel', ch.program_id, NULL, NULL, ch.channel, NULL,
           NULL, sum(ch.purchases)::bigint, sum(ch.members)::bigint, sum(ch.revenue), sum(ch.points), NULL, NULL, NULL, NULL
    FROM ch GROUP BY ch.program_id, ch.channel
    UNION ALL
    SELECT 'cohort', co.program_id, co.cohort, co.month, NULL, NULL,
           NULL, NULL, sum(co.n)::bigint, NULL, NULL, NULL, NULL, NULL, NULL
    FROM co GROUP BY co.program_id, co.cohort, co.month HAVING sum(co.n) OPERATOR(pg_catalog.<>) 0
    UNION ALL
    SELECT 'points', rt.program_id, rt.month, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           (sum(CASE WHEN rt.is_new THEN rt.points ELSE 0 END - (rt.returned - rt.counted))
               FILTER (WHERE rt.kind OPERATOR(pg_catalog.<>) 'expire')),
           (sum(CASE WHEN rt.is_new THEN rt.points ELSE 0 END - (rt.returned - rt.counted))
               FILTER (WHERE rt.kind OPERATOR(pg_catalog.=) 'expire')),
           NULL, NULL
    FROM rt GROUP BY rt.program_id, rt.month
    UNION ALL
    SELECT 'return', rt.program_id, rt.month, NULL, rt.kind, rt.entry_id, NULL, NULL, NULL, NULL, NULL, rt.returned, NULL, NULL, NULL
    FROM rt WHERE rt.returned OPERATOR(pg_catalog.<>) rt.counted
    UNION ALL
    SELECT 'buyer', bc.program_id, NULL, NULL, NULL, bc.member_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, bc.months, bc.channels
    FROM bc
    UNION ALL
    -- pools: new ones to watch, watched ones that are members now
    SELECT CASE WHEN m.status OPERATOR(pg_catalog.=) 'pool' THEN 'pool' ELSE 'unpool' END, m.program_id,
           NULL, NULL, NULL, m.member_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM m WHERE m.status OPERATOR(pg_catalog.=) 'pool' AND m.is_new
              OR m.status OPERATOR(pg_catalog.<>) 'pool' AND NOT m.is_new
    $q$ USING v_after_entry, coalesce(upto_entry, 9223372036854775807), v_after_member, coalesce(upto_member, 9223372036854775807);
END $$;
