CREATE PROCEDURE loyalty.import_orders(
    source regclass, member_column text, amount_column text, reference_column text,
    occurred_at_column text DEFAULT NULL, channel_column text DEFAULT NULL,
    batch_size integer DEFAULT 1000, on_error text DEFAULT 'fail')
LANGUAGE plpgsql
AS $$
-- Commits as it goes (one transaction per batch of members), so it cannot
-- pin search_path; every name and operator is schema-qualified instead, and
-- it runs with the caller's rights (the caller reads the source).
DECLARE
    v_from bigint;
    v_upto bigint;
    v_step record;
    v_orders bigint := 0;
    v_earned bigint := 0;
    v_replayed bigint := 0;
    v_rejected bigint := 0;
    v_points bigint := 0;
    v_m text := pg_catalog.quote_ident(member_column);
    v_o text := CASE WHEN occurred_at_column IS NULL THEN 'NULL::pg_catalog.timestamptz'
                     ELSE 's.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(occurred_at_column)
                          OPERATOR(pg_catalog.||) '::pg_catalog.timestamptz' END;
    v_c text := CASE WHEN channel_column IS NULL THEN 'NULL::pg_catalog.text'
                     ELSE 's.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(channel_column)
                          OPERATOR(pg_catalog.||) '::pg_catalog.text' END;
BEGIN
    IF source IS NULL OR member_column IS NULL OR amount_column IS NULL OR reference_column IS NULL THEN
        RAISE EXCEPTION 'source and the member, amount and reference columns must be given'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF on_error IS NULL OR on_error OPERATOR(pg_catalog.<>) ALL (ARRAY['fail', 'skip']) THEN
        RAISE EXCEPTION 'on_error must be ''fail'' or ''skip'', not %', coalesce(on_error, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOOP
        -- the next batch_size members (in member_id order, as the bulk paths lock them)
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.max(x.m) FROM (SELECT DISTINCT s.%1$s::pg_catalog.int8 AS m FROM %2$s s'
            ' WHERE s.%1$s IS NOT NULL AND ($1 IS NULL OR s.%1$s::pg_catalog.int8 OPERATOR(pg_catalog.>) $1)'
            ' ORDER BY 1 LIMIT $2) x', v_m, source)
        INTO v_upto USING v_from, batch_size;
        EXIT WHEN v_upto IS NULL;
        EXECUTE pg_catalog.format(
            'SELECT b.* FROM (SELECT pg_catalog.array_agg(s.%1$s::pg_catalog.int8) AS m,'
            '  pg_catalog.array_agg(s.%2$s::pg_catalog.numeric) AS a, pg_catalog.array_agg(s.%3$s::pg_catalog.text) AS r,'
            '  pg_catalog.array_agg(%4$s) AS o, pg_catalog.array_agg(%5$s) AS c FROM %6$s s'
            '  WHERE s.%1$s::pg_catalog.int8 OPERATOR(pg_catalog.<=) $2'
            '    AND ($1 IS NULL OR s.%1$s::pg_catalog.int8 OPERATOR(pg_catalog.>) $1)) x,'
            ' LATERAL loyalty.earn_batch(x.m, x.a, x.r, x.o, x.c, NULL, $3) b',
            v_m, pg_catalog.quote_ident(amount_column), pg_catalog.quote_ident(reference_column), v_o, v_c, source)
        INTO v_step USING v_from, v_upto, on_error;
        v_orders := v_orders OPERATOR(pg_catalog.+) v_step.orders;
        v_earned := v_earned OPERATOR(pg_catalog.+) v_step.earned;
        v_replayed := v_replayed OPERATOR(pg_catalog.+) v_step.replayed;
        v_rejected := v_rejected OPERATOR(pg_catalog.+) v_step.rejected;
        v_points := v_points OPERATOR(pg_catalog.+) v_step.points;
        v_from := v_upto;
        COMMIT;
        RAISE NOTICE 'loyalty.import_orders: % orders so far (% earned, % replayed, % rejected), % points',
            v_orders, v_earned, v_replayed, v_rejected, v_points;
    END LOOP;
    RAISE NOTICE 'loyalty.import_orders: done: % orders (% earned, % replayed, % rejected), % points',
        v_orders, v_earned, v_replayed, v_rejected, v_points;
END $$;
