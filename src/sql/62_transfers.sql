-- ---------------------------------------------------------------------------
-- Point transfers: a member gives points to another member of the program.
-- The C write path consumes the sender's lots first-to-expire-first and gives
-- the receiver lots of the same points with the same expiry dates; both
-- ledger rows are of kind 'transfer', the receiver's naming the sender's as
-- its source_entry.  An administrator can reverse a transfer.
-- ---------------------------------------------------------------------------

#include "parts/transfers.sql"
