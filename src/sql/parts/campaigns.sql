-- Campaign results' objects, for the install script and the 1.3 -> 1.4 upgrade.

-- C, written once: the write path asks it for earning rules, SQL for the rest
#include "udfs/in_control/1.4.sql"
COMMENT ON FUNCTION loyalty.in_control(bigint, text, float8) IS
    'Whether a member is in a campaign''s control group: a fixed hash of the campaign''s seed and the member id in 10,000 buckets, below share';

ALTER TABLE loyalty.earning_rules
    ADD COLUMN control_share numeric NOT NULL DEFAULT 0 CHECK (control_share >= 0 AND control_share < 1),
    ADD COLUMN control_seed text NOT NULL DEFAULT md5(random()::text);
ALTER TABLE loyalty.coupon_campaigns
    ADD COLUMN control_share numeric NOT NULL DEFAULT 0 CHECK (control_share >= 0 AND control_share < 1),
    ADD COLUMN control_seed text NOT NULL DEFAULT md5(random()::text);
ALTER TABLE loyalty.challenges
    ADD COLUMN control_share numeric NOT NULL DEFAULT 0 CHECK (control_share >= 0 AND control_share < 1),
    ADD COLUMN control_seed text NOT NULL DEFAULT md5(random()::text);
ALTER TABLE loyalty.journey_steps
    ADD COLUMN step_id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN control_share numeric NOT NULL DEFAULT 0 CHECK (control_share >= 0 AND control_share < 1),
    ADD COLUMN control_seed text NOT NULL DEFAULT md5(random()::text);
SELECT pg_catalog.pg_extension_config_dump('loyalty.journey_steps_step_id_seq', '');
COMMENT ON COLUMN loyalty.earning_rules.control_share IS 'Share of the program''s members held out of the rule to measure it (campaign_results); 0: none';
COMMENT ON COLUMN loyalty.coupon_campaigns.control_share IS 'Share of the program''s members held out of the campaign to measure it (reason control_group); 0: none';
COMMENT ON COLUMN loyalty.challenges.control_share IS 'Share of the program''s members held out of the challenge to measure it; 0: none';
COMMENT ON COLUMN loyalty.journey_steps.control_share IS 'Share of the program''s members who get no event of the step, to measure it; 0: none';

#include "udfs/set_control_group/1.4.sql"
COMMENT ON FUNCTION loyalty.set_control_group(text, bigint, anycompatible, text) IS
    'Hold out a random share of the program''s members from a campaign (rule, coupon, challenge or journey step), fixed by the member id and the campaign''s seed (a new seed draws a new group)';

#include "udfs/campaign_results/1.4.sql"
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES
        (NULL, 'Per campaign (earning rule, coupon campaign, challenge, journey step): who it reached, what it cost, and the purchases and revenue of its members against its control group over its window, with the uplift and its 95% interval'),
        ('program_id', 'Program'), ('kind', 'rule, coupon, challenge or journey'), ('campaign_id', 'Rule, campaign, challenge or journey step id'),
        ('name', 'Name'), ('window_start', 'Start of the window compared (the campaign''s start, or its creation)'),
        ('window_end', 'End of the window compared (the campaign''s end; NULL: open, up to now)'), ('control_share', 'Share held out'),
        ('members', 'Members of the program in the window, not held out'), ('control_members', 'Members held out'),
        ('reached', 'Members who got something: a coupon used, challenge progress, a journey event, a rule applied'),
        ('redemptions', 'Coupons used, challenges completed, journey events or earns the rule applied to'),
        ('points_issued', 'Points given (coupons, challenges net of clawbacks; for a rule, what the purchases it applied to earned beyond the program''s rate, shared equally among the rules that applied to each)'),
        ('discounts', 'Money off given by coupons'), ('cost', 'Discounts plus points at the program''s point_value'),
        ('purchases', 'Purchases of the members in the window (net of refunded ones)'), ('control_purchases', 'Purchases of the control group'),
        ('revenue', 'Revenue of the members in the window, net of refunds'), ('control_revenue', 'Revenue of the control group'),
        ('revenue_per_member', 'Revenue per member'), ('control_revenue_per_member', 'Revenue per member of the control group'),
        ('uplift_per_member', 'Revenue per member minus the control group''s'),
        ('uplift_low', 'Lower end of the uplift''s 95% interval (Welch; NULL without a control group)'),
        ('uplift_high', 'Upper end of the uplift''s 95% interval'),
        ('incremental_purchases', 'Purchases beyond what the control group''s rate predicts for the members'),
        ('cost_per_incremental_purchase', 'Cost over incremental purchases (NULL when there are none)')
    ) v(col, txt) LOOP
        IF c.col IS NULL THEN
            EXECUTE format('COMMENT ON VIEW loyalty.campaign_results IS %L', c.txt);
        ELSE
            EXECUTE format('COMMENT ON COLUMN loyalty.campaign_results.%I IS %L', c.col, c.txt);
        END IF;
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION loyalty.in_control(bigint, text, float8),
    loyalty.set_control_group(text, bigint, anycompatible, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.set_control_group(text, bigint, anycompatible, text) TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.in_control(bigint, text, float8) TO loyalty_admin;
GRANT SELECT ON loyalty.campaign_results TO loyalty_analyst, loyalty_admin;
