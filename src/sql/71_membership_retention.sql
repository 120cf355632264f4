-- ---------------------------------------------------------------------------
-- Membership retention: the shifted-beta-geometric model (src/sbg.c).
-- After the analytics fragment: the fit aggregate shares the BTYD models'
-- state functions.
-- ---------------------------------------------------------------------------

#include "parts/membership_retention.sql"
