CREATE FUNCTION loyalty.rollup_account_changes(
    after_entry  bigint DEFAULT NULL, upto_entry  bigint DEFAULT NULL,
    after_member bigint DEFAULT NULL, upto_member bigint DEFAULT NULL,
    after_change bigint DEFAULT NULL, upto_change bigint DEFAULT NULL)
RETURNS SETOF loyalty.rollup_account_change
LANGUAGE plpgsql STABLE
-- SECURITY DEFINER: the BI views call it for their readers, who may not read
-- the accounts; it returns only the programs the calling role may see
-- (program_visible), and its search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s loyalty.rollup_state;
    v_view boolean := upto_entry IS NULL;
    v_all boolean;
BEGIN
    SELECT * INTO s FROM loyalty.rollup_state;
    IF v_view AND NOT FOUND THEN
        -- never refreshed (as on Citus, where the refresh is refused): the
        -- rollups are empty and everything is computed from the accounts,
        -- one plain aggregate per statement
        RETURN QUERY
        SELECT 'sums'::text, a.program_id, NULL::bigint, coalesce(a.tier::text, ''),
               a.status OPERATOR(pg_catalog.=) 'pool', NULL::text, NULL::date, NULL::timestamptz,
               count(*)::bigint,
               count(*) FILTER (WHERE a.purchase_count OPERATOR(pg_catalog.>) 0)::bigint,
               count(*) FILTER (WHERE a.purchase_count OPERATOR(pg_catalog.>) 1)::bigint,
               sum(a.purchase_count)::numeric, sum(a.purchase_amount),
               sum(a.balance::bigint)::numeric, sum(a.held::bigint)::numeric, sum(a.lifetime_earned::bigint)::numeric,
               sum(a.lifetime_redeemed::bigint)::numeric, sum(a.lifetime_expired::bigint)::numeric,
               NULL::bigint, NULL::numeric, NULL::text, NULL::bigint, NULL::text, NULL::text
        FROM loyalty.accounts a
        WHERE a.status OPERATOR(pg_catalog.<>) 'closed' AND loyalty.program_visible(a.program_id)
        GROUP BY a.program_id, a.tier, a.status OPERATOR(pg_catalog.=) 'pool';
        RETURN QUERY
        SELECT 'mix'::text, a.program_id, NULL::bigint, NULL::text, NULL::boolean, NULL::text, NULL::date,
               NULL::timestamptz, count(*)::bigint,
               count(*) FILTER (WHERE a.purchase_count OPERATOR(pg_catalog.>) 0)::bigint,
               NULL::bigint, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
               NULL::numeric, NULL::bigint, NULL::numeric, NULL::text, NULL::bigint,
               coalesce(m.source_channel, 'unknown'), coalesce(m.region, 'unknown')
        FROM loyalty.accounts a JOIN loyalty.members m ON m.member_id OPERATOR(pg_catalog.=) a.member_id
        WHERE a.status OPERATOR(pg_catalog.<>) ALL (ARRAY['closed', 'pool']) AND loyalty.program_visible(a.program_id)
        GROUP BY a.program_id, 23, 24;
        RETURN QUERY
        SELECT 'now'::text, a.program_id, NULL::bigint, NULL::text, NULL::boolean, NULL::text, NULL::date, NULL::timestamptz,
               NULL::bigint, NULL::bigint, NULL::bigint, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
               NULL::numeric, NULL::numeric, NULL::numeric,
               count(*)::bigint, 0::numeric, NULL::text, NULL::bigint, NULL::text, NULL::text
        FROM loyalty.accounts a
        WHERE a.status OPERATOR(pg_catalog.<>) 'closed'
          AND a.last_purchase_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '90 days')
          AND loyalty.program_visible(a.program_id)
        GROUP BY a.program_id;
    ELSE
        s.last_entry := coalesce(after_entry, s.last_entry, 0);
        s.last_member := coalesce(after_member, s.last_member, 0);
        s.last_change := coalesce(after_change, s.last_change, 0);
        -- a role that sees every program (the refresh's) filters no row: no call
        -- of program_visible() per account, counted row and vesting row
        v_all := NOT EXISTS (SELECT FROM loyalty.programs p WHERE NOT loyalty.program_visible(p.program_id));
        -- EXECUTE: planned with the bounds' values, so the ledger's tail is read
        -- through ledger_entry_id_brin and a first build scans the tables
        RETURN QUERY EXECUTE $q$
        WITH c AS MATERIALIZED (
            -- the members whose accounts may have changed since they were
            -- counted: a ledger row of theirs, a new member, a status or tier
            -- change (account_changes); every write of a column the views sum
            -- is one of these.  probe: whether its points vesting may have
            -- changed other than by a lot counted before (see nv); profile:
            -- whether its source channel or region may have (a new member, or
            -- an account change: update_member writes one for a new region)
            SELECT x.member_id, pg_catalog.bool_or(x.probe) AS probe, pg_catalog.bool_or(x.profile) AS profile
            FROM (SELECT l.member_id, l.kind OPERATOR(pg_catalog.<>) 'earn' AS probe, false AS profile FROM loyalty.ledger l
                  WHERE l.entry_id OPERATOR(pg_catalog.>) $1 AND l.entry_id OPERATOR(pg_catalog.<=) $2
                  UNION ALL
                  -- a lot takes the id of the entry that created it (a merge's,
                  -- one of the same sequence): the new lots still vesting
                  SELECT t.member_id, true, false FROM loyalty.lots t
                  WHERE t.lot_id OPERATOR(pg_catalog.>) $1 AND t.lot_id OPERATOR(pg_catalog.<=) $2
                    AND t.is_open AND t.vests_at OPERATOR(pg_catalog.>) $7
                  UNION ALL
                  SELECT m.member_id, false, true FROM loyalty.members m
                  WHERE m.member_id OPERATOR(pg_catalog.>) $3 AND m.member_id OPERATOR(pg_catalog.<=) $4
                  UNION ALL
                  SELECT x.member_id, true, true FROM loyalty.account_changes x
                  WHERE x.change_id OPERATOR(pg_catalog.>) $5 AND x.change_id OPERATOR(pg_catalog.<=) $6) x
            GROUP BY x.member_id
        ), co AS MATERIALIZED (
            -- their accounts now and as counted, read in one pass (each side
            -- probed by its key: a join of two CTEs here was planned as a
            -- nested loop, quadratic in the members of a batch)
            SELECT c.member_id, c.probe, c.profile,
                   a.member_id AS a_member, a.program_id AS a_program, a.status AS a_status,
                   coalesce(a.tier::text, '') AS a_tier, a.balance::bigint AS a_balance, a.held::bigint AS a_held,
                   a.lifetime_earned::bigint AS a_earned, a.lifetime_redeemed::bigint AS a_redeemed,
                   a.lifetime_expired::bigint AS a_expired, a.purchase_count AS a_purchase_count,
                   a.purchase_amount AS a_purchase_amount, a.last_purchase_at AS a_last_purchase_at,
                   r.member_id AS r_member, r.program_id AS r_program, r.status AS r_status,
                   coalesce(r.tier::text, '') AS r_tier, r.balance AS r_balance, r.held AS r_held, r.earned AS r_earned,
                   r.redeemed AS r_redeemed, r.expired AS r_expired, r.purchase_count AS r_purchase_count,
                   r.purchase_amount AS r_purchase_amount, r.last_purchase_at AS r_last_purchase_at,
                   r.source_channel AS r_source_channel, r.region AS r_region
            FROM c LEFT JOIN loyalty.accounts a ON a.member_id OPERATOR(pg_catalog.=) c.member_id
            LEFT JOIN loyalty.rollup_accounts r ON r.member_id OPERATOR(pg_catalog.=) c.member_id
        ), o AS (
            -- as counted (read once, by d: a projection, not a copy)
            SELECT co.r_member AS member_id, co.r_program AS program_id, co.r_status AS status, co.r_tier AS tier,
                   co.r_balance AS balance, co.r_held AS held, co.r_earned AS earned, co.r_redeemed AS redeemed,
                   co.r_expired AS expired, co.r_purchase_count AS purchase_count,
                   co.r_purchase_amount AS purchase_amount, co.r_last_purchase_at AS last_purchase_at,
                   co.r_source_channel AS source_channel, co.r_region AS region
            FROM co
            WHERE co.r_member IS NOT NULL AND ($10 OR loyalty.program_visible(co.r_program))
        ), n AS MATERIALIZED (
            -- now; the source channel and region read from the member only
            -- when they may have changed (or were never counted)
            SELECT co.a_member AS member_id, co.probe, co.a_program AS program_id, co.a_status AS status,
                   co.a_tier AS tier, co.a_balance AS balance, co.a_held AS held, co.a_earned AS earned,
                   co.a_redeemed AS redeemed, co.a_expired AS expired, co.a_purchase_count AS purchase_count,
                   co.a_purchase_amount AS purchase_amount, co.a_last_purchase_at AS last_purchase_at,
                   coalesce(p.source_channel, co.r_source_channel) AS source_channel, coalesce(p.region, co.r_region) AS region
            FROM co
            -- (OFFSET 0: kept a subquery, whose test is made before the
            -- look-up; pulled up into the join, every member was looked up)
            LEFT JOIN LATERAL (
                SELECT coalesce(m.source_channel, 'unknown') AS source_channel, coalesce(m.region, 'unknown') AS region
                FROM loyalty.members m
                WHERE m.member_id OPERATOR(pg_catalog.=) co.member_id AND (co.profile OR co.r_member IS NULL)
                OFFSET 0) p ON true
            WHERE co.a_member IS NOT NULL AND ($10 OR loyalty.program_visible(co.a_program))
        ), ov AS MATERIALIZED (
            SELECT v.member_id, v.program_id, v.vests_at, v.points
            FROM c JOIN loyalty.rollup_vesting v ON v.member_id OPERATOR(pg_catalog.=) c.member_id
            WHERE $10 OR loyalty.program_visible(v.program_id)
        ), nv AS MATERIALIZED (
            -- their points vesting after the bound ($7: the refresh's start; a
            -- view's reader, its own), member by member through lots_open_idx,
            -- so the time follows the members changed, not the lots table.  Only
            -- members with points counted as vesting (ov), a new lot vesting, a
            -- status change, or a ledger row other than a purchase's: a purchase
            -- adds its own lot and takes from no other (a debt it settles, it
            -- settles from that lot), and every other write that changes a lot
            -- (a refund, a release, a merge, an expiry) writes a row of another
            -- kind for the member.  (A redemption takes vested points only, but
            -- may be dated a little ahead: it is probed too.)
            SELECT n.member_id, n.program_id, t.vests_at, t.points
            FROM n CROSS JOIN LATERAL (
                SELECT t.vests_at, sum(t.remaining::bigint) AS points
                FROM loyalty.lots t
                WHERE t.member_id OPERATOR(pg_catalog.=) n.member_id AND t.is_open AND t.vests_at OPERATOR(pg_catalog.>) $7
                GROUP BY t.vests_at) t
            WHERE n.probe OR n.member_id IN (SELECT ov.member_id FROM ov)
        ), d AS (
            -- old and new contributions (-1, +1)
            SELECT -1 AS sign, o.* FROM o
            UNION ALL
            SELECT 1, n.member_id, n.program_id, n.status, n.tier, n.balance, n.held, n.earned, n.redeemed, n.expired,
                   n.purchase_count, n.purchase_amount, n.last_purchase_at, n.source_channel, n.region
            FROM n
        ), bounds AS (
            -- the views' time-dependent columns sum whole days after the day
            -- their bound falls in, and read that day's rows one by one
            SELECT pg_catalog.now() OPERATOR(pg_catalog.-) interval '90 days' AS active_from,
                   ((pg_catalog.now() OPERATOR(pg_catalog.-) interval '90 days') AT TIME ZONE 'UTC')::date AS active_day,
                   (pg_catalog.now() AT TIME ZONE 'UTC')::date AS vest_day
        ), now_rows AS (
            SELECT x.program_id, sum(x.active) AS active, sum(x.pending) AS pending
            FROM (
                -- what the rollups count: whole days...
                SELECT r.program_id, r.active_members AS active, 0::numeric AS pending
                FROM loyalty.rollup_account_days r, bounds b
                WHERE r.day OPERATOR(pg_catalog.>) b.active_day AND ($10 OR loyalty.program_visible(r.program_id))
                UNION ALL
                SELECT r.program_id, 0, r.pending_points
                FROM loyalty.rollup_account_days r, bounds b
                WHERE $8 AND r.day OPERATOR(pg_catalog.>) b.vest_day AND ($10 OR loyalty.program_visible(r.program_id))
                UNION ALL
                -- ...and the day of the bound, member by member (its day as
                -- rollup_accounts_rfm_day_idx keys it, per program)
                SELECT r.program_id, 1, 0
                FROM loyalty.programs p, bounds b, loyalty.rollup_accounts r
                WHERE r.program_id OPERATOR(pg_catalog.=) p.program_id
                  AND loyalty.rollup_rfm_day(r.last_purchase_at)
                      OPERATOR(pg_catalog.=) (b.active_day OPERATOR(pg_catalog.-) '2000-01-01'::date)
                  AND r.last_purchase_at OPERATOR(pg_catalog.>) b.active_from
                  AND r.last_purchase_at IS NOT NULL AND r.status OPERATOR(pg_catalog.<>) 'closed'
                  AND ($10 OR loyalty.program_visible(p.program_id))
                UNION ALL
                SELECT v.program_id, 0, v.points
                FROM loyalty.rollup_vesting v, bounds b
                WHERE $8 AND v.vests_at OPERATOR(pg_catalog.>) pg_catalog.now()
                  AND v.vests_at OPERATOR(pg_catalog.<) ((b.vest_day OPERATOR(pg_catalog.+) 1)::timestamp AT TIME ZONE 'UTC')
                  AND ($10 OR loyalty.program_visible(v.program_id))
                UNION ALL
                -- the changed members: their contribution now for the one counted
                SELECT d.program_id, d.sign, 0
                FROM d, bounds b
                WHERE d.status OPERATOR(pg_catalog.<>) 'closed' AND d.last_purchase_at OPERATOR(pg_catalog.>) b.active_from
                UNION ALL
                SELECT nv.program_id, 0, nv.points FROM nv WHERE $8 AND nv.vests_at OPERATOR(pg_catalog.>) pg_catalog.now()
                UNION ALL
                SELECT ov.program_id, 0, -ov.points FROM ov WHERE $8 AND ov.vests_at OPERATOR(pg_catalog.>) pg_catalog.now()
            ) x
            GROUP BY x.program_id
        )
        SELECT 'sums'::text, d.program_id, NULL::bigint, d.tier, d.status OPERATOR(pg_catalog.=) 'pool', NULL::text, NULL::date,
               NULL::timestamptz, sum(d.sign)::bigint,
               sum(d.sign) FILTER (WHERE d.purchase_count OPERATOR(pg_catalog.>) 0)::bigint,
               sum(d.sign) FILTER (WHERE d.purchase_count OPERATOR(pg_catalog.>) 1)::bigint,
               sum(d.sign OPERATOR(pg_catalog.*) d.purchase_count)::numeric,
               sum(d.sign OPERATOR(pg_catalog.*) d.purchase_amount),
               sum(d.sign OPERATOR(pg_catalog.*) d.balance)::numeric, sum(d.sign OPERATOR(pg_catalog.*) d.held)::numeric,
               sum(d.sign OPERATOR(pg_catalog.*) d.earned)::numeric, sum(d.sign OPERATOR(pg_catalog.*) d.redeemed)::numeric,
               sum(d.sign OPERATOR(pg_catalog.*) d.expired)::numeric, NULL::bigint, NULL::numeric, NULL::text, NULL::bigint,
               NULL::text, NULL::text
        FROM d WHERE d.status OPERATOR(pg_catalog.<>) 'closed'
        GROUP BY d.program_id, d.tier, d.status OPERATOR(pg_catalog.=) 'pool'
        UNION ALL
        -- member_mix's groups (not closed, no pool): the changed members' now
        -- less as counted
        SELECT 'mix', d.program_id, NULL, NULL, NULL, NULL, NULL, NULL, sum(d.sign)::bigint,
               coalesce(sum(d.sign) FILTER (WHERE d.purchase_count OPERATOR(pg_catalog.>) 0), 0)::bigint, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, d.source_channel, d.region
        FROM d WHERE d.status OPERATOR(pg_catalog.<>) ALL (ARRAY['closed', 'pool'])
        GROUP BY d.program_id, d.source_channel, d.region
        HAVING sum(d.sign) OPERATOR(pg_catalog.<>) 0
            OR sum(d.sign) FILTER (WHERE d.purchase_count OPERATOR(pg_catalog.>) 0) OPERATOR(pg_catalog.<>) 0
        UNION ALL
        -- per day (for the refresh): members by the day of their last purchase,
        -- points by the day they vest
        SELECT 'day', x.program_id, NULL, NULL, NULL, NULL, x.day, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, sum(x.active)::bigint, sum(x.pending), NULL, NULL, NULL, NULL
        FROM (SELECT d.program_id, (d.last_purchase_at AT TIME ZONE 'UTC')::date AS day, d.sign AS active, 0::numeric AS pending
              FROM d WHERE d.status OPERATOR(pg_catalog.<>) 'closed' AND d.last_purchase_at IS NOT NULL
              UNION ALL
              SELECT nv.program_id, (nv.vests_at AT TIME ZONE 'UTC')::date, 0, nv.points FROM nv
              UNION ALL
              SELECT ov.program_id, (ov.vests_at AT TIME ZONE 'UTC')::date, 0, -ov.points FROM ov) x
        WHERE NOT $9
        GROUP BY x.program_id, x.day
        HAVING sum(x.active) OPERATOR(pg_catalog.<>) 0 OR sum(x.pending) OPERATOR(pg_catalog.<>) 0
        UNION ALL
        -- the views' time-dependent columns, in all
        SELECT 'now', r.program_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, r.active::bigint, r.pending, NULL, NULL, NULL, NULL
        FROM now_rows r WHERE $9
        UNION ALL
        -- the accounts and vesting points as the refresh counts them
        SELECT 'account', n.program_id, n.member_id, n.tier, NULL, n.status, NULL, n.last_purchase_at, NULL, NULL, NULL,
               n.purchase_count::numeric, n.purchase_amount, n.balance::numeric, n.held::numeric, n.earned::numeric,
               n.redeemed::numeric, n.expired::numeric, NULL, NULL, NULL, NULL, n.source_channel, n.region
        -- (a view's reader too: member_rfm's quintiles read the changed members' figures now)
        FROM n
        UNION ALL
        SELECT 'vest', nv.program_id, nv.member_id, NULL, NULL, NULL, NULL, nv.vests_at, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, nv.points, NULL, NULL, NULL, NULL
        FROM nv WHERE NOT $9
        UNION ALL
        -- member_rfm's buckets (buyers not closed): the changed members' now less
        -- as counted
        -- (a pass over d per measure: a VALUES list joined per row of d cost
        -- twice as much)
        SELECT 'rfm', k.program_id, NULL, NULL, NULL, NULL, NULL, NULL, sum(k.sign)::bigint, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, k.measure, k.bucket, NULL, NULL
        FROM (SELECT d.program_id, d.sign, 'f' AS measure, d.purchase_count::bigint AS bucket FROM d
              WHERE d.status OPERATOR(pg_catalog.<>) 'closed' AND d.purchase_count OPERATOR(pg_catalog.>) 0
              UNION ALL
              SELECT d.program_id, d.sign, 'r', loyalty.rollup_rfm_day(d.last_purchase_at)::bigint FROM d
              WHERE d.status OPERATOR(pg_catalog.<>) 'closed' AND d.purchase_count OPERATOR(pg_catalog.>) 0
              UNION ALL
              SELECT d.program_id, d.sign, 'm', loyalty.rollup_rfm_band(d.purchase_amount) FROM d
              WHERE d.status OPERATOR(pg_catalog.<>) 'closed' AND d.purchase_count OPERATOR(pg_catalog.>) 0) k
        WHERE k.bucket IS NOT NULL
        GROUP BY k.program_id, k.measure, k.bucket
        HAVING sum(k.sign) OPERATOR(pg_catalog.<>) 0
        $q$ USING s.last_entry, coalesce(upto_entry, 9223372036854775807),
                  s.last_member, coalesce(upto_member, 9223372036854775807),
                  s.last_change, coalesce(upto_change, 9223372036854775807),
                  pg_catalog.now(),
                  -- the vesting points counted (those after the bound) are all a
                  -- reader needs whose transaction began at the bound or later
                  s.vesting_from IS NULL OR pg_catalog.now() OPERATOR(pg_catalog.>=) s.vesting_from,
                  v_view, v_all;
    END IF;
    IF v_view AND (s.singleton IS NULL OR pg_catalog.now() OPERATOR(pg_catalog.<) s.vesting_from) THEN
        -- never refreshed, or a transaction begun before the last refresh's
        -- bound: the points vesting now computed from the lots
        RETURN QUERY
        SELECT 'now'::text, x.program_id, NULL::bigint, NULL::text, NULL::boolean, NULL::text, NULL::date, NULL::timestamptz,
               NULL::bigint, NULL::bigint, NULL::bigint, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
               NULL::numeric, NULL::numeric, NULL::numeric,
               0::bigint, sum(l.remaining::bigint), NULL::text, NULL::bigint, NULL::text, NULL::text
        FROM loyalty.lots l JOIN loyalty.accounts x ON x.member_id OPERATOR(pg_catalog.=) l.member_id
        WHERE l.is_open AND l.vests_at OPERATOR(pg_catalog.>) pg_catalog.now() AND loyalty.program_visible(x.program_id)
        GROUP BY x.program_id;
    END IF;
END $$;
