-- The check of test/load/acked.sh (acked_check there, which loads the call
-- logs into the temporary tables intents and acks first) against the books.
-- Psql variable since: calls acknowledged after more than one sending are
-- counted by whether their effect was written before it or by the retry.
-- Ends with a line FIGURES name=value ... that acked_check reads.
CREATE TEMP TABLE calls AS
SELECT i.call_key, i.k, i.op, i.n, i.client, chaos.op_name(i.op) AS name,
       chaos.op_name(i.op) NOT IN ('expire', 'release expired') AS keyed,
       a.call_key IS NOT NULL AS acked, split_part(a.answer, ' ', 1) AS state,
       nullif(split_part(a.answer, ' ', 2), '')::bigint AS result, a.tries, a.at_us
FROM intents i LEFT JOIN acks a USING (call_key);

-- What each call left: the ledger rows under its keys (KEY, or KEY/hold and
-- KEY/capture or KEY/release, or order:KEY/1..3 of a batch), how many
-- transactions wrote them (created_at is the start of the writing
-- transaction) and when, and its keys' first results in idempotency_keys (a
-- coupon's in its redemption).
CREATE TEMP VIEW trace AS
SELECT c.call_key, l.rows, l.txns, l.first_at, k.keys
FROM calls c
LEFT JOIN (SELECT split_part(regexp_replace(idempotency_key, '^order:', ''), '/', 1) AS call_key, count(*) AS rows,
                  count(DISTINCT created_at) AS txns, min(created_at) AS first_at
           FROM loyalty.ledger WHERE idempotency_key IS NOT NULL GROUP BY 1) l USING (call_key)
LEFT JOIN (SELECT x.call_key, count(*) AS keys
           FROM (SELECT split_part(regexp_replace(idempotency_key, '^order:', ''), '/', 1) AS call_key
                 FROM loyalty.idempotency_keys
                 UNION ALL
                 SELECT idempotency_key FROM loyalty.coupon_redemptions WHERE idempotency_key IS NOT NULL) x
           GROUP BY 1) k USING (call_key);

SELECT count(*) FILTER (WHERE c.acked) AS acked,
       count(*) FILTER (WHERE c.acked AND c.state = '00000') AS acked_ok,
       count(*) FILTER (WHERE c.acked AND c.state <> '00000') AS acked_refused,
       count(*) FILTER (WHERE c.acked AND NOT c.keyed) AS keyless,
       count(*) FILTER (WHERE c.acked AND c.state = '00000' AND c.keyed AND t.rows IS NULL AND t.keys IS NULL) AS lost,
       count(*) FILTER (WHERE t.txns > 1) AS doubled,
       count(*) FILTER (WHERE c.acked AND c.state <> '00000' AND (t.rows IS NOT NULL OR t.keys IS NOT NULL)) AS phantom,
       count(*) FILTER (WHERE c.acked AND c.tries > 1) AS retried,
       count(*) FILTER (WHERE c.acked AND c.tries > 1 AND t.first_at < :'since') AS retried_found,
       count(*) FILTER (WHERE c.acked AND c.tries > 1 AND t.first_at >= :'since') AS retried_applied,
       count(*) FILTER (WHERE NOT c.acked) AS unacked,
       count(*) FILTER (WHERE NOT c.acked AND (t.rows IS NOT NULL OR t.keys IS NOT NULL)) AS unacked_found
FROM calls c LEFT JOIN trace t USING (call_key) \gset

-- every acknowledged success again, with its key: the first answer, nothing written
SELECT count(*) AS ledger_before FROM loyalty.ledger \gset
SELECT count(*) AS replayed,
       count(*) FILTER (WHERE s.answer IS DISTINCT FROM s.state || coalesce(' ' || s.result, '')) AS replay_differ
FROM (SELECT chaos.op(c.k, c.op, c.n, c.client, c.call_key) AS answer, c.state, c.result
      FROM calls c WHERE c.acked AND c.state = '00000' AND c.keyed ORDER BY c.at_us, c.call_key) s \gset
SELECT count(*) - :ledger_before AS replay_written FROM loyalty.ledger \gset

-- every unacknowledged call, as its client would send it again
SELECT count(*) AS unacked_sent, count(*) FILTER (WHERE s.answer LIKE '00000%') AS unacked_ok
FROM (SELECT chaos.op(c.k, c.op, c.n, c.client, c.call_key) AS answer
      FROM calls c WHERE NOT c.acked ORDER BY c.call_key) s \gset

SELECT count(*) FILTER (WHERE t.txns > 1) AS doubled_after FROM trace t \gset
SELECT count(*) AS verify FROM loyalty.verify() \gset

SELECT v.line FROM (VALUES
    (1, format('calls acknowledged: %s (succeeded %s, refused %s; without a key (expire, release expired): %s)',
               :acked, :acked_ok, :acked_refused, :keyless)),
    (2, format('acknowledged calls lost: %s, doubled (ledger rows from two transactions): %s, refusals that left an effect: %s',
               :lost, :doubled, :phantom)),
    (3, format('acknowledged after more than one sending: %s (already applied before the retry: %s, applied by the retry: %s)',
               :retried, :retried_found, :retried_applied)),
    (4, format('acknowledged successes sent again: %s, other answer: %s, ledger rows written: %s',
               :replayed, :replay_differ, :replay_written)),
    (5, format('unacknowledged calls: %s (found applied: %s), sent again: %s (answered 00000: %s); calls doubled after: %s',
               :unacked, :unacked_found, :unacked_sent, :unacked_ok, :doubled_after)),
    (6, format('verify() rows: %s', :verify))) v (i, line)
ORDER BY v.i;
\echo FIGURES acked=:acked lost=:lost doubled=:doubled phantom=:phantom retried=:retried retried_found=:retried_found retried_applied=:retried_applied replayed=:replayed replay_differ=:replay_differ replay_written=:replay_written unacked=:unacked unacked_found=:unacked_found unacked_ok=:unacked_ok doubled_after=:doubled_after verify=:verify
