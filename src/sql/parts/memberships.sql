-- Paid membership's objects, for the install script and the 1.3 -> 1.4
-- upgrade.

CREATE TABLE loyalty.membership_plans (
    plan_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id      bigint NOT NULL REFERENCES loyalty.programs,
    code            text NOT NULL CHECK (code <> ''),
    name            text NOT NULL,
    fee             numeric NOT NULL CHECK (fee >= 0),
    currency        text NOT NULL,
    period          text NOT NULL CHECK (period IN ('month', 'year')),
    tier            loyalty.tier,
    welcome_points  bigint NOT NULL DEFAULT 0 CHECK (welcome_points >= 0),
    monthly_points  bigint NOT NULL DEFAULT 0 CHECK (monthly_points >= 0),
    renewal_notice  interval NOT NULL DEFAULT '7 days' CHECK (renewal_notice >= '0'),
    reward_discount numeric NOT NULL DEFAULT 0 CHECK (reward_discount >= 0 AND reward_discount < 1),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, code)
);
COMMENT ON TABLE loyalty.membership_plans IS
    'Paid membership plans of a program: fee per month or year, and the benefits (a tier held for the period, welcome and monthly points; an earn multiplier is an earning rule on the plan)';
COMMENT ON COLUMN loyalty.membership_plans.tier IS 'Tier held while the membership is paid, unless the member''s own tier is higher';
COMMENT ON COLUMN loyalty.membership_plans.renewal_notice IS 'How long before the end of a period the membership.renewal_due event is written';
COMMENT ON COLUMN loyalty.membership_plans.reward_discount IS 'Share taken off the point cost of catalog rewards while the membership is paid (0.2: 20% off, rounded up to whole points)';
COMMENT ON COLUMN loyalty.membership_plans.active IS 'Offered to new members (existing memberships renew either way)';

CREATE TABLE loyalty.subscriptions (
    member_id             bigint NOT NULL,
    subscription_id       bigint GENERATED ALWAYS AS IDENTITY,
    program_id            bigint NOT NULL,
    plan_id               bigint NOT NULL,
    status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended', 'lapsed', 'changed')),
    started_at            timestamptz NOT NULL,
    current_period_start  timestamptz NOT NULL,
    current_period_end    timestamptz NOT NULL,
    periods               integer NOT NULL DEFAULT 1 CHECK (periods > 0),
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    cancelled_at          timestamptz,
    ended_at              timestamptz,
    end_reason            text,
    tier_given            loyalty.tier,
    notified_period_end   timestamptz,
    bonus_months          integer NOT NULL DEFAULT 0 CHECK (bonus_months >= 0),
    PRIMARY KEY (member_id, subscription_id)
);
-- one membership at a time
CREATE UNIQUE INDEX subscriptions_active_idx ON loyalty.subscriptions (member_id) WHERE status = 'active';
COMMENT ON TABLE loyalty.subscriptions IS
    'Paid memberships: the plan, the paid periods (counted from started_at), and how it ended (lapsed: not renewed; ended: cancelled; changed: replaced by a membership of another plan)';
COMMENT ON COLUMN loyalty.subscriptions.tier_given IS 'The plan''s tier the membership put the member in (NULL: the member''s own tier was higher)';
COMMENT ON COLUMN loyalty.subscriptions.cancel_at_period_end IS 'Cancelled: no renewal, the benefits hold to current_period_end';

CREATE TABLE loyalty.membership_payments (
    member_id          bigint NOT NULL,
    payment_id         bigint GENERATED ALWAYS AS IDENTITY,
    subscription_id    bigint NOT NULL,
    program_id         bigint NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('subscribe', 'renew', 'change', 'refund')),
    amount             numeric NOT NULL,
    currency           text NOT NULL,
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL,
    payment_reference  text NOT NULL CHECK (payment_reference <> ''),
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, payment_id),
    UNIQUE (member_id, payment_reference)
);
COMMENT ON TABLE loyalty.membership_payments IS
    'The payments the application took for memberships (the extension takes no money: it records the fact, by the application''s reference, and its effects); refunds are negative';

SELECT pg_catalog.pg_extension_config_dump('loyalty.membership_plans', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.membership_payments', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.membership_plans_plan_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.subscriptions_subscription_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.membership_payments_payment_id_seq', '');

ALTER TABLE loyalty.earning_rules ADD COLUMN plans text[];
COMMENT ON COLUMN loyalty.earning_rules.plans IS 'The rule applies to members who paid for one of these membership plans at the purchase; NULL: any member';

INSERT INTO loyalty.event_kinds VALUES
    ('membership.started', 'A paid membership started'),
    ('membership.renewed', 'A paid membership was renewed for another period'),
    ('membership.renewal_due', 'A paid membership ends soon unless renewed (plan''s renewal_notice before the end)'),
    ('membership.lapsed', 'A paid membership ended without a renewal'),
    ('membership.cancelled', 'A paid membership was cancelled with immediate effect'),
    ('membership.ended', 'A membership cancelled at period end reached it'),
    ('membership.changed', 'A paid membership moved to another plan');
-- (the kinds a new program emits by default are set once, with the coupons' kinds)

#include "udfs/create_plan/1.4.sql"
COMMENT ON FUNCTION loyalty.create_plan(bigint, text, text, anycompatible, text, text, loyalty.tier, anycompatible, bigint, bigint, interval, anycompatible) IS
    'Add a paid membership plan to a program (fee per month or year, a tier for the period, an earn multiplier, welcome and monthly points, a discount on rewards); returns its id';

#include "udfs/end_membership_benefits/1.4.sql"
COMMENT ON FUNCTION loyalty.end_membership_benefits(bigint, bigint, text) IS
    'Internal: a membership''s benefits end: the paid tier, while the membership still holds it, goes back to the tier the member qualifies for';

#include "udfs/membership_start/1.4.sql"
COMMENT ON FUNCTION loyalty.membership_start(bigint, bigint, timestamptz, text, numeric, text) IS
    'Internal (subscribe, change_membership_plan): a membership of a plan starts: its first period, the payment, the plan''s tier for the period';

#include "udfs/subscribe/1.4.sql"
COMMENT ON FUNCTION loyalty.subscribe(bigint, text, text, anycompatible, timestamptz) IS
    'Start a paid membership of a plan, recording the application''s payment (replayed by its reference); gives the plan''s tier for the period and its welcome points; returns the subscription id';

#include "udfs/renew_membership/1.4.sql"
COMMENT ON FUNCTION loyalty.renew_membership(bigint, text, anycompatible, timestamptz) IS
    'Pay for the next period of the member''s membership (replayed by payment reference; period_start names the period, so a retry under another reference cannot pay it twice, LY051); returns the new end';

#include "udfs/change_membership_plan/1.4.sql"
COMMENT ON FUNCTION loyalty.change_membership_plan(bigint, text, text, anycompatible) IS
    'Move the member''s membership to another plan now: the current one ends (status changed) with its benefits, the new plan''s starts with a period of its own, paid by the application''s charge (replayed by payment reference); returns the new subscription id';

#include "udfs/cancel_membership/1.4.sql"
COMMENT ON FUNCTION loyalty.cancel_membership(bigint, boolean, text, text, anycompatible) IS
    'Cancel the member''s membership: at period end (the benefits hold until then) or now (with a refund: the benefits end at once); returns when the benefits end';

#include "udfs/membership_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.membership_batch(timestamptz, integer) IS
    'One batch of membership upkeep as of a time: membership.renewal_due events, monthly points, memberships whose period is over lapsed or ended (their benefits end)';

#include "udfs/run_memberships/1.4.sql"
COMMENT ON PROCEDURE loyalty.run_memberships(timestamptz, integer) IS
    'Membership upkeep in batches, each committed (for pg_cron): renewal notices, monthly points, lapses';

#include "udfs/membership_kpis/1.4.sql"
COMMENT ON VIEW loyalty.membership_kpis IS 'Paid memberships per program and month: paying members, new, renewed, lapsed and cancelled memberships, renewal rate, revenue';
COMMENT ON COLUMN loyalty.membership_kpis.program_id IS 'Program';
COMMENT ON COLUMN loyalty.membership_kpis.month IS 'First day of the month';
COMMENT ON COLUMN loyalty.membership_kpis.paying_members IS 'Members with a paid membership at the end of the month';
COMMENT ON COLUMN loyalty.membership_kpis.new_memberships IS 'Memberships started (first payments)';
COMMENT ON COLUMN loyalty.membership_kpis.renewals IS 'Renewal payments';
COMMENT ON COLUMN loyalty.membership_kpis.lapsed IS 'Memberships that ended without a renewal';
COMMENT ON COLUMN loyalty.membership_kpis.plan_changes IS 'Memberships replaced by one of another plan (change_membership_plan)';
COMMENT ON COLUMN loyalty.membership_kpis.cancelled IS 'Memberships that ended by cancellation';
COMMENT ON COLUMN loyalty.membership_kpis.renewal_rate IS 'renewals / (renewals + lapsed + cancelled) in the month';
COMMENT ON COLUMN loyalty.membership_kpis.revenue IS 'Membership payments less refunds, in the plans'' currency';

REVOKE ALL ON FUNCTION loyalty.create_plan(bigint, text, text, anycompatible, text, text, loyalty.tier, anycompatible, bigint, bigint, interval, anycompatible),
    loyalty.end_membership_benefits(bigint, bigint, text),
    loyalty.membership_start(bigint, bigint, timestamptz, text, numeric, text),
    loyalty.subscribe(bigint, text, text, anycompatible, timestamptz),
    loyalty.renew_membership(bigint, text, anycompatible, timestamptz),
    loyalty.cancel_membership(bigint, boolean, text, text, anycompatible),
    loyalty.change_membership_plan(bigint, text, text, anycompatible),
    loyalty.membership_batch(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.run_memberships(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.subscribe(bigint, text, text, anycompatible, timestamptz),
    loyalty.renew_membership(bigint, text, anycompatible, timestamptz),
    loyalty.cancel_membership(bigint, boolean, text, text, anycompatible),
    loyalty.change_membership_plan(bigint, text, text, anycompatible) TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.create_plan(bigint, text, text, anycompatible, text, text, loyalty.tier, anycompatible, bigint, bigint, interval, anycompatible),
    loyalty.membership_batch(timestamptz, integer) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.run_memberships(timestamptz, integer) TO loyalty_admin;
GRANT SELECT ON loyalty.membership_kpis TO loyalty_analyst, loyalty_admin;
