-- ---------------------------------------------------------------------------
-- Membership retention: the shifted-beta-geometric model (src/sbg.c) fitted
-- per plan on the program's subscriptions, and what it predicts for each
-- paid membership (renewal, remaining periods, discounted residual lifetime
-- and revenue) and for each plan (its survival curve).  After the analytics
-- fragment: the fit aggregate shares the BTYD models' state functions.
-- ---------------------------------------------------------------------------

#include "parts/membership_retention.sql"
