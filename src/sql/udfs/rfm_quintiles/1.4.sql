CREATE FUNCTION loyalty.rfm_quintiles()
RETURNS TABLE (program_id bigint, r timestamptz[], f bigint[], m numeric[])
LANGUAGE plpgsql STABLE
-- a row per program: at the default estimate (1000) the planner sorted every
-- buyer's account to merge-join member_rfm's accounts with it, where a hash
-- of the few rows does
ROWS 10
-- SECURITY DEFINER: member_rfm calls it for its readers, who may not read
-- the accounts or the rollups; it returns only the programs the calling role
-- may see (program_visible), and its search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s loyalty.rollup_state;
    v_buyers bigint;
    v_programs bigint[];
BEGIN
    SELECT * INTO s FROM loyalty.rollup_state;
    SELECT coalesce(sum(k.members), 0) INTO v_buyers FROM loyalty.rollup_rfm_counts k
    WHERE k.measure OPERATOR(pg_catalog.=) 'f';
    -- Before any refresh, on Citus (never refreshed), or when the ledger has
    -- moved on by more entries than a quarter of the buyers (the changed
    -- members would cost more than the sorts): the boundaries from every
    -- buyer's account (three sorts).
    IF s.singleton IS NULL OR loyalty.books_distributed()
       OR (coalesce(pg_catalog.pg_sequence_last_value(
               pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id')::regclass), 0)
           OPERATOR(pg_catalog.-) s.last_entry)
          OPERATOR(pg_catalog.>) (greatest(v_buyers, 1000) OPERATOR(pg_catalog./) 4) THEN
        -- (the programs the role sees, tested once each rather than per account)
        v_programs := ARRAY(SELECT p.program_id FROM loyalty.programs p WHERE loyalty.program_visible(p.program_id));
        RETURN QUERY
        SELECT a.program_id,
               pg_catalog.percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.last_purchase_at),
               pg_catalog.percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_count),
               pg_catalog.percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_amount)
        FROM loyalty.accounts a
        WHERE a.purchase_count OPERATOR(pg_catalog.>) 0 AND a.status OPERATOR(pg_catalog.<>) 'closed'
          AND a.program_id OPERATOR(pg_catalog.=) ANY (v_programs)
        GROUP BY a.program_id;
        RETURN;
    END IF;

    -- From the rollups: the counts per bucket as counted, plus the changed
    -- members' difference (rollup_account_changes(): their figures now less
    -- as counted), give each program's number of buyers n and, for each
    -- boundary, the bucket holding percentile_disc's row k = ceil(p * n) (at
    -- least 1; in float8, as percentile_disc computes it) and its rank there;
    -- the value is then the rank-th of that bucket's values: the unchanged
    -- buyers' as counted and the changed ones' now (a purchase count is its
    -- own bucket).
    RETURN QUERY
    WITH t AS MATERIALIZED (
        SELECT c.target, c.program_id, c.member_id, c.status, c.at, c.purchases, c.revenue, c.accounts, c.measure,
               c.bucket
        FROM loyalty.rollup_account_changes() c
        WHERE c.target OPERATOR(pg_catalog.=) ANY (ARRAY['rfm', 'account'])
    ), n AS MATERIALIZED (
        -- the changed buyers now
        SELECT t.program_id, t.at AS last_purchase_at, t.revenue AS purchase_amount
        FROM t
        WHERE t.target OPERATOR(pg_catalog.=) 'account' AND t.status OPERATOR(pg_catalog.<>) 'closed'
          AND t.purchases OPERATOR(pg_catalog.>) 0
    ), h AS (
        SELECT y.program_id, y.measure, y.bucket, pg_catalog.sum(y.members)::bigint AS members
        FROM (SELECT k.program_id, k.measure, k.bucket, k.members FROM loyalty.rollup_rfm_counts k
              WHERE k.program_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT p.program_id FROM loyalty.programs p
                                                                    WHERE loyalty.program_visible(p.program_id)))
              UNION ALL
              SELECT t.program_id, t.measure, t.bucket, t.accounts FROM t WHERE t.target OPERATOR(pg_catalog.=) 'rfm') y
        GROUP BY 1, 2, 3 HAVING pg_catalog.sum(y.members) OPERATOR(pg_catalog.<>) 0
    ), cu AS (
        SELECT h.program_id, h.measure, h.bucket, h.members,
               pg_catalog.sum(h.members) OVER (PARTITION BY h.program_id, h.measure ORDER BY h.bucket)::bigint AS upto,
               pg_catalog.sum(h.members) OVER (PARTITION BY h.program_id, h.measure)::bigint AS total
        FROM h
    ), b AS MATERIALIZED (
        SELECT x.program_id, x.measure, x.i, x.bucket, x.k OPERATOR(pg_catalog.-) (x.upto OPERATOR(pg_catalog.-) x.members) AS rank
        FROM (SELECT cu.*, p.i,
                     greatest(1, pg_catalog.ceil(p.pct OPERATOR(pg_catalog.*) cu.total::float8)::bigint) AS k
              FROM cu CROSS JOIN (VALUES (1, 0.2::float8), (2, 0.4::float8), (3, 0.6::float8), (4, 0.8::float8)) p(i, pct)) x
        WHERE x.upto OPERATOR(pg_catalog.>=) x.k AND x.upto OPERATOR(pg_catalog.-) x.members OPERATOR(pg_catalog.<) x.k
    ), gone AS MATERIALIZED (
        -- the changed members' rows as counted, which no longer hold
        SELECT x.program_id, x.last_purchase_at, x.purchase_amount
        FROM (SELECT DISTINCT t.member_id FROM t WHERE t.target OPERATOR(pg_catalog.=) 'account') g
        JOIN loyalty.rollup_accounts x ON x.member_id OPERATOR(pg_catalog.=) g.member_id
        WHERE x.purchase_count OPERATOR(pg_catalog.>) 0 AND x.status OPERATOR(pg_catalog.<>) 'closed'
    ), k AS MATERIALIZED (
        -- the buckets holding a boundary (often one holds several), read once
        SELECT DISTINCT b.program_id, b.measure, b.bucket FROM b
    ), rv AS (
        -- their last purchases: as counted (1), less the changed members' as
        -- counted (-1), plus theirs now (1); no anti-join, whose plan a
        -- misestimate can make quadratic
        SELECT k.program_id, k.bucket, x.last_purchase_at AS v, 1 AS w
        FROM k JOIN loyalty.rollup_accounts x
          ON x.program_id OPERATOR(pg_catalog.=) k.program_id
         AND loyalty.rollup_rfm_day(x.last_purchase_at) OPERATOR(pg_catalog.=) k.bucket::integer
        WHERE k.measure OPERATOR(pg_catalog.=) 'r'
          AND x.last_purchase_at IS NOT NULL AND x.status OPERATOR(pg_catalog.<>) 'closed'
          AND x.purchase_count OPERATOR(pg_catalog.>) 0
        UNION ALL
        SELECT k.program_id, k.bucket, g.last_purchase_at, -1
        FROM k JOIN gone g ON g.program_id OPERATOR(pg_catalog.=) k.program_id
                          AND loyalty.rollup_rfm_day(g.last_purchase_at) OPERATOR(pg_catalog.=) k.bucket::integer
        WHERE k.measure OPERATOR(pg_catalog.=) 'r'
        UNION ALL
        SELECT k.program_id, k.bucket, n.last_purchase_at, 1
        FROM k JOIN n ON n.program_id OPERATOR(pg_catalog.=) k.program_id
                     AND loyalty.rollup_rfm_day(n.last_purchase_at) OPERATOR(pg_catalog.=) k.bucket::integer
        WHERE k.measure OPERATOR(pg_catalog.=) 'r'
    ), mv AS (
        -- the spends, likewise
        SELECT k.program_id, k.bucket, x.purchase_amount AS v, 1 AS w
        FROM k JOIN loyalty.rollup_accounts x
          ON x.program_id OPERATOR(pg_catalog.=) k.program_id
         AND loyalty.rollup_rfm_band(x.purchase_amount) OPERATOR(pg_catalog.=) k.bucket
        WHERE k.measure OPERATOR(pg_catalog.=) 'm'
          AND x.purchase_count OPERATOR(pg_catalog.>) 0 AND x.status OPERATOR(pg_catalog.<>) 'closed'
        UNION ALL
        SELECT k.program_id, k.bucket, g.purchase_amount, -1
        FROM k JOIN gone g ON g.program_id OPERATOR(pg_catalog.=) k.program_id
                          AND loyalty.rollup_rfm_band(g.purchase_amount) OPERATOR(pg_catalog.=) k.bucket
        WHERE k.measure OPERATOR(pg_catalog.=) 'm'
        UNION ALL
        SELECT k.program_id, k.bucket, n.purchase_amount, 1
        FROM k JOIN n ON n.program_id OPERATOR(pg_catalog.=) k.program_id
                     AND loyalty.rollup_rfm_band(n.purchase_amount) OPERATOR(pg_catalog.=) k.bucket
        WHERE k.measure OPERATOR(pg_catalog.=) 'm'
    ), rk AS (
        -- per boundary, the rank-th value of its bucket: the first whose
        -- running count there reaches the rank
        SELECT b.program_id, b.i, z.v
        FROM (SELECT y.*, pg_catalog.sum(y.w) OVER (PARTITION BY y.program_id, y.bucket ORDER BY y.v) AS upto
              FROM (SELECT rv.program_id, rv.bucket, rv.v, pg_catalog.sum(rv.w) AS w
                    FROM rv GROUP BY 1, 2, 3 HAVING pg_catalog.sum(rv.w) OPERATOR(pg_catalog.>) 0) y) z
        JOIN b ON b.measure OPERATOR(pg_catalog.=) 'r' AND b.program_id OPERATOR(pg_catalog.=) z.program_id
              AND b.bucket OPERATOR(pg_catalog.=) z.bucket
        WHERE z.upto OPERATOR(pg_catalog.>=) b.rank AND z.upto OPERATOR(pg_catalog.-) z.w OPERATOR(pg_catalog.<) b.rank
    ), mk AS (
        -- per boundary, the rank-th value of its bucket: the first whose
        -- running count there reaches the rank
        SELECT b.program_id, b.i, z.v
        FROM (SELECT y.*, pg_catalog.sum(y.w) OVER (PARTITION BY y.program_id, y.bucket ORDER BY y.v) AS upto
              FROM (SELECT mv.program_id, mv.bucket, mv.v, pg_catalog.sum(mv.w) AS w
                    FROM mv GROUP BY 1, 2, 3 HAVING pg_catalog.sum(mv.w) OPERATOR(pg_catalog.>) 0) y) z
        JOIN b ON b.measure OPERATOR(pg_catalog.=) 'm' AND b.program_id OPERATOR(pg_catalog.=) z.program_id
              AND b.bucket OPERATOR(pg_catalog.=) z.bucket
        WHERE z.upto OPERATOR(pg_catalog.>=) b.rank AND z.upto OPERATOR(pg_catalog.-) z.w OPERATOR(pg_catalog.<) b.rank
    )
    SELECT b.program_id,
           pg_catalog.array_agg(rk.v ORDER BY b.i) FILTER (WHERE b.measure OPERATOR(pg_catalog.=) 'r'),
           pg_catalog.array_agg(b.bucket ORDER BY b.i) FILTER (WHERE b.measure OPERATOR(pg_catalog.=) 'f'),
           pg_catalog.array_agg(mk.v ORDER BY b.i) FILTER (WHERE b.measure OPERATOR(pg_catalog.=) 'm')
    FROM b
    LEFT JOIN rk ON b.measure OPERATOR(pg_catalog.=) 'r' AND rk.program_id OPERATOR(pg_catalog.=) b.program_id
                AND rk.i OPERATOR(pg_catalog.=) b.i
    LEFT JOIN mk ON b.measure OPERATOR(pg_catalog.=) 'm' AND mk.program_id OPERATOR(pg_catalog.=) b.program_id
                AND mk.i OPERATOR(pg_catalog.=) b.i
    GROUP BY b.program_id;
END $$;
