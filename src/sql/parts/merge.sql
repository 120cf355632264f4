-- What a merge carries besides the books (ledger.c carries those), for the
-- install script and the 1.3 -> 1.4 upgrade.

-- Called by merge_members with both members locked, as the extension's
-- owner (it is granted to no one).
#include "udfs/merge_engagement/1.4.sql"
COMMENT ON FUNCTION loyalty.merge_engagement(bigint, bigint) IS
    'Internal, under both members'' locks: a merge gives the survivor the absorbed member''s tags, badges, challenge progress (added up) and survey answers, and releases its held coupons';
REVOKE ALL ON FUNCTION loyalty.merge_engagement(bigint, bigint) FROM PUBLIC;
