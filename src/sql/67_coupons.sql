-- ---------------------------------------------------------------------------
-- Coupons and promo codes: campaigns with an offer and limits, a public code
-- or generated single-use codes (Crockford base 32 with a check character),
-- validate_coupon (writing nothing), and redeem_coupon's hold, captured with
-- the order (bonus points credited then) or released; a use is counted under
-- the code's and the campaign's locks, taken after the member's.
-- ---------------------------------------------------------------------------

#include "parts/coupons.sql"
