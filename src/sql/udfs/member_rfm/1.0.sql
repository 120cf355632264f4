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
    WHERE a.purchase_count > 0 AND a.status <> 'closed'
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
