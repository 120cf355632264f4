CREATE FUNCTION loyalty.fit_membership_models(program bigint)
RETURNS SETOF loyalty.membership_models
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    v loyalty.membership_models;
    f loyalty.sbg_params;
    v_at timestamptz := clock_timestamp();
    v_periods integer[];
    v_active boolean[];
    v_n float8[];
    v_detail text;
BEGIN
    IF program IS NULL THEN
        RAISE EXCEPTION 'program must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM loyalty.require_program(fit_membership_models.program);
    IF NOT EXISTS (SELECT FROM loyalty.programs x WHERE x.program_id OPERATOR(pg_catalog.=) fit_membership_models.program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    FOR p IN SELECT x.plan_id FROM loyalty.membership_plans x
             WHERE x.program_id OPERATOR(pg_catalog.=) fit_membership_models.program ORDER BY x.plan_id
    LOOP
        v := NULL;
        v.program_id := program;
        v.plan_id := p.plan_id;
        v.fitted_at := v_at;
        -- Each subscription of the plan once, by periods paid and whether it
        -- churned: lapsed and ended ones left after their periods, and so
        -- will one cancelled at period end; an active one had not left when
        -- last seen, nor had one changed to another plan (it left the plan
        -- with the next renewal of this one still undecided: censored, not
        -- churned).  Grouped first, so a distributed table sends counts.
        SELECT pg_catalog.array_agg(g.periods), pg_catalog.array_agg(g.still_active), pg_catalog.array_agg(g.n),
               coalesce(pg_catalog.sum(g.n), 0), coalesce(pg_catalog.sum(g.n) FILTER (WHERE NOT g.still_active), 0)
        INTO v_periods, v_active, v_n, v.subscriptions, v.churned
        FROM (SELECT s.periods,
                     s.status OPERATOR(pg_catalog.=) 'changed'
                       OR (s.status OPERATOR(pg_catalog.=) 'active' AND NOT s.cancel_at_period_end) AS still_active,
                     pg_catalog.count(*)::float8 AS n
              FROM loyalty.subscriptions s
              WHERE s.program_id OPERATOR(pg_catalog.=) fit_membership_models.program
                AND s.plan_id OPERATOR(pg_catalog.=) p.plan_id
              GROUP BY 1, 2) g;
        -- each plan on its own: one the data cannot identify keeps its reason
        -- and leaves the others' fits
        BEGIN
            f := (SELECT loyalty.sbg_fit(x.periods, x.still_active, x.n)
                  FROM ROWS FROM (pg_catalog.unnest(v_periods), pg_catalog.unnest(v_active), pg_catalog.unnest(v_n))
                       x(periods, still_active, n));
            IF f IS NULL THEN
                v.failure := 'no subscriptions';
            ELSE
                v.alpha := f.alpha;
                v.beta := f.beta;
                v.loglik := f.loglik;
            END IF;
        EXCEPTION WHEN SQLSTATE 'LY030' THEN
            GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
            v.failure := SQLERRM OPERATOR(pg_catalog.||)
                CASE WHEN v_detail OPERATOR(pg_catalog.<>) '' THEN '. ' OPERATOR(pg_catalog.||) v_detail ELSE '' END;
        END;
        INSERT INTO loyalty.membership_models VALUES (v.*);
        RETURN NEXT v;
    END LOOP;
END $$;
