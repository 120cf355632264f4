-- ---------------------------------------------------------------------------
-- Surveys and NPS: a member's response (score 0-10, comment, channel,
-- answers), one per member and survey, rewarded once; NPS by month, tier,
-- segment and channel for analysts.
-- ---------------------------------------------------------------------------

#include "parts/surveys.sql"
