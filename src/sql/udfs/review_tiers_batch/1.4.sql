CREATE FUNCTION loyalty.review_tiers_batch(program bigint, as_of timestamptz, after_member bigint, batch_size integer)
RETURNS TABLE (last_member bigint, reviewed bigint, changed bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- the batch's estimates are far above its work: JIT compiling its statement
-- took longer than running it
SET jit = off
AS $$
DECLARE
    v_p loyalty.programs;
    v_as_of timestamptz := coalesce(as_of, now());
    v_last bigint;
    v_n bigint;
    v_c bigint := 0;
    v_ids bigint[];
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
    v_dec bigint[];
    v_changes boolean[];
    v_tiers loyalty.tier[];
    v_graces timestamptz[];
    v_from loyalty.tier[];
    v_reasons text[];
    v_n2 bigint;
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

    -- (the write path's own test: whether loyalty.accounts is a Citus table)
    v_citus := loyalty.books_distributed();
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
            IF v_status IN ('closed', 'pool') THEN
                NULL;                                   -- closed members and pools are left alone
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
                PERFORM loyalty.set_tier_grace(v_member, v_as_of + v_p.tier_grace);
            ELSIF v_action = 'clear_grace' THEN
                PERFORM loyalty.set_tier_grace(v_member, NULL);
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

    -- one statement reads the batch's metrics and decides
    SELECT coalesce(array_agg(x.member_id ORDER BY x.member_id), '{}'),
           coalesce(array_agg(x.action = 'change' ORDER BY x.member_id), '{}'),
           coalesce(array_agg(x.to_tier ORDER BY x.member_id), '{}'),
           coalesce(array_agg(x.grace_until ORDER BY x.member_id), '{}'),
           coalesce(array_agg(x.from_tier ORDER BY x.member_id), '{}'),
           coalesce(array_agg(x.reason ORDER BY x.member_id), '{}')
    INTO v_dec, v_changes, v_tiers, v_graces, v_from, v_reasons
    FROM (
    WITH batch AS (
        -- (a join, not = ANY: a parameter array is searched linearly per row)
        SELECT a.member_id, a.tier, a.status, a.tier_locked_until, a.tier_grace_until
        FROM unnest(v_ids) AS i(member_id) JOIN loyalty.accounts a ON a.member_id = i.member_id
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
    ), hh AS (
        -- with household tiers, a household member qualifies on its household's metric
        SELECT hm.member_id, loyalty.tier_metric(hm.member_id, v_as_of) AS value
        FROM batch b
        JOIN loyalty.household_members hm ON hm.member_id = b.member_id AND hm.left_at IS NULL
        JOIN loyalty.household_rules r ON r.program_id = hm.program_id AND r.household_tier
    ), d AS (
        SELECT b.member_id, b.status, b.tier_locked_until, b.tier_grace_until,
               loyalty.tier_rank(b.tier) AS cur,
               (SELECT max(t.rank) FROM loyalty.tiers t
                WHERE t.program_id = program AND NOT t.invitation_only
                  AND t.threshold <= coalesce(hh.value, met.value)) AS q
        FROM batch b JOIN met ON met.member_id = b.member_id
        LEFT JOIN hh ON hh.member_id = b.member_id
    )
    , res AS (
    SELECT d.member_id, d.cur, d.q, x.new_rank, x.grace_until, x.action
    FROM d, LATERAL (
        SELECT * FROM (VALUES
            -- closed members and household pools are left alone
            (d.status IN ('closed', 'pool'), NULL::integer, NULL::timestamptz, 'none'),
            -- qualified for more: up at once; for the same: end any grace
            (d.q IS NOT NULL AND (d.cur IS NULL OR d.q > d.cur), d.q, NULL, 'change'),
            (d.cur IS NULL OR (d.q IS NOT NULL AND d.q >= d.cur),
                NULL, NULL, CASE WHEN d.tier_grace_until IS NOT NULL THEN 'clear_grace' ELSE 'none' END),
            -- below: a manual, invitation or paid lock holds
            (d.tier_locked_until > v_as_of, NULL, NULL, 'none'),
            -- a lock that ended: back to the tier the member qualifies for (not a
            -- step down to a tier never qualified for, and no grace: the lock was it)
            (d.tier_locked_until IS NOT NULL, d.q, NULL, 'change'),
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
    SELECT res.member_id, res.action, res.grace_until, b.tier AS from_tier,
           (SELECT loyalty.tier(t.rank, t.name) FROM loyalty.tiers t
            WHERE t.program_id = program AND t.rank = res.new_rank) AS to_tier,
           CASE WHEN res.new_rank > coalesce(res.cur, -1) THEN 'qualified (review)'
                ELSE 'review: below the threshold' END AS reason
    FROM res JOIN batch b ON b.member_id = res.member_id
    WHERE res.action IN ('start_grace', 'clear_grace')
       OR (res.action = 'change' AND res.new_rank IS DISTINCT FROM res.cur)
    ) x;

    -- the accounts through the C write path, in member_id order; the
    -- history and tier.changed events of the batch in one statement each
    PERFORM loyalty.apply_tiers(v_dec, v_changes, v_tiers, v_graces);
    WITH ch AS (
        SELECT u.member_id, u.from_tier, u.to_tier, u.reason
        FROM unnest(v_dec, v_changes, v_from, v_tiers, v_reasons) AS u(member_id, change, from_tier, to_tier, reason)
        WHERE u.change
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
    SELECT (SELECT count(*) FROM ch),
           (SELECT count(pg_notify('loyalty_events',
                jsonb_build_object('event_id', ev.event_id, 'member_id', ev.member_id, 'kind', 'tier.changed')::text))
            FROM ev)
    INTO v_c, v_n2;
    RETURN QUERY SELECT v_last, v_n, v_c;
END $$;
