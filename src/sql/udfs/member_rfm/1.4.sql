CREATE VIEW loyalty.member_rfm AS
WITH q AS MATERIALIZED (
    -- Quintile boundaries per program, exact to now: from the RFM rollups
    -- and the members written since (loyalty.rfm_quintiles).  A score is 1 +
    -- the number of boundaries the value lies above (equal values, equal
    -- scores); width_bucket counts the thresholds at or below a value, so the
    -- thresholds are the values just above each boundary: the next
    -- microsecond (purchases are never far ahead of now), the next count,
    -- and for spend the boundaries negated (5 - those at or above).
    SELECT b.program_id,
           CASE WHEN b.r IS NOT NULL THEN
               ARRAY[b.r[1] + interval '1 microsecond', b.r[2] + interval '1 microsecond',
                     b.r[3] + interval '1 microsecond', b.r[4] + interval '1 microsecond'] END AS r_above,
           ARRAY[b.f[1] + 1, b.f[2] + 1, b.f[3] + 1, b.f[4] + 1] AS f_above,
           ARRAY[-b.m[4], -b.m[3], -b.m[2], -b.m[1]] AS m_below
    FROM loyalty.rfm_quintiles() b
), cells AS MATERIALIZED (
    -- the 125 cells with their code and segment (FM = round((F + M) / 2.0),
    -- in integers), resolved once and joined by code
    SELECT r * 100 + f * 10 + m AS code, r::bigint AS r_score, f::bigint AS f_score, m::bigint AS m_score,
           (r * 100 + f * 10 + m)::text AS rfm_cell,
           coalesce((SELECT g.segment FROM loyalty.rfm_segment_map g
                     WHERE r BETWEEN g.r_min AND g.r_max AND (f + m + 1) / 2 BETWEEN g.fm_min AND g.fm_max
                     ORDER BY g.priority LIMIT 1), 'Other') AS segment
    FROM generate_series(1, 5) r, generate_series(1, 5) f, generate_series(1, 5) m
)
SELECT a.program_id, a.member_id,
       a.first_purchase_at::date AS first_purchase, a.last_purchase_at::date AS last_purchase,
       (current_date - a.last_purchase_at::date)::bigint AS recency_days,
       a.purchase_count AS frequency, a.purchase_days AS purchase_days, a.purchase_amount AS monetary,
       c.r_score, c.f_score, c.m_score, c.rfm_cell, c.segment
FROM loyalty.accounts a JOIN q ON q.program_id = a.program_id
-- (no recency score without a last purchase or boundaries: the code is NULL
-- and no cell matches, as before)
JOIN cells c ON c.code = (1 + width_bucket(a.last_purchase_at, q.r_above)) * 100
                         + (1 + width_bucket(a.purchase_count, q.f_above)) * 10
                         + (5 - width_bucket(-a.purchase_amount, q.m_below))
WHERE a.purchase_count > 0 AND a.status <> 'closed';
