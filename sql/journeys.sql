-- Lifecycle journeys: run_journeys() emits each due journey.<kind> event once
-- per member and occasion, with what a sender needs; a second run emits
-- nothing.  A procedure that commits, so not in pgTAP.
SET search_path = loyalty, public;
-- the programs' days are UTC days, as the session's
SET timezone = 'UTC';
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT create_program('journeys') AS p \gset
SELECT set_journey(:p, 'welcome', 0), set_journey(:p, 'welcome', 3, step => 2), set_journey(:p, 'inactive', 30),
       set_journey(:p, 'birthday', 7), set_journey(:p, 'anniversary', 0), set_journey(:p, 'tier_expiring', 7),
       set_journey(:p, 'win_back', 0), set_journey(:p, 'at_risk', 0);
-- new: welcome step 1 now, step 2 in three days
SELECT enroll(:p, 'app', 'new') AS new \gset
-- joined 50 days ago, last purchase 40 days ago
SELECT enroll(:p, 'app', 'older', now() - interval '3 days 1 hour') AS older \gset
SELECT enroll(:p, 'app', 'idle', now() - interval '50 days') AS idle \gset
SELECT earn(:idle, 20, occurred_at => now() - interval '40 days') AS idle_points;
-- a birthday in three days (born 30 years before), joined a year ago today
SELECT enroll(:p, 'app', 'bday', now() - interval '1 year', birthday => ((current_date + 3) - interval '30 years')::date) AS bday \gset
SELECT earn(:bday, 20) AS bday_points;
-- in tier grace for five more days
SELECT enroll(:p, 'app', 'grace') AS grace \gset
SELECT set_tier_grace(:grace, now() + interval '5 days');
-- a win-back segment, and a band that rose from low to high
SELECT refresh_segments_batch(:p, ARRAY[:grace], ARRAY['At Risk'], ARRAY['low'], current_date - 2) AS stored;
SELECT refresh_segments_batch(:p, ARRAY[:grace], ARRAY['At Risk'], ARRAY['high'], current_date) AS stored;

CALL run_journeys(:p);
SELECT CASE member_id WHEN :new THEN 'new' WHEN :older THEN 'older' WHEN :idle THEN 'idle' WHEN :bday THEN 'bday' WHEN :grace THEN 'grace' END AS member,
       kind, payload ->> 'step' AS step,
       regexp_replace(dedup_key, '[0-9]{4}-[0-9]{2}-[0-9]{2}', 'DATE') AS occasion
FROM events WHERE kind LIKE 'journey.%' AND program_id = :p
ORDER BY 1, 2, 3;
-- what a sender needs, without querying back
SELECT payload ? 'consent' AND payload ? 'preferred_channel' AND payload ? 'balance' AND payload ? 'segment'
       AND (payload ->> 'member_id')::bigint = member_id AS self_contained,
       payload ->> 'years' AS years, (payload ->> 'birthday')::date - current_date AS birthday_in_days
FROM events WHERE kind IN ('journey.anniversary', 'journey.birthday') AND program_id = :p ORDER BY kind;
SELECT payload ->> 'from_band' AS from_band, payload ->> 'to_band' AS to_band FROM events WHERE kind = 'journey.at_risk';
-- once per occasion: a second run emits nothing
SELECT count(*) AS events FROM events WHERE kind LIKE 'journey.%' \gset
CALL run_journeys(:p);
SELECT count(*) = :events AS nothing_new FROM events WHERE kind LIKE 'journey.%';
-- a new purchase is a new occasion for inactivity, once it is 30 days old
SELECT earn(:idle, 5, occurred_at => now() - interval '31 days') AS later_points;
CALL run_journeys(:p);
SELECT count(*) AS inactive_events FROM events WHERE kind = 'journey.inactive' AND member_id = :idle;
SELECT step, events, members FROM journey_summary WHERE program_id = :p AND journey = 'welcome' ORDER BY step;
-- bad input
SELECT set_journey(:p, 'nagging', 3);
SELECT set_journey(:p, 'inactive', -1);
SELECT set_journey(:p, 'inactive', 30, segments => '{Lost}');
CALL run_journeys(:p, as_of => now() + interval '1 day');
