-- Stored segments' objects, for the install script and the 1.3 -> 1.4 upgrade.

ALTER TABLE loyalty.accounts ADD COLUMN risk_band text, ADD COLUMN segment_since date;
COMMENT ON COLUMN loyalty.accounts.risk_band IS 'The member''s churn-risk band (low, medium, high) as of the last loyalty.refresh_segments(); earning rules can target it';
COMMENT ON COLUMN loyalty.accounts.segment_since IS 'The day (program time zone) the member entered its current segment';

ALTER TABLE loyalty.earning_rules ADD COLUMN tags text[], ADD COLUMN risk_bands text[], ADD COLUMN apply_tags text[];
COMMENT ON COLUMN loyalty.earning_rules.tags IS 'The rule applies to members with one of these tags; NULL: any member';
COMMENT ON COLUMN loyalty.earning_rules.apply_tags IS 'Tags the rule puts on the member of a purchase it applies to (in the purchase''s transaction); NULL: none';
COMMENT ON COLUMN loyalty.earning_rules.risk_bands IS 'The rule applies to members in one of these stored churn-risk bands; NULL: any member';

#include "udfs/books_distributed/1.4.sql"
COMMENT ON FUNCTION loyalty.books_distributed() IS
    'Internal: whether the books are Citus tables (the batch jobs then go one member at a time)';
REVOKE ALL ON FUNCTION loyalty.books_distributed() FROM PUBLIC;

#include "udfs/apply_segments/1.4.sql"
COMMENT ON FUNCTION loyalty.apply_segments(bigint[], text[], text[], date[]) IS
    'Internal: a segment refresh''s results for a batch of members, written through the ledger store (the caller holds their locks)';
REVOKE ALL ON FUNCTION loyalty.apply_segments(bigint[], text[], text[], date[]) FROM PUBLIC;

#include "udfs/refresh_segments_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.refresh_segments_batch(bigint, bigint[], text[], text[], date) IS
    'Internal, one batch of loyalty.refresh_segments(): lock the members in id order and store each one''s segment and risk band where they changed; returns how many changed';
REVOKE ALL ON FUNCTION loyalty.refresh_segments_batch(bigint, bigint[], text[], text[], date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.refresh_segments_batch(bigint, bigint[], text[], text[], date) TO loyalty_admin;

-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/refresh_segments/1.4.sql"
COMMENT ON PROCEDURE loyalty.refresh_segments(bigint, integer) IS
    'Batch job (e.g. nightly with pg_cron): store each member''s RFM segment (member_rfm) and churn-risk band (churn_risk) on its account, with the day it entered the segment, for one program or all; writes only members whose values changed, committing every batch_size members';
REVOKE ALL ON PROCEDURE loyalty.refresh_segments(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE loyalty.refresh_segments(bigint, integer) TO loyalty_admin;

#include "udfs/member_segments/1.4.sql"
COMMENT ON VIEW loyalty.member_segments IS 'Each open member''s stored segment, risk band and tags: what earning rules, coupons and challenges target';
COMMENT ON COLUMN loyalty.member_segments.program_id IS 'Program';
COMMENT ON COLUMN loyalty.member_segments.member_id IS 'Member';
COMMENT ON COLUMN loyalty.member_segments.segment IS 'RFM segment stored by the last refresh_segments() (NULL: no purchase yet)';
COMMENT ON COLUMN loyalty.member_segments.segment_since IS 'Day the member entered the segment';
COMMENT ON COLUMN loyalty.member_segments.risk_band IS 'Churn-risk band stored by the last refresh_segments() (NULL: no model)';
COMMENT ON COLUMN loyalty.member_segments.tags IS 'The member''s tags, sorted';
GRANT SELECT ON loyalty.member_segments TO loyalty_analyst, loyalty_admin;
