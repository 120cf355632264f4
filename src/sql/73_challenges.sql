-- ---------------------------------------------------------------------------
-- Challenges, badges and streaks: goals over purchases, spend, visits,
-- categories, activities and referrals in a period, or a streak of weeks,
-- moved in the same transaction as the fact (the write path calls
-- challenge_move when the program has active challenges), completed once
-- per period with points through the ledger and a badge, and taken back by
-- a refund.
-- ---------------------------------------------------------------------------

#include "parts/challenges.sql"
