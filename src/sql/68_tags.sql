-- ---------------------------------------------------------------------------
-- Member tags: labels the application or the program's rules put on members,
-- for targeting (coupon campaigns can ask for one).  Personal data: exported
-- by export_member, removed by erase_member.
-- ---------------------------------------------------------------------------

#include "parts/tags.sql"
