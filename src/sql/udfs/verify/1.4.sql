CREATE FUNCTION loyalty.verify()
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
    WITH paid AS MATERIALIZED (
        -- completed challenge periods, the latest (state rows) and earlier
        -- ones, read once: on Citus each is a query of its own, not a
        -- subquery correlated with the ledger
        SELECT p.member_id, p.challenge_id, p.period_start, p.award_entry, p.award_member
        FROM loyalty.challenge_progress p WHERE p.completed_at IS NOT NULL
    ), awards AS (
        SELECT l.member_id, l.entry_id, m.merged_into
        FROM loyalty.ledger l JOIN loyalty.members m ON m.member_id = l.member_id
        WHERE l.kind = 'award'
    ), led AS (
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
    WHERE (l.kind = ANY (ARRAY['redeem', 'hold', 'expire', 'adjust', 'transfer'])
           AND l.points::bigint < 0 AND coalesce(al.points, 0) <> -l.points::bigint)
       -- a merge's outgoing entry takes every open lot: the balance it moves plus the debt
       OR (l.kind = 'merge' AND l.details ? 'merged_into'
           AND coalesce(al.points, 0) <> -l.points::bigint + coalesce((l.details ->> 'debt')::bigint, 0))
       -- a forfeit takes every open lot too: the balance written off plus the debt
       OR (l.kind = 'forfeit'
           AND coalesce(al.points, 0) <> -l.points::bigint + coalesce((l.details ->> 'debt')::bigint, 0))
       -- one without details (before 1.3) as a debit
       OR (l.kind = 'merge' AND l.details IS NULL
           AND l.points::bigint < 0 AND coalesce(al.points, 0) <> -l.points::bigint)
    UNION ALL
    SELECT 'a credit has one lot of its points', l.member_id,
           format('entry %s (%s) of %s points, lots %s', l.entry_id, l.kind, l.points, coalesce(lo.original, 0))
    FROM loyalty.ledger l
    LEFT JOIN (SELECT x.member_id, x.entry_id, sum(x.original::bigint) AS original, count(*) AS n
               FROM loyalty.lots x GROUP BY 1, 2) lo USING (member_id, entry_id)
    WHERE l.kind = ANY (ARRAY['earn', 'award', 'adjust', 'household_share']) AND l.points::bigint > 0
      AND (lo.n IS DISTINCT FROM 1 OR lo.original <> l.points::bigint)
    UNION ALL
    SELECT 'a received transfer has lots of its points', l.member_id,
           format('entry %s of %s points, lots %s', l.entry_id, l.points, coalesce(lo.original, 0))
    FROM loyalty.ledger l
    LEFT JOIN (SELECT x.member_id, x.entry_id, sum(x.original::bigint) AS original
               FROM loyalty.lots x GROUP BY 1, 2) lo USING (member_id, entry_id)
    WHERE l.kind = 'transfer' AND l.points::bigint > 0 AND coalesce(lo.original, 0) <> l.points::bigint
    UNION ALL
    -- (grouped by the sender's entry, not joined: on Citus the two sides live
    -- on different shards; OFFSET 0 keeps the grouping key a column, which
    -- Citus needs to merge the groups of its shards)
    SELECT 'a transfer takes from one member what it gives another', min(t.member_id),
           format('transfer %s: %s entries, points summing to %s', t.pair, count(*), sum(t.points))
    FROM (SELECT coalesce(l.source_entry, l.entry_id) AS pair, l.member_id, l.points::bigint AS points
          FROM loyalty.ledger l WHERE l.kind = 'transfer' OFFSET 0) t
    GROUP BY t.pair
    HAVING count(*) <> 2 OR sum(t.points) <> 0 OR min(t.member_id) = max(t.member_id)
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
                                  'expire', 'adjust', 'merge', 'carry_forward', 'transfer', 'forfeit',
                                  'household_share'])
    UNION ALL
    -- (paired by the pool's entry, not joined: the earner and the pool live
    -- on different shards on Citus; archived entries leave their shares alone)
    SELECT 'a household share is recorded with its pool''s entry', min(x.member_id),
           format('pool entry %s: %s rows, points differing by %s', x.pair, count(*), sum(x.points))
    FROM (SELECT l.entry_id AS pair, l.member_id, l.points::bigint AS points
          FROM loyalty.ledger l WHERE l.kind = 'household_share'
          UNION ALL
          SELECT s.share_entry, s.member_id, -s.points
          FROM loyalty.household_shares s
          WHERE s.created_at >= coalesce((SELECT p.archived_before FROM loyalty.ledger_partitioning p), '-infinity')
          OFFSET 0) x
    GROUP BY x.pair
    HAVING count(*) <> 2 OR sum(x.points) <> 0
    UNION ALL
    SELECT 'a pool is open while its household is', h.pool_member,
           format('household %s (%s), pool %s', h.household_id,
                  CASE WHEN h.dissolved_at IS NULL THEN 'current' ELSE 'dissolved' END, coalesce(m.status, 'missing'))
    FROM loyalty.households h LEFT JOIN loyalty.members m ON m.member_id = h.pool_member
    WHERE h.pool_member IS NOT NULL AND (m.status IS NULL OR (h.dissolved_at IS NULL) <> (m.status = 'pool'))
    UNION ALL
    SELECT 'only a household''s pool has status pool', m.member_id, format('member %s', m.member_id)
    FROM loyalty.members m
    WHERE m.status = 'pool'
      AND NOT EXISTS (SELECT 1 FROM loyalty.households h WHERE h.pool_member = m.member_id)
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
    SELECT 'an erased member keeps no personal data and no points', m.member_id,
           format('status %s, balance %s', m.status, a.balance)
    FROM loyalty.members m JOIN loyalty.accounts a USING (member_id)
    WHERE m.erased_at IS NOT NULL
      AND (m.birthday IS NOT NULL OR m.region IS NOT NULL OR m.preferred_channel IS NOT NULL
           OR m.consent <> '{}' OR m.attributes <> '{}' OR m.status <> 'closed'
           OR EXISTS (SELECT 1 FROM loyalty.member_tags t WHERE t.member_id = m.member_id)
           OR EXISTS (SELECT 1 FROM loyalty.survey_responses r WHERE r.member_id = m.member_id
                      AND (r.comment IS NOT NULL OR r.answers IS NOT NULL))
           OR (m.merged_into IS NULL AND (a.balance::bigint <> 0 OR a.debt::bigint <> 0)))
    UNION ALL
    SELECT 'an erased member cannot be found by an identity', i.member_id,
           format('identity %s:%s', i.channel, i.external_id)
    FROM loyalty.identities i
    WHERE i.member_id IN (SELECT m.member_id FROM loyalty.members m WHERE m.erased_at IS NOT NULL)
    UNION ALL
    SELECT 'at most one effect per idempotency key', l.member_id,
           format('key %s used by %s entries', l.idempotency_key, count(*))
    FROM loyalty.ledger l
    WHERE l.idempotency_key IS NOT NULL AND l.kind <> 'release'
    GROUP BY l.member_id, l.idempotency_key
    HAVING count(*) > 1
    UNION ALL
    SELECT 'a paid challenge completion names its award', p.member_id,
           format('challenge %s, period from %s: award entry %s', p.challenge_id, p.period_start, p.award_entry)
    FROM paid p JOIN loyalty.challenges c ON c.challenge_id = p.challenge_id
    -- an award carried by merges is in the ledger of the member it was paid
    -- to, merged into this one (after any number of merges: merged_into
    -- names the last survivor)
    LEFT JOIN awards a ON a.member_id = coalesce(p.award_member, p.member_id) AND a.entry_id = p.award_entry
    WHERE c.reward_points IS NOT NULL
      AND (a.member_id IS NULL OR (p.award_member IS NOT NULL AND a.merged_into IS DISTINCT FROM p.member_id))
    UNION ALL
    SELECT 'a badge comes from a completed challenge period', b.member_id, format('badge %s', b.badge)
    FROM loyalty.member_badges b
    WHERE b.challenge_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM loyalty.challenge_progress p
                      WHERE p.member_id = b.member_id AND p.challenge_id = b.challenge_id
                        AND p.period_start = b.period_start AND p.completed_at IS NOT NULL)
    UNION ALL
    -- a member's latest periods: parallel arrays of one length, each
    -- challenge once, no NULL where a period needs a value
    SELECT 'a challenge state row is well-formed', s.member_id,
           format('%s challenges, array lengths %s', cardinality(s.challenge_ids), x.lengths)
    FROM loyalty.challenge_state s
    CROSS JOIN LATERAL (SELECT ARRAY[cardinality(s.period_starts), cardinality(s.period_ends),
                                     cardinality(s.period_values), cardinality(s.period_items),
                                     cardinality(s.last_items), cardinality(s.completed_ats),
                                     cardinality(s.completion_counts), cardinality(s.award_entries),
                                     cardinality(s.award_members), cardinality(s.clawed_back_ats),
                                     cardinality(s.updated_ats)] AS lengths) x
    WHERE cardinality(s.challenge_ids) <> ANY (x.lengths)
       OR (SELECT count(DISTINCT c) FROM unnest(s.challenge_ids) c) <> cardinality(s.challenge_ids)
       OR array_position(s.challenge_ids, NULL) IS NOT NULL OR array_position(s.period_starts, NULL) IS NOT NULL
       OR array_position(s.period_values, NULL) IS NOT NULL OR array_position(s.completion_counts, NULL) IS NOT NULL
       OR array_position(s.updated_ats, NULL) IS NOT NULL
    UNION ALL
    -- an earlier period is older than its challenge's latest one, which is
    -- in the state row
    SELECT 'an earlier challenge period is older than the latest, in the state row', h.member_id,
           format('challenge %s, period from %s', h.challenge_id, h.period_start)
    FROM loyalty.challenge_periods h
    LEFT JOIN (SELECT s.member_id, unnest(s.challenge_ids) AS challenge_id, unnest(s.period_starts) AS period_start
               FROM loyalty.challenge_state s) x
           ON x.member_id = h.member_id AND x.challenge_id = h.challenge_id
    WHERE x.period_start IS NULL OR x.period_start <= h.period_start
    UNION ALL
    SELECT 'earlier_done names the challenges with a completed earlier period', coalesce(d.member_id, e.member_id),
           format('challenge %s', coalesce(d.challenge_id, e.challenge_id))
    FROM (SELECT s.member_id, unnest(s.earlier_done) AS challenge_id FROM loyalty.challenge_state s) d
    FULL JOIN (SELECT DISTINCT h.member_id, h.challenge_id FROM loyalty.challenge_periods h
               WHERE h.completed_at IS NOT NULL) e
           ON e.member_id = d.member_id AND e.challenge_id = d.challenge_id
    WHERE d.member_id IS NULL OR e.member_id IS NULL
    UNION ALL
    SELECT 'the challenge state keeps the member''s joined_at', s.member_id,
           format('%s, the member joined %s', s.joined_at, m.joined_at)
    FROM loyalty.challenge_state s JOIN loyalty.members m ON m.member_id = s.member_id
    WHERE s.joined_at <> m.joined_at
$$;
