-- ---------------------------------------------------------------------------
-- Analytics: the RFM aggregate, RFM scores and segments, buy-till-you-die
-- models (BG/NBD, Gamma-Gamma) with predictions, and the BI views.
-- ---------------------------------------------------------------------------

-- RFM aggregate (src/rfm.c) -----------------------------------------------------

CREATE TYPE loyalty.rfm_summary AS (
    first_purchase  timestamptz,
    last_purchase   timestamptz,
    recency_days    integer,
    frequency       bigint,
    monetary        numeric,
    average         numeric
);
COMMENT ON TYPE loyalty.rfm_summary IS 'Result of loyalty.rfm(): first and last purchase, whole days since the last one, number of purchases, total and average amount';

CREATE FUNCTION loyalty.rfm_trans(internal, timestamptz, numeric) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_trans(internal, timestamptz, numeric, timestamptz) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_trans_asof' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'rfm_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.rfm_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'rfm_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- STABLE: without as_of, recency is counted to the transaction's start
CREATE FUNCTION loyalty.rfm_final(internal) RETURNS loyalty.rfm_summary
    AS 'MODULE_PATHNAME', 'rfm_final' LANGUAGE C STABLE PARALLEL SAFE;

CREATE AGGREGATE loyalty.rfm(timestamptz, numeric) (
    SFUNC = loyalty.rfm_trans, STYPE = internal, FINALFUNC = loyalty.rfm_final,
    COMBINEFUNC = loyalty.rfm_combine, SERIALFUNC = loyalty.rfm_serialize,
    DESERIALFUNC = loyalty.rfm_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.rfm(timestamptz, numeric, timestamptz) (
    SFUNC = loyalty.rfm_trans, STYPE = internal, FINALFUNC = loyalty.rfm_final,
    COMBINEFUNC = loyalty.rfm_combine, SERIALFUNC = loyalty.rfm_serialize,
    DESERIALFUNC = loyalty.rfm_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.rfm(timestamptz, numeric) IS
    'RFM of purchases (time, amount): first/last purchase, recency in days to now, frequency, monetary, average; parallel-safe, usable on any table';
COMMENT ON AGGREGATE loyalty.rfm(timestamptz, numeric, timestamptz) IS
    'RFM of purchases (time, amount) with recency counted to as_of (the third argument)';

-- RFM scores and segments --------------------------------------------------------

-- The usual 11 segments from the recency score (R) and the mean of the
-- frequency and monetary scores (FM = round((F + M) / 2)), first match by
-- priority.  The standard mapping ships in rfm_segments_standard; to change
-- it, fill loyalty.rfm_segments (dumped with the data; while it has rows it
-- replaces the standard mapping), e.g.
--   INSERT INTO loyalty.rfm_segments SELECT * FROM loyalty.rfm_segments_standard;
--   UPDATE loyalty.rfm_segments SET r_min = 3 WHERE segment = 'Champions';
CREATE TABLE loyalty.rfm_segments_standard (
    segment     text PRIMARY KEY,
    priority    integer NOT NULL UNIQUE,
    r_min       integer NOT NULL CHECK (r_min BETWEEN 1 AND 5),
    r_max       integer NOT NULL CHECK (r_max BETWEEN 1 AND 5),
    fm_min      integer NOT NULL CHECK (fm_min BETWEEN 1 AND 5),
    fm_max      integer NOT NULL CHECK (fm_max BETWEEN 1 AND 5),
    description text NOT NULL,
    CHECK (r_min <= r_max AND fm_min <= fm_max)
);
INSERT INTO loyalty.rfm_segments_standard VALUES
    ('Champions',          1, 4, 5, 4, 5, 'Bought recently, buy often and spend the most'),
    ('Loyal',              2, 3, 5, 3, 5, 'Buy regularly and spend well'),
    ('Cannot Lose Them',   3, 1, 1, 4, 5, 'Used to buy often and spend big, long ago'),
    ('At Risk',            4, 1, 2, 3, 5, 'Spent big and often, but not for a long time'),
    ('Potential Loyalist', 5, 4, 5, 2, 3, 'Recent customers with average frequency and spend'),
    ('New',                6, 5, 5, 1, 1, 'Bought most recently, but not often'),
    ('Promising',          7, 4, 4, 1, 1, 'Recent shoppers who have not spent much'),
    ('Need Attention',     8, 3, 3, 2, 3, 'Above average recency, frequency and spend, slipping'),
    ('About to Sleep',     9, 2, 3, 1, 2, 'Below average recency, frequency and spend'),
    ('Hibernating',       10, 2, 2, 1, 2, 'Last purchase long ago, few and small orders'),
    ('Lost',              11, 1, 1, 1, 3, 'Lowest recency; gone');
COMMENT ON TABLE loyalty.rfm_segments_standard IS 'The standard mapping of RFM scores to the 11 named segments (R range x FM range, first match by priority)';
CREATE TABLE loyalty.rfm_segments (LIKE loyalty.rfm_segments_standard INCLUDING ALL);
COMMENT ON TABLE loyalty.rfm_segments IS 'Your mapping of RFM scores to segments; while it has rows it replaces rfm_segments_standard';
CREATE VIEW loyalty.rfm_segment_map AS
SELECT * FROM loyalty.rfm_segments
UNION ALL
SELECT * FROM loyalty.rfm_segments_standard WHERE NOT EXISTS (SELECT FROM loyalty.rfm_segments);
COMMENT ON VIEW loyalty.rfm_segment_map IS 'The RFM segment mapping in force: loyalty.rfm_segments if it has rows, else the standard one';

CREATE VIEW loyalty.member_rfm AS
WITH q AS MATERIALIZED (
    -- quintile boundaries per program: three sorts of one narrow column each
    -- (the account keeps every member's purchase statistics up to date, so
    -- no purchase is rescanned here)
    SELECT a.program_id,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.last_purchase_at) AS r,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_count) AS f,
           percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY a.purchase_amount) AS m
    FROM loyalty.accounts a
    WHERE a.purchase_count > 0 AND a.status <> 'closed' AND loyalty.program_visible(a.program_id)
    GROUP BY a.program_id
), s AS (
    -- score = 1 + the number of quintile boundaries the value lies above,
    -- so equal values always get equal scores
    SELECT a.program_id, a.member_id, a.first_purchase_at, a.last_purchase_at, a.purchase_count,
           a.purchase_days, a.purchase_amount,
           1 + (a.last_purchase_at > q.r[1])::int + (a.last_purchase_at > q.r[2])::int
             + (a.last_purchase_at > q.r[3])::int + (a.last_purchase_at > q.r[4])::int AS r_score,
           1 + (a.purchase_count > q.f[1])::int + (a.purchase_count > q.f[2])::int
             + (a.purchase_count > q.f[3])::int + (a.purchase_count > q.f[4])::int AS f_score,
           1 + (a.purchase_amount > q.m[1])::int + (a.purchase_amount > q.m[2])::int
             + (a.purchase_amount > q.m[3])::int + (a.purchase_amount > q.m[4])::int AS m_score
    FROM loyalty.accounts a JOIN q ON q.program_id = a.program_id
    WHERE a.purchase_count > 0 AND a.status <> 'closed'
), cells AS MATERIALIZED (
    -- the mapping resolved once for the 25 (R, FM) cells, then joined
    SELECT r, fm, (SELECT g.segment FROM loyalty.rfm_segment_map g
                   WHERE r BETWEEN g.r_min AND g.r_max AND fm BETWEEN g.fm_min AND g.fm_max
                   ORDER BY g.priority LIMIT 1) AS segment
    FROM generate_series(1, 5) r, generate_series(1, 5) fm
)
SELECT s.program_id, s.member_id,
       s.first_purchase_at::date AS first_purchase, s.last_purchase_at::date AS last_purchase,
       (current_date - s.last_purchase_at::date)::bigint AS recency_days,
       s.purchase_count AS frequency, s.purchase_days AS purchase_days, s.purchase_amount AS monetary,
       s.r_score::bigint AS r_score, s.f_score::bigint AS f_score, s.m_score::bigint AS m_score,
       (s.r_score * 100 + s.f_score * 10 + s.m_score)::text AS rfm_cell,
       coalesce(c.segment, 'Other') AS segment
FROM s JOIN cells c ON c.r = s.r_score AND c.fm = round((s.f_score + s.m_score) / 2.0);

CREATE VIEW loyalty.segment_summary AS
SELECT r.program_id, r.segment, count(*)::bigint AS members,
       round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY r.program_id), 4) AS share,
       round(avg(r.recency_days), 1) AS avg_recency_days, round(avg(r.frequency), 2) AS avg_frequency,
       round(avg(r.monetary), 2) AS avg_monetary, sum(r.monetary) AS total_monetary
FROM loyalty.member_rfm r
GROUP BY r.program_id, r.segment;

-- Buy-till-you-die models (src/btyd.c) ---------------------------------------------

CREATE TYPE loyalty.bgnbd_params AS (r float8, alpha float8, a float8, b float8, loglik float8, customers float8);
CREATE TYPE loyalty.gamma_gamma_params AS (p float8, q float8, gamma float8, loglik float8, customers float8);
COMMENT ON TYPE loyalty.bgnbd_params IS 'A fitted BG/NBD model: r, alpha (purchase rate), a, b (dropout), log-likelihood, customers';
COMMENT ON TYPE loyalty.gamma_gamma_params IS 'A fitted Gamma-Gamma spend model: p, q, gamma, log-likelihood, repeat customers';

CREATE FUNCTION loyalty.bgnbd_trans(internal, float8, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_bgnbd_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_trans(internal, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_gg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'btyd_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.btyd_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'btyd_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_final(internal) RETURNS loyalty.bgnbd_params
    AS 'MODULE_PATHNAME', 'btyd_bgnbd_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_final(internal) RETURNS loyalty.gamma_gamma_params
    AS 'MODULE_PATHNAME', 'btyd_gg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE loyalty.bgnbd_fit(x float8, t_x float8, "T" float8) (
    SFUNC = loyalty.bgnbd_trans, STYPE = internal, FINALFUNC = loyalty.bgnbd_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
CREATE AGGREGATE loyalty.gamma_gamma_fit(x float8, m_x float8) (
    SFUNC = loyalty.gamma_gamma_trans, STYPE = internal, FINALFUNC = loyalty.gamma_gamma_final,
    COMBINEFUNC = loyalty.btyd_combine, SERIALFUNC = loyalty.btyd_serialize,
    DESERIALFUNC = loyalty.btyd_deserialize, PARALLEL = SAFE
);
COMMENT ON AGGREGATE loyalty.bgnbd_fit(float8, float8, float8) IS
    'Maximum-likelihood BG/NBD fit over customers (x repeat purchases, t_x time of the last, T age, in one time unit); LY030 when the data do not identify the model';
COMMENT ON AGGREGATE loyalty.gamma_gamma_fit(float8, float8) IS
    'Maximum-likelihood Gamma-Gamma fit over repeat customers (x repeat purchases, m_x their mean value); LY030 when not identified';

CREATE FUNCTION loyalty.bgnbd_loglik(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_loglik' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_expected(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8, t float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_expected' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.bgnbd_p_alive(r float8, alpha float8, a float8, b float8, x float8, t_x float8, "T" float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_bgnbd_p_alive' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.gamma_gamma_expected(p float8, q float8, gamma float8, x float8, m_x float8)
    RETURNS float8 AS 'MODULE_PATHNAME', 'btyd_gg_expected' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.bgnbd_loglik(float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD log-likelihood of one customer';
COMMENT ON FUNCTION loyalty.bgnbd_expected(float8, float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD: expected purchases of a customer in the next t time units';
COMMENT ON FUNCTION loyalty.bgnbd_p_alive(float8, float8, float8, float8, float8, float8, float8) IS 'BG/NBD: probability that the customer is still active';
COMMENT ON FUNCTION loyalty.gamma_gamma_expected(float8, float8, float8, float8, float8) IS 'Gamma-Gamma: expected average transaction value of a customer';

-- Customer summaries for the models, from the ledger: one purchase per day
-- (in the program's time zone), calibration up to and including `calibration_end`.
CREATE FUNCTION loyalty.purchase_summary(program bigint, calibration_end date DEFAULT current_date,
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
COMMENT ON FUNCTION loyalty.purchase_summary(bigint, date, text) IS
    'Per member of a program, as of calibration_end: x (repeat purchases, one per day), t_x (last - first purchase), T (calibration_end - first purchase) in days or weeks, m_x (mean repeat-day spend)';

CREATE TABLE loyalty.models (
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    fitted_at       timestamptz NOT NULL DEFAULT now(),
    calibration_end date NOT NULL,
    time_unit       text NOT NULL CHECK (time_unit IN ('day', 'week')),
    bgnbd           loyalty.bgnbd_params NOT NULL,
    gamma_gamma     loyalty.gamma_gamma_params,
    PRIMARY KEY (program_id, fitted_at)
);
COMMENT ON TABLE loyalty.models IS 'Fitted BG/NBD and Gamma-Gamma models per program, with fit time, calibration end and log-likelihoods';

CREATE FUNCTION loyalty.fit_models(program bigint, calibration_end date DEFAULT current_date, time_unit text DEFAULT 'week')
RETURNS loyalty.models
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v loyalty.models;
BEGIN
    PERFORM loyalty.require_program(fit_models.program);
    IF time_unit IS NULL OR time_unit NOT IN ('day', 'week') THEN
        RAISE EXCEPTION 'time_unit must be day or week' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM loyalty.programs p WHERE p.program_id = program) THEN
        RAISE EXCEPTION 'program % does not exist', program USING ERRCODE = 'no_data_found';
    END IF;
    v.program_id := program;
    v.fitted_at := clock_timestamp();
    v.calibration_end := coalesce(calibration_end, current_date);
    v.time_unit := time_unit;
    SELECT loyalty.bgnbd_fit(s.x, s.t_x, s."T") INTO v.bgnbd
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s."T" > 0;
    IF v.bgnbd IS NULL THEN
        RAISE EXCEPTION 'program % has no purchases before %', program, v.calibration_end
            USING ERRCODE = 'LY030';
    END IF;
    SELECT loyalty.gamma_gamma_fit(s.x, s.m_x) INTO v.gamma_gamma
    FROM loyalty.purchase_summary(program, v.calibration_end, time_unit) s WHERE s.x > 0;
    INSERT INTO loyalty.models VALUES (v.*);
    RETURN v;
END $$;
COMMENT ON FUNCTION loyalty.fit_models(bigint, date, text) IS
    'Fit BG/NBD and Gamma-Gamma on a program''s purchases up to calibration_end and store them; LY030 if the data do not identify a model';

-- No SET search_path: the procedure commits (see loyalty.expire_points).
CREATE PROCEDURE loyalty.refresh_models(time_unit text DEFAULT 'week', calibration_end date DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    v_program bigint;
BEGIN
    FOR v_program IN SELECT p.program_id FROM loyalty.programs p ORDER BY p.program_id LOOP
        BEGIN
            -- current_date is SQL syntax, not a function a search_path could redirect
            PERFORM loyalty.fit_models(v_program, COALESCE(calibration_end, current_date), time_unit);
            RAISE NOTICE 'loyalty.refresh_models: program % fitted', v_program;
        EXCEPTION WHEN SQLSTATE 'LY030' THEN
            RAISE NOTICE 'loyalty.refresh_models: program % not fitted: %', v_program, SQLERRM;
        END;
        COMMIT;
    END LOOP;
END $$;
COMMENT ON PROCEDURE loyalty.refresh_models(text, date) IS
    'Batch job (e.g. nightly with pg_cron): refit the models of every program on its purchases up to calibration_end (default today), one commit per program; programs whose data cannot identify a model are reported and skipped';

-- CLV over `horizon` time units with a discount rate per unit: expected spend
-- per purchase times the discounted expected purchases of each unit.
CREATE FUNCTION loyalty.clv(m loyalty.models, x float8, t_x float8, "T" float8, m_x float8,
                            horizon integer DEFAULT 52, discount float8 DEFAULT 0.0019)
RETURNS float8
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(loyalty.gamma_gamma_expected(($1.gamma_gamma).p, ($1.gamma_gamma).q, ($1.gamma_gamma).gamma, $2, coalesce($5, 0)), 0)
         * sum((loyalty.bgnbd_expected(($1.bgnbd).r, ($1.bgnbd).alpha, ($1.bgnbd).a, ($1.bgnbd).b, $2, $3, $4, k)
                - loyalty.bgnbd_expected(($1.bgnbd).r, ($1.bgnbd).alpha, ($1.bgnbd).a, ($1.bgnbd).b, $2, $3, $4, k - 1))
               / power(1 + $7, k))
    FROM generate_series(1, $6) k
$$;
COMMENT ON FUNCTION loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) IS
    'Customer lifetime value over horizon time units, discounted per unit (default 52 weeks at 10% a year)';

CREATE VIEW loyalty.member_predictions AS
WITH m AS (
    SELECT DISTINCT ON (x.program_id) x.* FROM loyalty.models x WHERE loyalty.program_visible(x.program_id)
    ORDER BY x.program_id, x.fitted_at DESC
)
SELECT m.program_id, s.member_id, m.fitted_at, m.time_unit,
       s.x::bigint AS repeat_purchases, round(s.t_x, 2) AS t_x, round(s."T", 2) AS customer_age,
       round(loyalty.bgnbd_p_alive((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T")::numeric, 4) AS p_alive,
       round(loyalty.bgnbd_expected((m.bgnbd).r, (m.bgnbd).alpha, (m.bgnbd).a, (m.bgnbd).b, s.x, s.t_x, s."T",
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END)::numeric, 4) AS expected_purchases_year,
       round(loyalty.gamma_gamma_expected((m.gamma_gamma).p, (m.gamma_gamma).q, (m.gamma_gamma).gamma, s.x, coalesce(s.m_x, 0))::numeric, 2)
           AS expected_avg_spend,
       round(loyalty.clv(m, s.x, s.t_x, s."T", s.m_x,
             CASE m.time_unit WHEN 'week' THEN 52 ELSE 365 END,
             CASE m.time_unit WHEN 'week' THEN 0.0019 ELSE 0.00026 END)::numeric, 2) AS clv_year
FROM m, LATERAL loyalty.purchase_summary(m.program_id, m.calibration_end, m.time_unit) s;

CREATE VIEW loyalty.churn_risk AS
SELECT p.program_id, p.member_id, p.p_alive, round(1 - p.p_alive, 4) AS churn_risk,
       CASE WHEN p.p_alive < 0.3 THEN 'high' WHEN p.p_alive < 0.6 THEN 'medium' ELSE 'low' END AS risk_band,
       p.expected_purchases_year, p.clv_year, a.last_purchase_at::date AS last_purchase, a.purchase_count AS purchases
FROM loyalty.member_predictions p JOIN loyalty.accounts a ON a.member_id = p.member_id;

-- KPI and distribution views --------------------------------------------------------

CREATE VIEW loyalty.kpi_daily AS
WITH l AS (
    SELECT l.program_id, (l.occurred_at AT TIME ZONE p.time_zone)::date AS day, l.kind, l.points::bigint AS points,
           l.amount, l.member_id
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
    WHERE loyalty.program_visible(l.program_id)
), n AS (
    SELECT m.program_id, (m.joined_at AT TIME ZONE p.time_zone)::date AS day, count(*) AS new_members
    FROM loyalty.members m JOIN loyalty.programs p ON p.program_id = m.program_id
    WHERE loyalty.program_visible(m.program_id) GROUP BY 1, 2
), d AS (
    SELECT l.program_id, l.day,
           count(DISTINCT l.member_id) FILTER (WHERE l.kind = 'earn') AS active_members,
           count(*) FILTER (WHERE l.kind = 'earn') AS purchases,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'earn'), 0) AS revenue,
           coalesce(sum(l.points) FILTER (WHERE l.kind IN ('earn', 'award') OR (l.kind = 'adjust' AND l.points > 0)), 0) AS issued,
           coalesce(-sum(l.points) FILTER (WHERE l.kind IN ('redeem', 'hold')), 0)
             - coalesce(sum(l.points) FILTER (WHERE l.kind = 'release'), 0) AS redeemed,
           coalesce(-sum(l.points) FILTER (WHERE l.kind = 'expire'), 0) AS expired
    FROM l GROUP BY 1, 2
)
SELECT coalesce(d.program_id, n.program_id) AS program_id, coalesce(d.day, n.day) AS day,
       coalesce(n.new_members, 0)::bigint AS new_members, coalesce(d.active_members, 0)::bigint AS active_members,
       coalesce(d.purchases, 0)::bigint AS purchases, coalesce(d.revenue, 0) AS revenue,
       CASE WHEN d.purchases > 0 THEN round(d.revenue / d.purchases, 2) END AS avg_order_value,
       coalesce(d.issued, 0)::bigint AS points_issued, coalesce(d.redeemed, 0)::bigint AS points_redeemed,
       coalesce(d.expired, 0)::bigint AS points_expired
FROM d FULL JOIN n ON n.program_id = d.program_id AND n.day = d.day;

CREATE VIEW loyalty.kpi_monthly AS
WITH k AS (
    SELECT program_id, date_trunc('month', day)::date AS month, sum(new_members) AS new_members,
           sum(purchases) AS purchases, sum(revenue) AS revenue, sum(points_issued) AS points_issued,
           sum(points_redeemed) AS points_redeemed, sum(points_expired) AS points_expired
    FROM loyalty.kpi_daily GROUP BY 1, 2
), b AS (
    -- buyers of the month, and those of them who had bought before it
    SELECT x.program_id, x.month, count(*) AS buyers,
           count(*) FILTER (WHERE x.first_month < x.month) AS repeat_buyers
    FROM (SELECT DISTINCT l.program_id, l.member_id,
                 date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month,
                 min(date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date)
                     OVER (PARTITION BY l.member_id) AS first_month
          FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
          WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)) x
    GROUP BY 1, 2
)
SELECT k.program_id, k.month, k.new_members::bigint AS new_members, coalesce(b.buyers, 0)::bigint AS active_members,
       k.purchases::bigint AS purchases, k.revenue,
       CASE WHEN k.purchases > 0 THEN round(k.revenue / k.purchases, 2) END AS avg_order_value,
       CASE WHEN b.buyers > 0 THEN round(b.repeat_buyers * 1.0 / b.buyers, 4) END AS repeat_purchase_rate,
       k.points_issued::bigint AS points_issued, k.points_redeemed::bigint AS points_redeemed,
       k.points_expired::bigint AS points_expired,
       CASE WHEN k.points_issued > 0 THEN round(k.points_redeemed * 1.0 / k.points_issued, 4) END AS redemption_rate,
       CASE WHEN k.points_issued > 0 THEN round(k.points_expired * 1.0 / k.points_issued, 4) END AS breakage
FROM k LEFT JOIN b ON b.program_id = k.program_id AND b.month = k.month;

CREATE VIEW loyalty.kpi_summary AS
SELECT p.program_id, p.name AS program, p.currency,
       count(a.member_id)::bigint AS members,
       count(a.member_id) FILTER (WHERE a.last_purchase_at > now() - interval '90 days')::bigint AS active_members_90d,
       CASE WHEN count(a.member_id) FILTER (WHERE a.purchase_count > 0) > 0
            THEN round(count(a.member_id) FILTER (WHERE a.purchase_count > 1) * 1.0
                       / count(a.member_id) FILTER (WHERE a.purchase_count > 0), 4) END AS repeat_purchase_rate,
       CASE WHEN sum(a.purchase_count) > 0 THEN round(sum(a.purchase_amount) / sum(a.purchase_count), 2) END AS avg_order_value,
       coalesce(sum(a.balance::bigint), 0)::bigint AS points_outstanding,
       coalesce(sum(a.held::bigint), 0)::bigint AS points_held,
       coalesce(max(pp.pending), 0)::bigint AS points_pending,
       coalesce(sum(a.lifetime_earned::bigint), 0)::bigint AS points_issued,
       coalesce(sum(a.lifetime_redeemed::bigint), 0)::bigint AS points_redeemed,
       coalesce(sum(a.lifetime_expired::bigint), 0)::bigint AS points_expired,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_redeemed::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS redemption_rate,
       CASE WHEN sum(a.lifetime_earned::bigint) > 0
            THEN round(sum(a.lifetime_expired::bigint) * 1.0 / sum(a.lifetime_earned::bigint), 4) END AS breakage,
       round(coalesce(sum(a.balance::bigint + a.held::bigint), 0) * p.point_value, 2) AS liability
FROM loyalty.programs p LEFT JOIN loyalty.accounts a ON a.program_id = p.program_id AND a.status <> 'closed'
-- points still vesting, per program (a join, not a subquery per program: Citus
-- cannot plan a correlated subquery beside the programs reference table)
LEFT JOIN (SELECT x.program_id, sum(l.remaining::bigint) AS pending
           FROM loyalty.lots l JOIN loyalty.accounts x ON x.member_id = l.member_id
           WHERE l.is_open AND l.vests_at > now() GROUP BY x.program_id) pp ON pp.program_id = p.program_id
WHERE loyalty.program_visible(p.program_id)
GROUP BY p.program_id;

CREATE VIEW loyalty.tier_distribution AS
SELECT a.program_id, coalesce(loyalty.tier_name(a.tier), 'none') AS tier, loyalty.tier_rank(a.tier)::bigint AS tier_rank,
       count(*)::bigint AS members, round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY a.program_id), 4) AS share
FROM loyalty.accounts a WHERE a.status <> 'closed' AND loyalty.program_visible(a.program_id)
GROUP BY a.program_id, a.tier;

CREATE VIEW loyalty.channel_distribution AS
SELECT l.program_id, coalesce(l.channel, 'unknown') AS channel, count(*)::bigint AS purchases,
       count(DISTINCT l.member_id)::bigint AS members, sum(l.amount) AS revenue,
       sum(l.points::bigint)::bigint AS points_issued
FROM loyalty.ledger l WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)
GROUP BY 1, 2;

CREATE VIEW loyalty.member_mix AS
SELECT m.program_id, coalesce(m.source_channel, 'unknown') AS source_channel, coalesce(m.region, 'unknown') AS region,
       count(*)::bigint AS members, count(*) FILTER (WHERE a.purchase_count > 0)::bigint AS buyers
FROM loyalty.members m JOIN loyalty.accounts a ON a.member_id = m.member_id
WHERE m.status <> 'closed' AND loyalty.program_visible(m.program_id)
GROUP BY 1, 2, 3;

CREATE VIEW loyalty.cohort_retention AS
WITH buys AS (
    SELECT DISTINCT l.program_id, l.member_id, date_trunc('month', l.occurred_at AT TIME ZONE p.time_zone)::date AS month
    FROM loyalty.ledger l JOIN loyalty.programs p ON p.program_id = l.program_id
    WHERE l.kind = 'earn' AND loyalty.program_visible(l.program_id)
), c AS (
    SELECT b.*, min(b.month) OVER (PARTITION BY b.member_id) AS cohort FROM buys b
)
SELECT c.program_id, c.cohort AS cohort_month,
       ((extract(year FROM c.month) - extract(year FROM c.cohort)) * 12
         + extract(month FROM c.month) - extract(month FROM c.cohort))::bigint AS months_since_first,
       count(*)::bigint AS active_members,
       max(s.size)::bigint AS cohort_size,
       round(count(*) * 1.0 / max(s.size), 4) AS retention
FROM c JOIN (SELECT c2.program_id, c2.cohort, count(DISTINCT c2.member_id) AS size FROM c c2 GROUP BY 1, 2) s
  ON s.program_id = c.program_id AND s.cohort = c.cohort
GROUP BY 1, 2, 3;

CREATE VIEW loyalty.reward_popularity AS
SELECT r.program_id, r.reward_id, r.code, r.name, count(x.redemption_id)::bigint AS redemptions,
       count(x.redemption_id) FILTER (WHERE x.status = 'cancelled')::bigint AS cancelled,
       coalesce(sum(x.points::bigint) FILTER (WHERE x.status = 'issued'), 0)::bigint AS points_spent,
       count(DISTINCT x.member_id)::bigint AS members, r.stock
FROM loyalty.rewards r LEFT JOIN loyalty.redemptions x ON x.reward_id = r.reward_id
WHERE loyalty.program_visible(r.program_id)
GROUP BY r.reward_id;

-- Comments on every view column (BI tools show them) --------------------------------
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        ('member_rfm', NULL, 'RFM per member from the account''s purchase statistics: scores 1-5 by quintile within the program (equal values, equal scores), and the named segment'),
        ('member_rfm', 'program_id', 'Program'), ('member_rfm', 'member_id', 'Member'),
        ('member_rfm', 'first_purchase', 'Date of the first purchase'), ('member_rfm', 'last_purchase', 'Date of the last purchase'),
        ('member_rfm', 'recency_days', 'Days since the last purchase'), ('member_rfm', 'frequency', 'Number of purchases'),
        ('member_rfm', 'purchase_days', 'Distinct days with a purchase'), ('member_rfm', 'monetary', 'Total purchase amount, net of refunds'),
        ('member_rfm', 'r_score', 'Recency quintile, 5 = most recent'), ('member_rfm', 'f_score', 'Frequency quintile, 5 = most purchases'),
        ('member_rfm', 'm_score', 'Monetary quintile, 5 = highest spend'), ('member_rfm', 'rfm_cell', 'R, F and M scores as a three-digit code'),
        ('member_rfm', 'segment', 'Named segment from loyalty.rfm_segment_map'),
        ('segment_summary', NULL, 'Members, share and averages per RFM segment'),
        ('segment_summary', 'program_id', 'Program'), ('segment_summary', 'segment', 'RFM segment'),
        ('segment_summary', 'members', 'Members in the segment'), ('segment_summary', 'share', 'Share of the program''s buyers'),
        ('segment_summary', 'avg_recency_days', 'Average days since the last purchase'), ('segment_summary', 'avg_frequency', 'Average number of purchases'),
        ('segment_summary', 'avg_monetary', 'Average total spend'), ('segment_summary', 'total_monetary', 'Total spend of the segment'),
        ('member_predictions', NULL, 'Per member, from the latest fitted models: P(alive), expected purchases and spend, CLV over a year'),
        ('member_predictions', 'program_id', 'Program'), ('member_predictions', 'member_id', 'Member'),
        ('member_predictions', 'fitted_at', 'When the models used were fitted'), ('member_predictions', 'time_unit', 'Time unit of the model (day or week)'),
        ('member_predictions', 'repeat_purchases', 'Repeat purchase days in the calibration period (x)'),
        ('member_predictions', 't_x', 'Time from the first to the last purchase (t_x)'), ('member_predictions', 'customer_age', 'Time from the first purchase to the calibration end (T)'),
        ('member_predictions', 'p_alive', 'Probability the member is still active (BG/NBD)'),
        ('member_predictions', 'expected_purchases_year', 'Expected purchases in the next year (BG/NBD)'),
        ('member_predictions', 'expected_avg_spend', 'Expected spend per purchase (Gamma-Gamma)'),
        ('member_predictions', 'clv_year', 'Expected discounted spend over the next year'),
        ('churn_risk', NULL, 'Churn risk per member: 1 - P(alive), in bands, with value at stake'),
        ('churn_risk', 'program_id', 'Program'), ('churn_risk', 'member_id', 'Member'), ('churn_risk', 'p_alive', 'Probability the member is still active'),
        ('churn_risk', 'churn_risk', '1 - P(alive)'), ('churn_risk', 'risk_band', 'high (P(alive) < 0.3), medium (< 0.6) or low'),
        ('churn_risk', 'expected_purchases_year', 'Expected purchases in the next year'), ('churn_risk', 'clv_year', 'Expected discounted spend over the next year'),
        ('churn_risk', 'last_purchase', 'Date of the last purchase'), ('churn_risk', 'purchases', 'Number of purchases'),
        ('kpi_daily', NULL, 'Daily KPIs per program (days in the program time zone)'),
        ('kpi_daily', 'program_id', 'Program'), ('kpi_daily', 'day', 'Day'), ('kpi_daily', 'new_members', 'Members who joined'),
        ('kpi_daily', 'active_members', 'Members who bought'), ('kpi_daily', 'purchases', 'Purchases'), ('kpi_daily', 'revenue', 'Purchase amounts'),
        ('kpi_daily', 'avg_order_value', 'Revenue per purchase'), ('kpi_daily', 'points_issued', 'Points credited (earn, award, positive adjust)'),
        ('kpi_daily', 'points_redeemed', 'Points spent (redeem, hold, less released)'), ('kpi_daily', 'points_expired', 'Points written off by expiry'),
        ('kpi_monthly', NULL, 'Monthly KPIs per program, with repeat-purchase rate, redemption rate and breakage'),
        ('kpi_monthly', 'program_id', 'Program'), ('kpi_monthly', 'month', 'First day of the month'), ('kpi_monthly', 'new_members', 'Members who joined'),
        ('kpi_monthly', 'active_members', 'Members who bought'), ('kpi_monthly', 'purchases', 'Purchases'), ('kpi_monthly', 'revenue', 'Purchase amounts'),
        ('kpi_monthly', 'avg_order_value', 'Revenue per purchase'), ('kpi_monthly', 'repeat_purchase_rate', 'Share of the month''s buyers who had bought in an earlier month'),
        ('kpi_monthly', 'points_issued', 'Points credited'), ('kpi_monthly', 'points_redeemed', 'Points spent'), ('kpi_monthly', 'points_expired', 'Points expired'),
        ('kpi_monthly', 'redemption_rate', 'Points redeemed / points issued in the month'), ('kpi_monthly', 'breakage', 'Points expired / points issued in the month'),
        ('kpi_summary', NULL, 'Current KPIs per program: members, activity, points outstanding and the liability in money'),
        ('kpi_summary', 'program_id', 'Program'), ('kpi_summary', 'program', 'Program name'), ('kpi_summary', 'currency', 'Currency of amounts and liability'),
        ('kpi_summary', 'members', 'Members (not closed)'), ('kpi_summary', 'active_members_90d', 'Members who bought in the last 90 days'),
        ('kpi_summary', 'repeat_purchase_rate', 'Share of buyers with more than one purchase'), ('kpi_summary', 'avg_order_value', 'Purchase amount per purchase'),
        ('kpi_summary', 'points_outstanding', 'Posted balances (spendable and pending)'), ('kpi_summary', 'points_held', 'Points held by active holds'), ('kpi_summary', 'points_pending', 'Points earned but still vesting (part of points_outstanding)'),
        ('kpi_summary', 'points_issued', 'Points ever credited'), ('kpi_summary', 'points_redeemed', 'Points ever redeemed'),
        ('kpi_summary', 'points_expired', 'Points ever expired'), ('kpi_summary', 'redemption_rate', 'Redeemed / issued'),
        ('kpi_summary', 'breakage', 'Expired / issued'), ('kpi_summary', 'liability', 'Outstanding and held points at the program''s point value'),
        ('tier_distribution', NULL, 'Members per tier'), ('tier_distribution', 'program_id', 'Program'), ('tier_distribution', 'tier', 'Tier name (none: no tier)'),
        ('tier_distribution', 'tier_rank', 'Tier rank'), ('tier_distribution', 'members', 'Members'), ('tier_distribution', 'share', 'Share of the program''s members'),
        ('channel_distribution', NULL, 'Purchases per channel'), ('channel_distribution', 'program_id', 'Program'), ('channel_distribution', 'channel', 'Channel of the purchase'),
        ('channel_distribution', 'purchases', 'Purchases'), ('channel_distribution', 'members', 'Distinct buyers'), ('channel_distribution', 'revenue', 'Purchase amounts'),
        ('channel_distribution', 'points_issued', 'Points earned'),
        ('member_mix', NULL, 'Members by source channel and region'), ('member_mix', 'program_id', 'Program'), ('member_mix', 'source_channel', 'Channel the member joined through'),
        ('member_mix', 'region', 'Region'), ('member_mix', 'members', 'Members'), ('member_mix', 'buyers', 'Members with a purchase'),
        ('cohort_retention', NULL, 'Monthly cohorts by first purchase: members buying again n months later'),
        ('cohort_retention', 'program_id', 'Program'), ('cohort_retention', 'cohort_month', 'Month of the first purchase'),
        ('cohort_retention', 'months_since_first', 'Months after the first purchase'), ('cohort_retention', 'active_members', 'Cohort members buying in that month'),
        ('cohort_retention', 'cohort_size', 'Members in the cohort'), ('cohort_retention', 'retention', 'active_members / cohort_size'),
        ('reward_popularity', NULL, 'Redemptions per reward'), ('reward_popularity', 'program_id', 'Program'), ('reward_popularity', 'reward_id', 'Reward'),
        ('reward_popularity', 'code', 'Reward code'), ('reward_popularity', 'name', 'Reward name'), ('reward_popularity', 'redemptions', 'Redemptions (with cancelled)'),
        ('reward_popularity', 'cancelled', 'Cancelled redemptions'), ('reward_popularity', 'points_spent', 'Points spent on issued redemptions'),
        ('reward_popularity', 'members', 'Distinct members'), ('reward_popularity', 'stock', 'Units left (NULL: unlimited)')
    ) v(view, col, txt) LOOP
        IF c.col IS NULL THEN
            EXECUTE format('COMMENT ON VIEW loyalty.%I IS %L', c.view, c.txt);
        ELSE
            EXECUTE format('COMMENT ON COLUMN loyalty.%I.%I IS %L', c.view, c.col, c.txt);
        END IF;
    END LOOP;
END $$;

SELECT pg_catalog.pg_extension_config_dump('loyalty.rfm_segments', '');   -- empty until you change the mapping
SELECT pg_catalog.pg_extension_config_dump('loyalty.models', '');

REVOKE ALL ON FUNCTION loyalty.purchase_summary(bigint, date, text), loyalty.fit_models(bigint, date, text),
    loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.refresh_models(text, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.purchase_summary(bigint, date, text), loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8)
    TO loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.purchase_summary(bigint, date, text), loyalty.fit_models(bigint, date, text),
    loyalty.clv(loyalty.models, float8, float8, float8, float8, integer, float8) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.refresh_models(text, date) TO loyalty_admin;
-- the analyst reads views, nothing else (the views run with their owner's rights)
GRANT SELECT ON loyalty.rfm_segment_map, loyalty.member_rfm, loyalty.segment_summary, loyalty.member_predictions, loyalty.churn_risk,
    loyalty.kpi_daily, loyalty.kpi_monthly, loyalty.kpi_summary, loyalty.tier_distribution,
    loyalty.channel_distribution, loyalty.member_mix, loyalty.cohort_retention, loyalty.reward_popularity
TO loyalty_analyst, loyalty_admin;
