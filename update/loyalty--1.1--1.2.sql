-- loyalty 1.1 -> 1.2 (ALTER EXTENSION loyalty UPDATE TO '1.2')
\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.2'" to load this file. \quit

-- == write path (issue 3) =====================================================

-- Room on each accounts page for HOT updates.  Rows already stored keep their
-- pages until the table is rewritten (VACUUM FULL or CLUSTER, at a quiet time).
ALTER TABLE loyalty.accounts SET (fillfactor = 70);


-- == Citus (issue 8) ==========================================================
-- Functions whose queries take parameters are PL/pgSQL instead of SQL: Citus
-- cannot plan a parameterised statement of an SQL-language function on
-- distributed tables ("could not create distributed plan").  Same queries,
-- same results; the member is checked once, so the queries filter by a
-- constant that Citus routes to one shard.
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
    RETURN QUERY
    WITH l AS (
        SELECT
            sum(remaining::bigint) FILTER (WHERE vests_at <= now() AND (expires_at IS NULL OR expires_at > now())) AS avail,
            sum(remaining::bigint) FILTER (WHERE vests_at > now() AND (expires_at IS NULL OR expires_at > now())) AS pending,
            sum(remaining::bigint) FILTER (WHERE expires_at <= now()) AS expired,
            min(expires_at) FILTER (WHERE vests_at <= now() AND expires_at > now()) AS next_expiry
        FROM loyalty.lots
        WHERE lots.member_id = v_member AND remaining OPERATOR(loyalty.>) '0'::loyalty.points
    ), h AS (
        SELECT sum(h.points::bigint) AS points,
               sum((SELECT sum(al.points::bigint - al.returned::bigint)
                    FROM loyalty.allocations al JOIN loyalty.lots lo
                      ON lo.member_id = al.member_id AND lo.lot_id = al.lot_id
                    WHERE al.member_id = h.member_id AND al.entry_id = h.entry_id
                      AND lo.vests_at <= now() AND (lo.expires_at IS NULL OR lo.expires_at > now()))) AS back
        FROM loyalty.holds h
        WHERE h.member_id = $1 AND h.status = 'active' AND h.expires_at <= now()
    )
    SELECT a.member_id,
           greatest(coalesce(l.avail, 0) + coalesce(h.back, 0) - a.debt::bigint, 0)::loyalty.points,
           coalesce(l.pending, 0)::loyalty.points,
           (a.held::bigint - coalesce(h.points, 0))::loyalty.points,
           coalesce(l.expired, 0)::loyalty.points,
           a.debt, a.balance, a.lifetime_earned, a.lifetime_redeemed, a.lifetime_expired,
           l.next_expiry,
           coalesce((SELECT sum(x.remaining::bigint) FROM loyalty.lots x
                     WHERE x.member_id = $1 AND x.expires_at = l.next_expiry
                       AND x.remaining OPERATOR(loyalty.>) '0'::loyalty.points AND x.vests_at <= now()), 0)::loyalty.points,
           now()
    FROM loyalty.accounts a, l, h
    WHERE a.member_id = $1;
END $$;

CREATE OR REPLACE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS loyalty.points
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT coalesce(sum(l.points::bigint), 0)::loyalty.points
    FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.created_at <= $2);
END $$;

CREATE OR REPLACE FUNCTION loyalty.history(member bigint, since timestamptz DEFAULT '-infinity', max_rows integer DEFAULT 1000)
RETURNS SETOF loyalty.ledger
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN QUERY
    SELECT * FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.created_at >= coalesce($2, '-infinity')
    ORDER BY l.created_at DESC, l.entry_id DESC
    LIMIT coalesce($3, 1000);
END $$;

CREATE OR REPLACE FUNCTION loyalty.earn_explanation(member bigint, entry bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT coalesce(l.details, jsonb_build_object('earn_base', l.amount, 'points', l.points::bigint, 'rules', '[]'::jsonb))
    FROM loyalty.ledger l
    WHERE l.member_id = v_member AND l.entry_id = $2 AND l.kind = 'earn');
END $$;

CREATE OR REPLACE FUNCTION loyalty.tier_window_start(member bigint, as_of timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT CASE p.tier_window
        WHEN 'rolling' THEN $2 - make_interval(months => p.tier_window_months)
        WHEN 'calendar' THEN
            ((date_trunc('year', $2 AT TIME ZONE p.time_zone)
              + make_interval(months => ((extract(month FROM $2 AT TIME ZONE p.time_zone)::integer - 1)
                                          / p.tier_window_months) * p.tier_window_months))
             AT TIME ZONE p.time_zone)
        ELSE (SELECT m.joined_at + make_interval(months => p.tier_window_months
                    * floor((extract(year FROM age($2, m.joined_at)) * 12 + extract(month FROM age($2, m.joined_at)))
                            / p.tier_window_months)::integer))
    END
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE m.member_id = v_member);
END $$;

CREATE OR REPLACE FUNCTION loyalty.tier_metric(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    WITH w AS (
        SELECT p.tier_metric AS metric, p.tier_window AS kind,
               loyalty.tier_window_start(v_member, coalesce($2, now())) AS start, coalesce($2, now()) AS stop
        FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
        WHERE m.member_id = $1
    ), e AS (
        SELECT l.occurred_at, coalesce(l.amount, 0) - coalesce(lo.reversed_amount, 0) AS spend,
               coalesce(lo.original::bigint, 0) - coalesce(lo.reversed::bigint, 0) AS points
        FROM w, loyalty.ledger l
        LEFT JOIN loyalty.lots lo ON lo.member_id = l.member_id AND lo.lot_id = l.entry_id
        WHERE l.member_id = $1 AND l.kind = 'earn' AND l.occurred_at <= w.stop
          AND (l.occurred_at > w.start OR (w.kind <> 'rolling' AND l.occurred_at = w.start))
    )
    SELECT CASE w.metric
        WHEN 'spend' THEN coalesce((SELECT sum(spend) FROM e), 0)
        WHEN 'points' THEN coalesce((SELECT sum(points) FROM e), 0)
        WHEN 'visits' THEN (SELECT count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date) FROM e WHERE spend > 0)
    END
    FROM w);
END $$;

CREATE OR REPLACE FUNCTION loyalty.qualified_tier(member bigint, as_of timestamptz DEFAULT NULL)
RETURNS loyalty.tier
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT loyalty.tier(t.rank, t.name)
    FROM loyalty.members m JOIN loyalty.tiers t ON t.program_id = m.program_id
    WHERE m.member_id = v_member AND NOT t.invitation_only AND t.threshold <= loyalty.tier_metric($1, $2)
    ORDER BY t.rank DESC LIMIT 1);
END $$;

CREATE OR REPLACE FUNCTION loyalty.tier_at(member bigint, at timestamptz)
RETURNS loyalty.tier
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- checked once, then a constant: Citus routes the query by it
    v_member bigint := loyalty.require_member($1);
BEGIN
    RETURN (
    SELECT h.to_tier FROM loyalty.tier_history h
    WHERE h.member_id = v_member AND h.changed_at <= $2
    ORDER BY h.changed_at DESC, h.change_id DESC LIMIT 1);
END $$;

CREATE OR REPLACE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
                                         time_unit text DEFAULT 'week')
RETURNS TABLE (member_id bigint, x bigint, t_x numeric, "T" numeric, m_x numeric, first_purchase date, last_purchase date)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH days AS (
        SELECT l.member_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, sum(l.amount) AS spend
        FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
        WHERE l.program_id = loyalty.require_program($1) AND l.kind = 'earn'
          AND (l.occurred_at AT TIME ZONE p.time_zone)::date <= $2
        GROUP BY 1, 2
    ), f AS (
        SELECT d.*, min(d.day) OVER (PARTITION BY d.member_id) AS first_day FROM days d
    )
    SELECT f.member_id, count(*) - 1,
           (max(f.day) - min(f.day))::numeric / u.days,
           ($2 - min(f.day))::numeric / u.days,
           avg(f.spend) FILTER (WHERE f.day > f.first_day),
           min(f.day), max(f.day)
    FROM f, (SELECT CASE $3 WHEN 'day' THEN 1 WHEN 'week' THEN 7 END AS days) u
    WHERE u.days IS NOT NULL
    GROUP BY f.member_id, u.days;
END $$;

-- loyalty.distribute() (src/sql/95_distribute.sql), as a fresh install has it.
-- ---------------------------------------------------------------------------
-- Scale-out on Citus (issue 8): loyalty.distribute() turns the extension's
-- tables into Citus tables on a coordinator and routes the member-first API
-- to the member's worker.  README.md, "Scale-out on Citus", is the manual.
-- ---------------------------------------------------------------------------
-- Citus is optional: this fragment only defines the function, so CREATE
-- EXTENSION loyalty works without it; without Citus the call fails with 55000
-- before changing anything.  On a coordinator (citus in
-- shared_preload_libraries, CREATE EXTENSION citus before loyalty, the workers
-- added) the extension owner runs it once, preferably before loading data:
--   SELECT * FROM loyalty.distribute();           -- or distribute(shard_count => 64)
--
-- What it does, in one transaction:
--   catalog tables (no member_id: programs, tiers, earning and activity rules,
--     rewards, redemption and referral rules, event kinds, program roles,
--     RFM segments, models) become reference tables, copied to every node;
--   per-member tables (member_id in every primary key and unique index:
--     members, accounts, ledger, lots, allocations, holds, idempotency keys,
--     events, activities, redemptions, referrals, tier history) are
--     distributed by member_id, co-located with loyalty.members, so a
--     member's rows are on one worker; a table with member_id and a unique
--     key without it is refused (42P16) before anything changes;
--   the two global lookups are keyed by what they are found by: identities
--     by external_id and referral codes by code (co-located with each other),
--     so enroll(), member_id() and refer() find a row with one shard lookup
--     and their unique keys still hold; the foreign key identities -> members
--     cannot be kept (two distributions), enroll() and link_identity() keep it;
--   foreign keys between loyalty tables are dropped first (Citus converts one
--     table at a time) and re-added afterwards, except identities -> members;
--   triggers (ledger_append_only and ledger_no_truncate on the ledger, the
--     rules-version bumps on earning_rules and tiers, program_roles_changed)
--     are allowed by citus.enable_unsafe_triggers for the conversion only;
--     they fire on the shard of the row: member-local for the ledger;
--   identity columns get a per-node range on the workers (group id << 48), as
--     Citus gives tables it creates itself, so ids never collide (and nothing
--     orders by them);
--   API functions whose first argument is the member (earn, award, redeem,
--     hold, reverse, adjust, balance, history, tiers, rewards, referrals...:
--     every SECURITY DEFINER function granted to loyalty_app or loyalty_admin
--     whose first argument is `member` or `new_member`) are registered with
--     create_distributed_function(..., '$1', colocate_with => members), and
--     member_id()/enroll() by '$3' co-located with identities: a top-level
--     SELECT f(<member>, ...) outside an explicit transaction block then runs
--     on the member's worker in one round trip.
-- Not routed (they run on the coordinator, which Citus routes statement by
-- statement): capture() and release() (a hold id), merge_members() (two
-- members), batch jobs, verify() and the views (all members), and any call
-- inside an explicit transaction block.

CREATE FUNCTION loyalty.distribute(shard_count integer DEFAULT NULL)
RETURNS TABLE (step text, object text, detail text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    -- global lookups: distributed by their lookup key, not by member
    c_lookup CONSTANT text[] := ARRAY['identities', 'referral_codes'];
    c_lookup_col CONSTANT text[] := ARRAY['external_id', 'code'];
    v_fks text[] := '{}';
    v_fk_tables text[] := '{}';
    v_fk_names text[] := '{}';
    r record;
    i integer;
    v_kind char;
    v_col text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'loyalty.distribute() needs the Citus extension, which is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'On the coordinator: shared_preload_libraries = ''citus'', CREATE EXTENSION citus, '
                         'add the workers with citus_add_node(), then SELECT * FROM loyalty.distribute().';
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'loyalty.distribute() must run on the Citus coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator; register it with citus_set_coordinator_host() if needed.';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user,
            (SELECT c.relowner FROM pg_catalog.pg_class c
             WHERE c.oid OPERATOR(pg_catalog.=) 'loyalty.accounts'::regclass), 'USAGE') THEN
        RAISE EXCEPTION 'loyalty.distribute() must be run by the owner of the loyalty tables'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect as the role that ran CREATE EXTENSION loyalty (usually a superuser).';
    END IF;
    IF shard_count IS NOT NULL AND (shard_count < 1 OR shard_count > 64000) THEN
        RAISE EXCEPTION 'shard_count must be between 1 and 64000, got %', shard_count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition d
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.logicalrelid
               WHERE c.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace) THEN
        RAISE EXCEPTION 'the loyalty tables are already Citus tables'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'loyalty.distribute() runs once per database; see pg_dist_partition.';
    END IF;

    -- Citus converts one table at a time and refuses foreign keys from local
    -- tables to converted ones, and converting a table needs sequential DDL
    -- when reference tables are created in the same transaction.
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);

    -- Each table's role, checked before anything changes: a per-member table
    -- must have member_id in every unique index (the design's rule); anything
    -- else with member_id must be a known global lookup.
    CREATE TEMP TABLE loyalty_dist_plan (relid oid PRIMARY KEY, relname text, kind char, col text) ON COMMIT DROP;
    FOR r IN
        SELECT c.oid, c.relname,
               EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
                       AND a.attname OPERATOR(pg_catalog.=) 'member_id' AND NOT a.attisdropped) AS has_member,
               (SELECT pg_catalog.string_agg(x.indexrelid::regclass::text, ', ')
                FROM pg_catalog.pg_index x
                WHERE x.indrelid OPERATOR(pg_catalog.=) c.oid AND x.indisunique
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                                  WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
                                    AND a.attname OPERATOR(pg_catalog.=) 'member_id'
                                    AND a.attnum OPERATOR(pg_catalog.=) ANY (x.indkey::int2[]))) AS bad_keys
        FROM pg_catalog.pg_class c
        WHERE c.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::char[])
          AND NOT c.relispartition
        ORDER BY c.relname
    LOOP
        i := pg_catalog.array_position(c_lookup, r.relname::text);
        IF i IS NOT NULL THEN
            v_kind := 'l';
            v_col := c_lookup_col[i];
        ELSIF NOT r.has_member THEN
            v_kind := 'r';
            v_col := NULL;
        ELSIF r.bad_keys IS NULL THEN
            v_kind := 'd';
            v_col := 'member_id';
        ELSE
            RAISE EXCEPTION 'table loyalty.% has member_id but unique keys without it (%)', r.relname, r.bad_keys
                USING ERRCODE = 'invalid_table_definition',
                      HINT = 'Per-member tables need member_id in every primary key and unique index to be distributed by member.';
        END IF;
        INSERT INTO loyalty_dist_plan VALUES (r.oid, r.relname, v_kind, v_col);
    END LOOP;

    -- 1. drop the foreign keys between loyalty tables, remembering them
    FOR r IN
        SELECT k.conname, k.conrelid::regclass::text AS tab, pg_catalog.pg_get_constraintdef(k.oid) AS def
        FROM pg_catalog.pg_constraint k
        JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) k.conrelid
        JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) k.confrelid
        WHERE k.contype OPERATOR(pg_catalog.=) 'f'
          AND s.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND t.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
        ORDER BY 2, 1
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', r.tab, r.conname);
        -- CREATE EXTENSION was propagated, so the workers' copies of the
        -- still-local tables have the key too, and re-adding it below is
        -- propagated to them (run_command_on_workers commits on its own:
        -- if this call fails later, the workers' copies simply lack the key
        -- until the next attempt adds it)
        PERFORM pg_catalog.run_command_on_workers(
            pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.tab, r.conname));
        v_fk_tables := v_fk_tables OPERATOR(pg_catalog.||) r.tab;
        v_fk_names := v_fk_names OPERATOR(pg_catalog.||) r.conname::text;
        v_fks := v_fks OPERATOR(pg_catalog.||) r.def;
        step := 'drop foreign key'; object := r.tab; detail := r.conname; RETURN NEXT;
    END LOOP;

    -- 2. reference tables (programs first: everything else points at it)
    FOR r IN SELECT p.relid, p.relname FROM loyalty_dist_plan p WHERE p.kind OPERATOR(pg_catalog.=) 'r'
             ORDER BY p.relname OPERATOR(pg_catalog.<>) 'programs', p.relname
    LOOP
        PERFORM pg_catalog.create_reference_table(r.relid::regclass);
        -- the rows were copied to the shards; the coordinator's own copy is dead
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(r.relid::regclass);
        step := 'reference table'; object := r.relid::regclass::text; detail := NULL; RETURN NEXT;
    END LOOP;

    -- 3. per-member tables by member_id, co-located with members
    PERFORM pg_catalog.create_distributed_table('loyalty.members'::regclass, 'member_id',
        colocate_with => 'none', shard_count => shard_count);
    step := 'distributed table'; object := 'loyalty.members'; detail := 'by member_id'; RETURN NEXT;
    FOR r IN SELECT p.relid FROM loyalty_dist_plan p
             WHERE p.kind OPERATOR(pg_catalog.=) 'd' AND p.relname OPERATOR(pg_catalog.<>) 'members'
             ORDER BY p.relname
    LOOP
        PERFORM pg_catalog.create_distributed_table(r.relid::regclass, 'member_id', colocate_with => 'loyalty.members');
        step := 'distributed table'; object := r.relid::regclass::text; detail := 'by member_id, co-located with loyalty.members'; RETURN NEXT;
    END LOOP;

    -- 4. the global lookups, by their lookup key, co-located with each other
    FOR r IN SELECT p.relid, p.col, pg_catalog.array_position(c_lookup, p.relname) AS n
             FROM loyalty_dist_plan p WHERE p.kind OPERATOR(pg_catalog.=) 'l' ORDER BY 3
    LOOP
        IF r.n OPERATOR(pg_catalog.=) 1 THEN
            PERFORM pg_catalog.create_distributed_table(r.relid::regclass, r.col,
                colocate_with => 'none', shard_count => shard_count);
        ELSE
            PERFORM pg_catalog.create_distributed_table(r.relid::regclass, r.col,
                colocate_with => 'loyalty.' OPERATOR(pg_catalog.||) c_lookup[1]);
        END IF;
        step := 'distributed table'; object := r.relid::regclass::text; detail := 'by ' OPERATOR(pg_catalog.||) r.col; RETURN NEXT;
    END LOOP;

    -- 5. the foreign keys again, where Citus can enforce them: to a reference
    --    table, or between co-located tables on member_id
    FOR i IN 1 .. pg_catalog.array_length(v_fks, 1) LOOP
        IF v_fk_tables[i] OPERATOR(pg_catalog.=) 'loyalty.identities' AND v_fks[i] OPERATOR(pg_catalog.~) 'REFERENCES loyalty\.members\M' THEN
            step := 'foreign key not re-added'; object := v_fk_tables[i];
            detail := v_fk_names[i] OPERATOR(pg_catalog.||) ' (identities are distributed by external_id, members by member_id)';
            RETURN NEXT;
            CONTINUE;
        END IF;
        EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_fk_tables[i], v_fk_names[i], v_fks[i]);
        step := 'foreign key'; object := v_fk_tables[i]; detail := v_fk_names[i]; RETURN NEXT;
    END LOOP;

    -- 6. identity columns on the workers: the tables' copies there came from
    --    CREATE EXTENSION, so their sequences all start at 1 and two workers
    --    would hand out the same entry, hold and event ids; Citus gives each
    --    node its own range (group id << 48) as it does for tables it creates
    FOR r IN
        SELECT DISTINCT c.oid::regclass::text AS tab
        FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
        WHERE c.relnamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::char[])
          AND a.attidentity OPERATOR(pg_catalog.<>) '' AND NOT a.attisdropped
        ORDER BY 1
    LOOP
        SELECT pg_catalog.string_agg(w.nodename OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) w.nodeport
                                     OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) w.result, '; ')
        INTO v_col
        FROM pg_catalog.run_command_on_workers(pg_catalog.format(
            'SELECT pg_catalog.worker_adjust_identity_column_seq_ranges(%L::regclass)', r.tab)) w
        WHERE NOT w.success;
        IF v_col IS NOT NULL THEN
            RAISE EXCEPTION 'could not give the workers their own id range for %: %', r.tab, v_col
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        step := 'identity range on workers'; object := r.tab; detail := NULL; RETURN NEXT;
    END LOOP;

    -- 7. the member-first API, routed by its member argument
    FOR r IN
        SELECT p.oid::regprocedure AS f
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace OPERATOR(pg_catalog.=) 'loyalty'::regnamespace
          AND p.prokind OPERATOR(pg_catalog.=) ANY (ARRAY['f', 'p']::char[])
          AND p.prosecdef
          AND p.pronargs OPERATOR(pg_catalog.>=) 1
          AND p.proargtypes[0] OPERATOR(pg_catalog.=) 'bigint'::regtype
          AND p.proargnames[1] OPERATOR(pg_catalog.=) ANY (ARRAY['member', 'new_member'])
          AND (pg_catalog.has_function_privilege('loyalty_app', p.oid, 'EXECUTE')
               OR pg_catalog.has_function_privilege('loyalty_admin', p.oid, 'EXECUTE'))
        ORDER BY p.oid::regprocedure::text
    LOOP
        PERFORM pg_catalog.create_distributed_function(r.f, '$1', colocate_with => 'loyalty.members');
        step := 'distributed function'; object := r.f::text; detail := 'by $1, co-located with loyalty.members'; RETURN NEXT;
    END LOOP;
    -- identity lookups run on the identity's worker
    FOR r IN SELECT unnest(ARRAY['loyalty.member_id(bigint, text, text)',
                                 'loyalty.enroll(bigint, text, text, timestamptz, text, text, date, text)'])::regprocedure AS f
    LOOP
        PERFORM pg_catalog.create_distributed_function(r.f, '$3', colocate_with => 'loyalty.identities');
        step := 'distributed function'; object := r.f::text; detail := 'by $3 (external_id), co-located with loyalty.identities'; RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.distribute(integer) IS
    'Admin, once, on a Citus coordinator: catalog tables become reference tables, per-member tables are distributed by member_id (co-located), identities and referral codes by their lookup key, workers get their own identity ranges, and the member-first API is routed to the member''s worker; fails with 55000 (changing nothing) without Citus';

REVOKE ALL ON FUNCTION loyalty.distribute(integer) FROM PUBLIC;

-- == partitioning (issue 8) ==================================================

-- the archive horizon (30_ledger.sql)
CREATE TABLE loyalty.ledger_partitioning (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    period          interval NOT NULL,
    partitioned_at  timestamptz NOT NULL DEFAULT now(),
    archived_before timestamptz
);
COMMENT ON TABLE loyalty.ledger_partitioning IS 'Partitioning of loyalty.ledger by created_at (set by loyalty.partition_ledger) and its archive horizon';
COMMENT ON COLUMN loyalty.ledger_partitioning.period IS 'Range of created_at one partition holds (whole months or whole days, aligned in UTC)';
COMMENT ON COLUMN loyalty.ledger_partitioning.archived_before IS 'Archive horizon: entries recorded before it were summed into carry_forward entries and detached by loyalty.archive_ledger';
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_partitioning', '');
GRANT SELECT ON loyalty.ledger_partitioning TO loyalty_admin;

-- balance_at() refuses a time before the archive horizon; verify() knows
-- carry_forward entries and the lots whose entries were archived (40_api.sql)
CREATE OR REPLACE FUNCTION loyalty.balance_at(member bigint, at timestamptz)
RETURNS loyalty.points
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_member bigint := loyalty.require_member(balance_at.member);
    v_horizon timestamptz;
BEGIN
    -- before the archive horizon the entries are gone: no answer is better
    -- than a wrong one
    SELECT p.archived_before INTO v_horizon FROM loyalty.ledger_partitioning p;
    IF at OPERATOR(pg_catalog.<) v_horizon THEN
        RAISE EXCEPTION 'the ledger before % is archived', v_horizon
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('loyalty.archive_ledger() summed the entries recorded before %s into carry_forward entries.', v_horizon),
                  HINT = 'Ask for a time at or after the archive horizon (loyalty.ledger_partitioning.archived_before), or read the archived partitions.';
    END IF;
    RETURN (SELECT coalesce(pg_catalog.sum(l.points::bigint), 0)::loyalty.points
            FROM loyalty.ledger l
            WHERE l.member_id OPERATOR(pg_catalog.=) v_member
              AND l.created_at OPERATOR(pg_catalog.<=) balance_at.at);
END $$;
CREATE OR REPLACE FUNCTION loyalty.verify()
RETURNS TABLE (invariant text, member_id bigint, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- partitioning, retention and restore of a partitioned ledger (85_partitioning.sql)
-- Internal: statements a restore still owes the partitioned ledger.
CREATE TABLE loyalty.ledger_pending_ddl (
    seq     integer PRIMARY KEY,
    ddl     text NOT NULL
);
COMMENT ON TABLE loyalty.ledger_pending_ddl IS 'Internal: index definitions of the partitioned ledger still to create during a restore (empty otherwise)';

-- Internal: the start of the partition period holding t.  Periods are whole
-- months (from January 2000) or whole days (from Monday 3 January 2000), in
-- UTC, so partitions of '1 month', '3 months', '1 year', '1 day' or '7 days'
-- start where one expects.
CREATE FUNCTION loyalty.ledger_period_start(t timestamptz, period interval)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_months integer := (pg_catalog.date_part('year', period) * 12 + pg_catalog.date_part('month', period))::integer;
    v_days integer := pg_catalog.date_part('day', period)::integer;
    v_utc timestamp := t AT TIME ZONE 'UTC';
    v_k bigint;
BEGIN
    IF v_months > 0 THEN
        v_k := (pg_catalog.date_part('year', v_utc)::integer - 2000) * 12 + pg_catalog.date_part('month', v_utc)::integer - 1;
        v_k := pg_catalog.floor(v_k::numeric / v_months)::bigint * v_months;
        RETURN ('2000-01-01'::timestamp + pg_catalog.make_interval(months => v_k::integer)) AT TIME ZONE 'UTC';
    END IF;
    v_k := pg_catalog.floor(pg_catalog.date_part('epoch', v_utc - '2000-01-03'::timestamp)::numeric / 86400)::bigint;
    v_k := pg_catalog.floor(v_k::numeric / v_days)::bigint * v_days;
    RETURN ('2000-01-03'::timestamp + pg_catalog.make_interval(days => v_k::integer)) AT TIME ZONE 'UTC';
END $$;
COMMENT ON FUNCTION loyalty.ledger_period_start(timestamptz, interval) IS
    'Internal: start (UTC-aligned) of the ledger partition period that holds a time';

-- Internal: the partitions of the ledger and their bounds.
CREATE FUNCTION loyalty.ledger_partitions()
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz, is_default boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::regclass,
           (regexp_match(b.bound, 'FROM \(''([^'']*)''\)'))[1]::timestamptz,
           (regexp_match(b.bound, 'TO \(''([^'']*)''\)'))[1]::timestamptz,
           b.bound = 'DEFAULT'
    FROM pg_catalog.pg_inherits i
    JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound) b
    WHERE i.inhparent = 'loyalty.ledger'::regclass
    ORDER BY 4, 2
$$;
COMMENT ON FUNCTION loyalty.ledger_partitions() IS
    'The partitions of loyalty.ledger with their created_at bounds (lower inclusive, upper exclusive); the DEFAULT partition last';

-- Internal: what every ledger partition carries besides the parent's cloned
-- row triggers: the TRUNCATE refusal (statement triggers are not cloned) and
-- the parent's row-level security, for whoever is ever given the partition.
CREATE FUNCTION loyalty.ledger_partition_setup(part regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_pol record;
BEGIN
    EXECUTE format('CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION loyalty.ledger_refuse_change()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', part);
    FOR v_pol IN SELECT p.policyname, p.permissive, p.roles, p.cmd, p.qual, p.with_check
                 FROM pg_catalog.pg_policies p
                 WHERE p.schemaname = 'loyalty' AND p.tablename = 'ledger' LOOP
        EXECUTE format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', v_pol.policyname, part,
                       v_pol.permissive, v_pol.cmd,
                       (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ')
                        FROM unnest(v_pol.roles) r),
                       CASE WHEN v_pol.qual IS NOT NULL THEN ' USING (' || v_pol.qual || ')' ELSE '' END,
                       CASE WHEN v_pol.with_check IS NOT NULL THEN ' WITH CHECK (' || v_pol.with_check || ')' ELSE '' END);
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.ledger_partition_setup(regclass) IS
    'Internal: give a new ledger partition the TRUNCATE refusal and the parent''s row-level security';

-- Internal: create and attach one partition [start, stop) (or the DEFAULT
-- one when start is NULL).  Created apart and attached, which locks the
-- parent only in SHARE UPDATE EXCLUSIVE mode (writers go on).  Rows the
-- DEFAULT partition holds for the new range move into it first.  Returns
-- false when a partition already covers part of the range.
CREATE FUNCTION loyalty.ledger_add_partition(start timestamptz, stop timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text := CASE WHEN start IS NULL THEN 'ledger_default'
                        ELSE 'ledger_p' || to_char(start AT TIME ZONE 'UTC', 'YYYYMMDD') END;
    v_default regclass;
    v_cols text;
    v_moved boolean := false;
BEGIN
    IF start IS NULL THEN
        IF EXISTS (SELECT 1 FROM loyalty.ledger_partitions() p WHERE p.is_default) THEN
            RETURN false;
        END IF;
    ELSIF EXISTS (SELECT 1 FROM loyalty.ledger_partitions() p
                  WHERE NOT p.is_default AND p.lower_bound < stop AND p.upper_bound > start) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE loyalty.%I (LIKE loyalty.ledger INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING STORAGE INCLUDING COMPRESSION)', v_name);
    PERFORM loyalty.ledger_partition_setup(format('loyalty.%I', v_name)::regclass);
    IF start IS NULL THEN
        EXECUTE format('ALTER TABLE loyalty.ledger ATTACH PARTITION loyalty.%I DEFAULT', v_name);
        RETURN true;
    END IF;

    SELECT p.partition INTO v_default FROM loyalty.ledger_partitions() p WHERE p.is_default;
    IF v_default IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE created_at >= %L AND created_at < %L)',
                       v_default, start, stop) INTO v_moved;
    END IF;
    IF v_moved THEN
        -- the rows move as they are (ids, times); the detached DEFAULT
        -- partition has lost the parent's append-only triggers meanwhile
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_cols
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = 'loyalty.ledger'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
        EXECUTE format('ALTER TABLE loyalty.ledger DETACH PARTITION %s', v_default);
        EXECUTE format('INSERT INTO loyalty.%I (%s) SELECT %s FROM %s WHERE created_at >= %L AND created_at < %L',
                       v_name, v_cols, v_cols, v_default, start, stop);
        EXECUTE format('DELETE FROM %s WHERE created_at >= %L AND created_at < %L', v_default, start, stop);
    END IF;
    EXECUTE format('ALTER TABLE loyalty.ledger ATTACH PARTITION loyalty.%I FOR VALUES FROM (%L) TO (%L)',
                   v_name, start, stop);
    IF v_moved THEN
        EXECUTE format('ALTER TABLE loyalty.ledger ATTACH PARTITION %s DEFAULT', v_default);
    END IF;
    RETURN true;
END $$;
COMMENT ON FUNCTION loyalty.ledger_add_partition(timestamptz, timestamptz) IS
    'Internal: create and attach one ledger partition (NULL start: the DEFAULT one), moving rows the DEFAULT partition holds for its range';

-- Internal: replace the plain ledger by a partitioned one.  restore: during a
-- restore (called by the event trigger below): no data, no partitions, and
-- the parent's indexes are left to ledger_restore_indexes().
CREATE FUNCTION loyalty.ledger_convert(period interval, ahead integer, restore boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old oid := 'loyalty.ledger'::regclass;
    v_ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'loyalty');
    v_seq regclass := pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id')::regclass;
    v_seq_name text;
    v_in_config boolean;
    v_last bigint;
    v_called boolean;
    v_pk text;
    v_indexes text[];
    v_triggers text[];
    v_views record;
    v_view_defs text[] := '{}';
    v_funcs text[] := '{}';
    v_func_sigs text[] := '{}';
    v_func_comments text[] := '{}';
    v_f record;
    v_acl record;
    v_pol record;
    v_comment text;
    v_sql text;
    v_rls boolean;
    v_force boolean;
    v_start timestamptz;
    v_stop timestamptz;
    v_rows bigint := 0;
    v_i integer;
BEGIN
    LOCK TABLE loyalty.ledger IN ACCESS EXCLUSIVE MODE;
    SELECT c.relrowsecurity, c.relforcerowsecurity, pg_catalog.obj_description(c.oid, 'pg_class')
    INTO v_rls, v_force, v_comment
    FROM pg_catalog.pg_class c WHERE c.oid = v_old;
    SELECT s.relname INTO v_seq_name FROM pg_catalog.pg_class s WHERE s.oid = v_seq;
    SELECT v_old = ANY (e.extconfig) INTO v_in_config FROM pg_catalog.pg_extension e WHERE e.oid = v_ext;
    EXECUTE format('SELECT last_value, is_called FROM %s', v_seq) INTO v_last, v_called;

    -- everything that names the table by OID, read while it is still
    -- called loyalty.ledger: indexes, triggers, views, functions of its type
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n) INTO v_pk
    FROM pg_catalog.pg_index i
    CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = v_old AND i.indisprimary;
    IF v_pk !~ '(^|, )created_at(,|$)' THEN
        v_pk := v_pk || ', created_at';
    END IF;
    SELECT coalesce(array_agg(pg_catalog.pg_get_indexdef(i.indexrelid) ORDER BY i.indexrelid), '{}') INTO v_indexes
    FROM pg_catalog.pg_index i WHERE i.indrelid = v_old AND NOT i.indisprimary;
    SELECT coalesce(array_agg(pg_catalog.pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}') INTO v_triggers
    FROM pg_catalog.pg_trigger t WHERE t.tgrelid = v_old AND NOT t.tgisinternal;
    FOR v_views IN
        SELECT DISTINCT r.ev_class, c.reloptions
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
        JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = v_old AND r.ev_class <> v_old
        ORDER BY r.ev_class
    LOOP
        v_view_defs := v_view_defs || format('CREATE OR REPLACE VIEW %s%s AS %s', v_views.ev_class::regclass,
            CASE WHEN v_views.reloptions IS NOT NULL
                 THEN ' WITH (' || array_to_string(v_views.reloptions, ', ') || ')' ELSE '' END,
            pg_catalog.pg_get_viewdef(v_views.ev_class));
    END LOOP;
    FOR v_f IN
        SELECT DISTINCT p.oid, p.proacl
        FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
        WHERE (d.refclassid = 'pg_type'::regclass AND d.refobjid IN (SELECT t.oid FROM pg_catalog.pg_type t
                                                                    WHERE t.typrelid = v_old
                                                                       OR t.typelem IN (SELECT t2.oid FROM pg_catalog.pg_type t2 WHERE t2.typrelid = v_old)))
           OR (d.refclassid = 'pg_class'::regclass AND d.refobjid = v_old)
        ORDER BY p.oid
    LOOP
        v_funcs := v_funcs || pg_catalog.pg_get_functiondef(v_f.oid);
        v_func_sigs := v_func_sigs || v_f.oid::regprocedure::text;
        v_func_comments := v_func_comments || pg_catalog.obj_description(v_f.oid, 'pg_proc');
    END LOOP;

    -- the old table steps aside, out of the extension
    EXECUTE 'ALTER TABLE loyalty.ledger RENAME TO ledger_unpartitioned';
    FOR v_f IN SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = v_old LOOP
        EXECUTE format('ALTER INDEX loyalty.%I RENAME TO %I', v_f.relname, v_f.relname || '_unpartitioned');
    END LOOP;
    EXECUTE format('ALTER SEQUENCE %s RENAME TO %I', v_seq, v_seq_name || '_unpartitioned');
    EXECUTE 'ALTER EXTENSION loyalty DROP TABLE loyalty.ledger_unpartitioned';
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = v_seq
               AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = v_ext AND d.deptype = 'e') THEN
        EXECUTE format('ALTER EXTENSION loyalty DROP SEQUENCE %s', v_seq);
    END IF;

    -- the partitioned table, with the same columns, identity, comments
    EXECUTE 'CREATE TABLE loyalty.ledger (LIKE loyalty.ledger_unpartitioned INCLUDING DEFAULTS INCLUDING IDENTITY'
            ' INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS)'
            ' PARTITION BY RANGE (created_at)';
    SELECT s.relname INTO v_sql FROM pg_catalog.pg_class s
    WHERE s.oid = pg_catalog.pg_get_serial_sequence('loyalty.ledger', 'entry_id')::regclass;
    IF v_sql <> v_seq_name THEN
        EXECUTE format('ALTER SEQUENCE loyalty.%I RENAME TO %I', v_sql, v_seq_name);
    END IF;
    PERFORM pg_catalog.setval(format('loyalty.%I', v_seq_name)::regclass, v_last, v_called);
    EXECUTE format('COMMENT ON TABLE loyalty.ledger IS %L', v_comment);
    FOR v_acl IN SELECT a.grantee, a.privilege_type, a.is_grantable
                 FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
                 WHERE c.oid = v_old AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON loyalty.ledger TO %s%s', v_acl.privilege_type,
                       CASE WHEN v_acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(v_acl.grantee)) END,
                       CASE WHEN v_acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    IF v_rls THEN
        EXECUTE 'ALTER TABLE loyalty.ledger ENABLE ROW LEVEL SECURITY';
    END IF;
    IF v_force THEN
        EXECUTE 'ALTER TABLE loyalty.ledger FORCE ROW LEVEL SECURITY';
    END IF;
    FOR v_pol IN SELECT p.policyname, p.permissive, p.roles, p.cmd, p.qual, p.with_check
                 FROM pg_catalog.pg_policies p
                 WHERE p.schemaname = 'loyalty' AND p.tablename = 'ledger_unpartitioned' LOOP
        EXECUTE format('CREATE POLICY %I ON loyalty.ledger AS %s FOR %s TO %s%s%s', v_pol.policyname,
                       v_pol.permissive, v_pol.cmd,
                       (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ')
                        FROM unnest(v_pol.roles) r),
                       CASE WHEN v_pol.qual IS NOT NULL THEN ' USING (' || v_pol.qual || ')' ELSE '' END,
                       CASE WHEN v_pol.with_check IS NOT NULL THEN ' WITH CHECK (' || v_pol.with_check || ')' ELSE '' END);
    END LOOP;
    EXECUTE 'ALTER EXTENSION loyalty ADD TABLE loyalty.ledger';
    EXECUTE format('ALTER EXTENSION loyalty ADD SEQUENCE loyalty.%I', v_seq_name);
    IF v_in_config THEN
        -- as pg_extension_config_dump() would (it works only in the
        -- extension's script): the rows are dumped from the partitions, the
        -- sequence's position from here
        UPDATE pg_catalog.pg_extension e
        SET extconfig = e.extconfig || ARRAY['loyalty.ledger'::regclass::oid, format('loyalty.%I', v_seq_name)::regclass::oid],
            extcondition = e.extcondition || ARRAY['', '']
        WHERE e.oid = v_ext;
    END IF;

    IF restore THEN
        -- the dump attaches partitions that bring their own indexes: the
        -- parent's are created (ONLY) when the dump attaches those
        v_i := 0;
        INSERT INTO loyalty.ledger_pending_ddl
        VALUES (0, format('ALTER TABLE ONLY loyalty.ledger ADD CONSTRAINT ledger_pkey PRIMARY KEY (%s)', v_pk));
        FOREACH v_sql IN ARRAY v_indexes LOOP
            v_i := v_i + 1;
            INSERT INTO loyalty.ledger_pending_ddl
            VALUES (v_i, replace(v_sql, ' ON loyalty.ledger USING ', ' ON ONLY loyalty.ledger USING '));
        END LOOP;
    ELSE
        -- partitions for the rows there are and `ahead` periods to come
        SELECT loyalty.ledger_period_start(coalesce(min(l.created_at), now()), period) INTO v_start
        FROM loyalty.ledger_unpartitioned l;
        PERFORM loyalty.ledger_add_partition(NULL, NULL);
        v_stop := ((loyalty.ledger_period_start(now(), period) AT TIME ZONE 'UTC') + period * (ahead + 1)) AT TIME ZONE 'UTC';
        WHILE v_start < v_stop LOOP
            PERFORM loyalty.ledger_add_partition(v_start, ((v_start AT TIME ZONE 'UTC') + period) AT TIME ZONE 'UTC');
            v_start := ((v_start AT TIME ZONE 'UTC') + period) AT TIME ZONE 'UTC';
        END LOOP;
        INSERT INTO loyalty.ledger OVERRIDING SYSTEM VALUE SELECT * FROM loyalty.ledger_unpartitioned;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        -- indexes after the rows: one sorted build per partition
        EXECUTE format('ALTER TABLE loyalty.ledger ADD CONSTRAINT ledger_pkey PRIMARY KEY (%s)', v_pk);
        FOREACH v_sql IN ARRAY v_indexes LOOP
            EXECUTE v_sql;
        END LOOP;
    END IF;
    FOREACH v_sql IN ARRAY v_triggers LOOP
        EXECUTE v_sql;
    END LOOP;

    -- views and functions follow the new table
    FOREACH v_sql IN ARRAY v_view_defs LOOP
        EXECUTE v_sql;
    END LOOP;
    FOR v_i IN 1 .. coalesce(array_length(v_funcs, 1), 0) LOOP
        SELECT p.oid, p.proacl, p.proowner, EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                          AND d.refobjid = v_ext AND d.deptype = 'e') AS member
        INTO v_f FROM pg_catalog.pg_proc p WHERE p.oid = v_func_sigs[v_i]::regprocedure;
        IF v_f.member THEN
            EXECUTE format('ALTER EXTENSION loyalty DROP FUNCTION %s', v_func_sigs[v_i]);
        END IF;
        EXECUTE format('DROP FUNCTION %s', v_func_sigs[v_i]);
        EXECUTE v_funcs[v_i];
        EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_func_sigs[v_i], v_func_comments[v_i]);
        IF v_f.proacl IS NOT NULL THEN
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_func_sigs[v_i]);
            FOR v_acl IN SELECT a.grantee, a.is_grantable FROM aclexplode(v_f.proacl) a
                         WHERE a.grantee <> v_f.proowner LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', v_func_sigs[v_i],
                               CASE WHEN v_acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(v_acl.grantee)) END,
                               CASE WHEN v_acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END IF;
        IF v_f.member THEN
            EXECUTE format('ALTER EXTENSION loyalty ADD FUNCTION %s', v_func_sigs[v_i]);
        END IF;
    END LOOP;

    EXECUTE 'DROP TABLE loyalty.ledger_unpartitioned';
    IF NOT restore THEN
        ANALYZE loyalty.ledger;
    END IF;
    RETURN v_rows;
END $$;
COMMENT ON FUNCTION loyalty.ledger_convert(interval, integer, boolean) IS
    'Internal: replace the plain ledger by a partitioned one with the same rows, identity, indexes, triggers, grants, policies, dependent views and functions';

CREATE FUNCTION loyalty.partition_ledger(period interval DEFAULT interval '1 month', ahead integer DEFAULT 3)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_months integer := (pg_catalog.date_part('year', period) * 12 + pg_catalog.date_part('month', period))::integer;
    v_days integer := pg_catalog.date_part('day', period)::integer;
    v_rows bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'loyalty.ledger'::regclass) = 'p' THEN
        RAISE EXCEPTION 'loyalty.ledger is already partitioned'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create partitions ahead with loyalty.create_ledger_partitions().';
    END IF;
    IF period IS NULL OR NOT ((v_months > 0 AND v_days = 0) OR (v_months = 0 AND v_days > 0))
       OR period <> pg_catalog.make_interval(months => v_months) + pg_catalog.make_interval(days => v_days) THEN
        RAISE EXCEPTION 'invalid partition period %', period
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use whole months (''1 month'', ''3 months'', ''1 year'') or whole days (''1 day'', ''7 days'').';
    END IF;
    IF ahead IS NULL OR ahead < 0 OR ahead > 120 THEN
        RAISE EXCEPTION 'ahead must be between 0 and 120 periods, not %', ahead USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_rows := loyalty.ledger_convert(period, ahead, false);
    DELETE FROM loyalty.ledger_partitioning;
    INSERT INTO loyalty.ledger_partitioning (period) VALUES (period);
    RETURN v_rows;
END $$;
COMMENT ON FUNCTION loyalty.partition_ledger(interval, integer) IS
    'Convert loyalty.ledger (with its rows) into a table partitioned by created_at in periods of whole months or days, with partitions for the existing rows, ahead periods to come and a DEFAULT partition; locks the ledger for the whole conversion; returns the rows moved';

CREATE FUNCTION loyalty.create_ledger_partitions(ahead integer DEFAULT 3, since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_period interval;
    v_start timestamptz;
    v_stop timestamptz;
    v_next timestamptz;
    v_made integer := 0;
BEGIN
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = 'loyalty.ledger'::regclass) <> 'p' THEN
        RAISE EXCEPTION 'loyalty.ledger is not partitioned'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Partition it first with loyalty.partition_ledger().';
    END IF;
    IF ahead IS NULL OR ahead < 0 OR ahead > 120 THEN
        RAISE EXCEPTION 'ahead must be between 0 and 120 periods, not %', ahead USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since > now() THEN
        RAISE EXCEPTION 'since (%) is in the future', since USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT p.period INTO v_period FROM loyalty.ledger_partitioning p;
    IF v_period IS NULL THEN
        RAISE EXCEPTION 'the partition period of loyalty.ledger is unknown'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'loyalty.ledger_partitioning has no row; insert the period the partitions use.';
    END IF;
    IF loyalty.ledger_add_partition(NULL, NULL) THEN
        v_made := v_made + 1;
    END IF;
    v_start := loyalty.ledger_period_start(coalesce(since, now()), v_period);
    v_stop := ((loyalty.ledger_period_start(now(), v_period) AT TIME ZONE 'UTC') + v_period * (ahead + 1)) AT TIME ZONE 'UTC';
    WHILE v_start < v_stop LOOP
        v_next := ((v_start AT TIME ZONE 'UTC') + v_period) AT TIME ZONE 'UTC';
        IF loyalty.ledger_add_partition(v_start, v_next) THEN
            v_made := v_made + 1;
        END IF;
        v_start := v_next;
    END LOOP;
    RETURN v_made;
END $$;
COMMENT ON FUNCTION loyalty.create_ledger_partitions(integer, timestamptz) IS
    'Create the ledger partitions missing from the current period (or from since, moving rows out of the DEFAULT partition) to ahead periods to come, and the DEFAULT partition; idempotent, for a daily pg_cron job; returns the partitions created';

CREATE FUNCTION loyalty.archive_ledger(before timestamptz, archive_schema text DEFAULT 'loyalty_archive')
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
    WHERE l.remaining OPERATOR(loyalty.>) '0'::loyalty.points AND l.created_at < v_horizon;
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
    END IF;
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
    UPDATE loyalty.ledger_partitioning p SET archived_before = v_horizon;
END $$;
COMMENT ON FUNCTION loyalty.archive_ledger(timestamptz, text) IS
    'Retire the ledger partitions that end at or before a time: one carry_forward entry per member keeps balances and held points, then the partitions are detached into archive_schema (NULL: dropped); refused while an open lot, active hold, tier window or DEFAULT-partition row needs them';

CREATE FUNCTION loyalty.purge_idempotency_keys(older_than interval DEFAULT interval '90 days')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '1 day' THEN
        RAISE EXCEPTION 'idempotency keys must be kept at least one day, not %', older_than
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM loyalty.idempotency_keys k WHERE k.created_at < now() - older_than;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.purge_idempotency_keys(interval) IS
    'Delete idempotency keys older than older_than (at least a day): a replay after that is a new call; returns the keys deleted';

CREATE FUNCTION loyalty.purge_events(older_than interval DEFAULT interval '30 days')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_n bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'invalid age %', older_than USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM loyalty.events e WHERE e.acked_at IS NOT NULL AND e.acked_at < now() - older_than;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END $$;
COMMENT ON FUNCTION loyalty.purge_events(interval) IS
    'Delete outbox events acknowledged more than older_than ago (pending ones stay); returns the events deleted';

-- Restore of a partitioned ledger (see the top of this file).  SECURITY
-- DEFINER: they fire for every user's DDL and read the extension's tables.
CREATE FUNCTION loyalty.ledger_restore_convert()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cmd record;
BEGIN
    -- A Citus node creates shards of the ledger (never restored as
    -- partitions there), and a query of loyalty.ledger from a shard's DDL is
    -- refused: look at nothing but the command unless it names a partition.
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        RETURN;
    END IF;
    FOR v_cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
        IF v_cmd.object_type = 'table' AND v_cmd.schema_name = 'loyalty'
           AND v_cmd.object_identity ~ '^loyalty\.ledger_(p[0-9]{8}|default)$' THEN
            IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('loyalty.ledger')) = 'r'
               AND NOT (SELECT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = v_cmd.objid)
               AND NOT EXISTS (SELECT 1 FROM loyalty.ledger) THEN
                PERFORM loyalty.ledger_convert(NULL, NULL, true);
                RETURN;
            END IF;
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.ledger_restore_convert() IS
    'Internal event trigger: when a restore creates a ledger partition while loyalty.ledger is still the plain, empty table of CREATE EXTENSION, partition it';

CREATE FUNCTION loyalty.ledger_restore_indexes()
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
    FOR v_ddl IN SELECT d.seq, d.ddl FROM loyalty.ledger_pending_ddl d ORDER BY d.seq LOOP
        EXECUTE v_ddl.ddl;
        DELETE FROM loyalty.ledger_pending_ddl d WHERE d.seq = v_ddl.seq;
    END LOOP;
END $$;
COMMENT ON FUNCTION loyalty.ledger_restore_indexes() IS
    'Internal event trigger: before a restore attaches the ledger partitions'' indexes, create the partitioned ledger''s own';

CREATE EVENT TRIGGER loyalty_ledger_restore_convert ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION loyalty.ledger_restore_convert();
CREATE EVENT TRIGGER loyalty_ledger_restore_indexes ON ddl_command_start
    WHEN TAG IN ('ALTER INDEX')
    EXECUTE FUNCTION loyalty.ledger_restore_indexes();

-- Administrators only.
REVOKE ALL ON FUNCTION
    loyalty.ledger_period_start(timestamptz, interval),
    loyalty.ledger_partitions(),
    loyalty.ledger_partition_setup(regclass),
    loyalty.ledger_add_partition(timestamptz, timestamptz),
    loyalty.ledger_convert(interval, integer, boolean),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval),
    loyalty.ledger_restore_convert(),
    loyalty.ledger_restore_indexes()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    loyalty.ledger_partitions(),
    loyalty.partition_ledger(interval, integer),
    loyalty.create_ledger_partitions(integer, timestamptz),
    loyalty.archive_ledger(timestamptz, text),
    loyalty.purge_idempotency_keys(interval),
    loyalty.purge_events(interval)
TO loyalty_admin;
GRANT SELECT ON loyalty.ledger_pending_ddl TO loyalty_admin;
