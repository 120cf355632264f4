-- The call shapes operations.md recommends on Citus, from the coordinator
-- inside one transaction, on members of both workers: a top-level call,
-- calls over generate_series, over unnest of an array and over a local
-- staging table (also one filled from a distributed table), SELECT * FROM
-- balance(), and the bulk API over a set taken from a distributed table:
-- earn_batch with the array_agg of loyalty.members in its arguments (one
-- row, not a set: a set-returning function fails there) and the same arrays
-- through a CTE and LATERAL.  Calling a distributed function over VALUES, a
-- subquery or a CTE is not here: it ends the coordinator.
-- Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(15);

SELECT loyalty.create_program('tap-shapes') AS p \gset
CREATE TEMP TABLE staged AS SELECT loyalty.enroll(:p, 'app', 'shape-' || g) AS m FROM generate_series(1, 8) g;
SELECT min(m) AS m1 FROM staged \gset
SELECT count(DISTINCT n.nodeport) AS nodes FROM staged s
JOIN pg_dist_placement pl ON pl.shardid = get_shard_id_for_distribution_column('loyalty.members', s.m)
JOIN pg_dist_node n USING (groupid) \gset
SELECT is(:nodes::bigint, 2::bigint, 'the eight members are on both workers');

-- (values are read first: a statement on one member's rows runs on its
-- worker, where pgTAP has no plan)
SELECT loyalty.earn(:m1, 10, reference => 'top') AS top \gset
SELECT is(:top::bigint, 10::bigint, 'a top-level call');
SELECT available::bigint AS avail FROM loyalty.balance(:m1) \gset
SELECT is(:avail::bigint, 10::bigint, 'SELECT * FROM loyalty.balance(member)');
SELECT count(loyalty.earn(:m1, 1, reference => 'gs-' || g)) AS n FROM generate_series(1, 3) g \gset
SELECT is(:n::bigint, 3::bigint, 'calls over generate_series');
SELECT array_agg(m) AS ms FROM staged \gset
SELECT count(loyalty.earn(m, 2, reference => 'un-' || m)) AS n FROM unnest(:'ms'::bigint[]) m \gset
SELECT is(:n::bigint, 8::bigint, 'calls over unnest of an array');
SELECT count(loyalty.earn(m, 5, reference => 'st-' || m)) AS n FROM staged \gset
SELECT is(:n::bigint, 8::bigint, 'calls over a local staging table, one per member');
SELECT sum(b.available)::bigint AS total FROM staged s CROSS JOIN LATERAL loyalty.balance(s.m) b \gset
SELECT is(:total::bigint, 69::bigint, '... and balance() over it: 10 + 3 + 8 * (2 + 5)');

-- a set from a distributed table, staged locally first
CREATE TEMP TABLE chosen AS SELECT member_id AS m FROM loyalty.members WHERE program_id = :p AND member_id <> :m1;
SELECT count(loyalty.award(m, 4, 'shape-award')) AS n FROM chosen \gset
SELECT is(:n::bigint, 7::bigint, 'awards over members staged from loyalty.members');

-- the bulk API, its arrays aggregated from loyalty.members (every array in the same order)
SELECT (loyalty.earn_batch(array_agg(member_id ORDER BY member_id), array_agg(6::numeric ORDER BY member_id),
                           array_agg('ab-' || member_id ORDER BY member_id)))::text AS r
FROM loyalty.members WHERE program_id = :p \gset
SELECT is(:'r'::text, '(8,8,0,0,48)', 'earn_batch over the array_agg of loyalty.members: one row');
SELECT (loyalty.earn_batch(array_agg(member_id ORDER BY member_id), array_agg(6::numeric ORDER BY member_id),
                           array_agg('ab-' || member_id ORDER BY member_id)))::text AS r
FROM loyalty.members WHERE program_id = :p \gset
SELECT is(:'r'::text, '(8,0,8,0,0)', '... replayed: nothing written twice');
WITH x AS (SELECT array_agg(member_id ORDER BY member_id) AS ms FROM loyalty.members WHERE program_id = :p)
SELECT (b.orders, b.earned, b.points)::text AS r
FROM x CROSS JOIN LATERAL loyalty.earn_batch(x.ms, array_fill(3::numeric, ARRAY[cardinality(x.ms)]),
                                             ARRAY(SELECT 'lat-' || u FROM unnest(x.ms) u)) b \gset
SELECT is(:'r'::text, '(8,8,24)', 'earn_batch through a CTE and LATERAL');

SELECT count(*) AS n, count(DISTINCT member_id) AS members, sum(points::bigint) AS pts FROM loyalty.ledger
WHERE program_id = :p AND kind = 'earn' AND reference LIKE 'ab-%' \gset
SELECT is(:n::bigint || ' ' || :members || ' ' || :pts, '8 8 48', 'one entry per member for the batch, on each member''s shard');
SELECT count(*) AS n FROM loyalty.events e JOIN staged s ON s.m = e.member_id WHERE e.kind = 'points.earned' \gset
SELECT is(:n::bigint, 36::bigint, 'a points.earned event for each earn (1 + 3 + 8 + 8 + 8 + 8)');
SELECT sum(balance::bigint) AS total FROM loyalty.accounts WHERE program_id = :p \gset
SELECT is(:total::bigint, 69 + 28 + 48 + 24::bigint, 'the balances add up: 69 + 7 * 4 + 48 + 24');
SELECT count(*) AS v FROM loyalty.verify() \gset
SELECT is(:v::bigint, 0::bigint, 'verify() finds nothing');

SELECT * FROM finish();
ROLLBACK;
