-- Lifecycle journeys' objects, for the install script and the 1.3 -> 1.4 upgrade.

CREATE TABLE loyalty.journey_steps (
    program_id  bigint NOT NULL REFERENCES loyalty.programs,
    kind        text NOT NULL CHECK (kind IN ('welcome', 'inactive', 'at_risk', 'win_back', 'birthday', 'anniversary',
                                              'tier_expiring')),
    step        integer NOT NULL DEFAULT 1 CHECK (step BETWEEN 1 AND 100),
    days        integer NOT NULL CHECK (days BETWEEN 0 AND 3660),
    segments    text[],
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, kind, step)
);
COMMENT ON TABLE loyalty.journey_steps IS
    'The lifecycle journeys a program runs: each step emits a journey.<kind> event once per member and occasion (loyalty.run_journeys)';
COMMENT ON COLUMN loyalty.journey_steps.days IS
    'welcome: days after enrolment; inactive: days without a purchase; at_risk: days after the band rose; win_back: days in a win-back segment; birthday, anniversary: days before; tier_expiring: days before the tier''s grace ends';
COMMENT ON COLUMN loyalty.journey_steps.segments IS 'win_back: the stored segments that make a member eligible (default At Risk, Cannot Lose Them, Hibernating)';

CREATE TABLE loyalty.risk_band_changes (
    member_id   bigint NOT NULL,
    program_id  bigint NOT NULL,
    changed_on  date NOT NULL,
    from_band   text,
    to_band     text,
    PRIMARY KEY (member_id, changed_on)
);
COMMENT ON TABLE loyalty.risk_band_changes IS
    'Each change of a member''s stored churn-risk band by loyalty.refresh_segments (the day, from and to)';

SELECT pg_catalog.pg_extension_config_dump('loyalty.journey_steps', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.risk_band_changes', '');

INSERT INTO loyalty.event_kinds VALUES
    ('journey.welcome', 'Welcome series: step N, days after enrolment'),
    ('journey.inactive', 'No purchase for N days (once per last purchase)'),
    ('journey.at_risk', 'The member''s churn-risk band rose'),
    ('journey.win_back', 'The member entered a win-back segment'),
    ('journey.birthday', 'The member''s birthday is N days away'),
    ('journey.anniversary', 'The member''s membership anniversary is N days away'),
    ('journey.tier_expiring', 'The member''s tier ends with its grace period in N days');

#include "udfs/set_journey/1.4.sql"
COMMENT ON FUNCTION loyalty.set_journey(bigint, text, integer, integer, text[], boolean) IS
    'Start (or change, or stop with active => false) a lifecycle journey step of a program';
#include "udfs/run_journeys_batch/1.4.sql"
COMMENT ON FUNCTION loyalty.run_journeys_batch(bigint, timestamptz, bigint, integer) IS
    'Internal, one batch of loyalty.run_journeys(): emit the journey events due for the next members';
-- No SET search_path: the procedure commits (see loyalty.expire_points).
#include "udfs/run_journeys/1.4.sql"
COMMENT ON PROCEDURE loyalty.run_journeys(bigint, timestamptz, integer) IS
    'Batch job (e.g. daily with pg_cron): emit every journey event that is due, once per member and occasion, committing every batch_size members';

#include "udfs/journey_summary/1.4.sql"
COMMENT ON VIEW loyalty.journey_summary IS 'Journey events per program, journey, step and month';
COMMENT ON COLUMN loyalty.journey_summary.program_id IS 'Program';
COMMENT ON COLUMN loyalty.journey_summary.journey IS 'Journey (welcome, inactive, at_risk, win_back, birthday, anniversary, tier_expiring)';
COMMENT ON COLUMN loyalty.journey_summary.step IS 'Step';
COMMENT ON COLUMN loyalty.journey_summary.month IS 'Month the events were emitted';
COMMENT ON COLUMN loyalty.journey_summary.events IS 'Events emitted';
COMMENT ON COLUMN loyalty.journey_summary.members IS 'Members reached';
COMMENT ON COLUMN loyalty.journey_summary.delivered IS 'Events a consumer acknowledged';

REVOKE ALL ON FUNCTION loyalty.set_journey(bigint, text, integer, integer, text[], boolean),
    loyalty.run_journeys_batch(bigint, timestamptz, bigint, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.run_journeys(bigint, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.set_journey(bigint, text, integer, integer, text[], boolean),
    loyalty.run_journeys_batch(bigint, timestamptz, bigint, integer) TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.run_journeys(bigint, timestamptz, integer) TO loyalty_admin;
GRANT SELECT ON loyalty.journey_summary TO loyalty_analyst, loyalty_admin;
