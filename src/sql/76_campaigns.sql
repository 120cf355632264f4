-- ---------------------------------------------------------------------------
-- Campaign results: control groups held out of a rule, coupon campaign,
-- challenge or journey step, and what each campaign reached, cost and
-- changed against its control group.
-- ---------------------------------------------------------------------------

#include "parts/campaigns.sql"
