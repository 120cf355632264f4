-- ---------------------------------------------------------------------------
-- Segments that act: loyalty.refresh_segments() stores each member's RFM
-- segment and churn-risk band on the account, so earning rules (segments,
-- risk_bands, tags), coupon campaigns and challenges can target them at the
-- moment of a purchase without recomputing the analytics.
-- ---------------------------------------------------------------------------

#include "parts/segments.sql"
