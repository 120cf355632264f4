-- ---------------------------------------------------------------------------
-- Member profiles and data rights: update_member records every change of a
-- member's personal data; export_member gives all the program holds on a
-- person; erase_member removes the personal data and forfeits the points by
-- a ledger entry, so that the books stay whole.
-- ---------------------------------------------------------------------------

#include "parts/profiles.sql"
