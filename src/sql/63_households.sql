-- ---------------------------------------------------------------------------
-- Households (family accounts): an owner, adults and children of one program;
-- points stay with who earned them, and household_redeem spends the members'
-- combined spendable points first-to-expire-first, within the program's
-- limits per role.  The household is locked before its members.
-- ---------------------------------------------------------------------------

#include "parts/households.sql"
