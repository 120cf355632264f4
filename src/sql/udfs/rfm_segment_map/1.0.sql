CREATE VIEW loyalty.rfm_segment_map AS
SELECT * FROM loyalty.rfm_segments
UNION ALL
SELECT * FROM loyalty.rfm_segments_standard WHERE NOT EXISTS (SELECT FROM loyalty.rfm_segments);
