-- ---------------------------------------------------------------------------
-- Paid membership: plans with a fee per month or year and benefits held for
-- the paid period (a tier, welcome and monthly points, an earn multiplier by
-- an earning rule on the plan); subscribe, renew and cancel record the
-- application's payments; membership_batch() sends renewal notices, pays
-- monthly points and ends what was not renewed.
-- ---------------------------------------------------------------------------

#include "parts/memberships.sql"
