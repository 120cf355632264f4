-- ---------------------------------------------------------------------------
-- Lifecycle journeys: welcome series, inactivity, rising churn risk,
-- win-back, birthdays, anniversaries, tiers about to end.  A program turns
-- steps on with set_journey; the daily job run_journeys emits each due
-- event once per member and occasion, with what a sender needs to act.
-- ---------------------------------------------------------------------------

#include "parts/journeys.sql"
