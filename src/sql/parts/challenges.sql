-- Challenges, badges and streaks' objects, for the install script and the 1.3 -> 1.4 upgrade.

ALTER TABLE loyalty.programs
    ADD COLUMN has_challenges boolean NOT NULL DEFAULT false,
    ADD COLUMN challenge_clawback boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN loyalty.programs.has_challenges IS
    'The program has active challenges (kept by create_challenge and set_challenge_active): only then does a purchase look at them';
COMMENT ON COLUMN loyalty.programs.challenge_clawback IS
    'A refund that takes a paid challenge completion below its goal takes its points back (true) or lets it stand (false)';

CREATE TABLE loyalty.challenges (
    challenge_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    program_id     bigint NOT NULL REFERENCES loyalty.programs,
    code           text NOT NULL CHECK (code <> ''),
    name           text NOT NULL CHECK (name <> ''),
    metric         text NOT NULL CHECK (metric IN ('purchases', 'spend', 'visits', 'categories', 'activities',
                                                   'referrals', 'streak_weeks')),
    goal           numeric NOT NULL CHECK (goal > 0 AND goal < 1e12),
    period         text NOT NULL CHECK (period IN ('month', 'week', 'days', 'joining', 'campaign', 'streak')),
    period_days    integer CHECK (period_days BETWEEN 1 AND 3660),
    repeating      boolean NOT NULL DEFAULT false,
    reward_points  loyalty.points,
    badge          text CHECK (loyalty.valid_tag(badge)),
    categories     text[],
    channels       text[],
    activities     text[],
    min_amount     numeric CHECK (min_amount >= 0 AND min_amount < 'Infinity'),
    segments       text[],
    tags           text[],
    min_tier_rank  integer,
    valid_from     timestamptz,
    valid_until    timestamptz,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (program_id, code),
    CHECK (reward_points IS NOT NULL OR badge IS NOT NULL),
    CHECK ((period IN ('days', 'joining')) = (period_days IS NOT NULL)),
    CHECK ((metric = 'streak_weeks') = (period = 'streak')),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from)
);
-- the write path caches a program's challenges per rules_version
CREATE TRIGGER challenges_bump AFTER INSERT OR UPDATE OR DELETE ON loyalty.challenges
    FOR EACH ROW EXECUTE FUNCTION loyalty.rules_version_bump();
COMMENT ON TABLE loyalty.challenges IS
    'Challenges: a goal over purchases, spend, visits (days), categories, activities, referrals or consecutive weeks (streak_weeks), in a period (calendar month or week, N days from the first step, N days from joining, the campaign''s window, a streak), rewarded with points and/or a badge';
COMMENT ON COLUMN loyalty.challenges.period IS
    'month, week: calendar periods in the program''s time zone; days: period_days from the member''s first step; joining: the first period_days of membership; campaign: valid_from to valid_until; streak: a purchase in each of goal consecutive weeks';
COMMENT ON COLUMN loyalty.challenges.repeating IS
    'Completed again in each new period (month, week, days, streak); otherwise once per member';

-- No foreign keys or CHECK constraints on the per-fact tables: only the
-- write path (src/challenges.c) writes them, under the member's lock, for
-- challenges that exist (there is no way to delete one), never below zero; a
-- key check would cost a purchase a query per row, and a CHECK its
-- expression prepared again for every statement.
--
-- A member's progress is kept in two places.  The latest period of each
-- challenge the member has moved lives in one row per member
-- (challenge_state, parallel arrays, one element per challenge), so a
-- purchase that moves 20 challenges reads and writes one row, not 20;
-- every earlier period is a row of challenge_periods, moved there when a
-- later period of its challenge opens (or written there directly by a
-- back-dated fact).  loyalty.challenge_progress shows both as one.
CREATE TABLE loyalty.challenge_periods (
    member_id      bigint NOT NULL,
    challenge_id   bigint NOT NULL,
    period_start   timestamptz NOT NULL,
    period_end     timestamptz,
    program_id     bigint NOT NULL,
    value          numeric NOT NULL DEFAULT 0,
    items          jsonb,
    last_item      text,
    completed_at   timestamptz,
    completions    integer NOT NULL DEFAULT 0,
    award_entry    bigint,
    award_member   bigint,
    clawed_back_at timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, challenge_id, period_start)
);
CREATE INDEX challenge_periods_challenge_idx ON loyalty.challenge_periods (challenge_id, period_start);
COMMENT ON TABLE loyalty.challenge_periods IS
    'Each member''s earlier periods of each challenge (the latest one of each is in challenge_state); read them through challenge_progress';

CREATE TABLE loyalty.challenge_state (
    member_id         bigint NOT NULL PRIMARY KEY,
    program_id        bigint NOT NULL,
    challenge_ids     bigint[] NOT NULL,
    period_starts     timestamptz[] NOT NULL,
    period_ends       timestamptz[] NOT NULL,
    period_values     numeric[] NOT NULL,
    period_items      jsonb[] NOT NULL,
    last_items        text[] NOT NULL,
    completed_ats     timestamptz[] NOT NULL,
    completion_counts integer[] NOT NULL,
    award_entries     bigint[] NOT NULL,
    award_members     bigint[] NOT NULL,
    clawed_back_ats   timestamptz[] NOT NULL,
    updated_ats       timestamptz[] NOT NULL,
    joined_at         timestamptz,
    earlier_done      bigint[] NOT NULL
)
-- every purchase rewrites its member's row: room on each page keeps the
-- update heap-only, and a row of about 20 periods (2-4 kB) stays inline and
-- uncompressed, where the default target would compress it on every write
WITH (fillfactor = 50, toast_tuple_target = 8160);
COMMENT ON TABLE loyalty.challenge_state IS
    'Each member''s latest period of each challenge it has moved, one element per challenge in parallel arrays (the columns of challenge_progress); read them through challenge_progress';
COMMENT ON COLUMN loyalty.challenge_state.joined_at IS
    'The member''s joined_at (set at enrolment, never changed), kept when a challenge of the first days of membership first needs it, so that a purchase reads one row';
COMMENT ON COLUMN loyalty.challenge_state.earlier_done IS
    'The challenges with a completed period in challenge_periods: a challenge that does not repeat is done once completed, and a purchase need not read the earlier periods to know';

-- (the arrays are unnested in the select list, in step: no join per row;
-- as every view, it runs as the extension's owner and shows a role only the
-- programs it may see)
#include "udfs/challenge_progress/1.4.sql"
COMMENT ON VIEW loyalty.challenge_progress IS
    'Each member''s progress in each period of a challenge, moved in the same transaction as the purchase, activity or referral (and back by a refund): the latest period of each challenge (challenge_state) and the earlier ones (challenge_periods)';
COMMENT ON COLUMN loyalty.challenge_progress.member_id IS 'Member';
COMMENT ON COLUMN loyalty.challenge_progress.challenge_id IS 'Challenge';
COMMENT ON COLUMN loyalty.challenge_progress.period_start IS 'Start of the period';
COMMENT ON COLUMN loyalty.challenge_progress.period_end IS 'End of the period (NULL: open-ended)';
COMMENT ON COLUMN loyalty.challenge_progress.program_id IS 'Program';
COMMENT ON COLUMN loyalty.challenge_progress.value IS 'Progress in the period, towards the challenge''s goal';
COMMENT ON COLUMN loyalty.challenge_progress.items IS
    'For visits, categories and streaks: each day, category or week counted, with the number of facts behind it (a refund takes its own away)';
COMMENT ON COLUMN loyalty.challenge_progress.last_item IS 'The latest day, category or week counted';
COMMENT ON COLUMN loyalty.challenge_progress.completed_at IS 'When the period reached its goal (NULL: not, or undone by a refund)';
COMMENT ON COLUMN loyalty.challenge_progress.completions IS 'How many times the period was completed (a completion undone and made again counts again)';
COMMENT ON COLUMN loyalty.challenge_progress.award_entry IS 'The ledger entry that paid the completion''s points';
COMMENT ON COLUMN loyalty.challenge_progress.award_member IS
    'Whose ledger award_entry is in when not this member''s: the member merged into this one (directly or through other merges) that was paid (a merge carries progress, not ledger entries)';
COMMENT ON COLUMN loyalty.challenge_progress.clawed_back_at IS 'When a refund last undid the period''s completion';
COMMENT ON COLUMN loyalty.challenge_progress.updated_at IS 'When the period last changed';

-- (arrays, not a JSON document: a purchase moving 20 challenges writes a
-- row small enough to stay uncompressed)
CREATE TABLE loyalty.challenge_facts (
    member_id      bigint NOT NULL,
    entry_id       bigint NOT NULL,
    program_id     bigint NOT NULL,
    challenge_ids  bigint[] NOT NULL,
    period_starts  timestamptz[] NOT NULL,
    deltas         numeric[] NOT NULL,
    items          jsonb[] NOT NULL,
    standing       numeric NOT NULL DEFAULT 1,
    -- entry first: a purchase's entry id is the highest yet, so its key goes
    -- to the index's rightmost page without a descent from the root (the
    -- member's id, after it, keeps the key unique per shard on Citus)
    PRIMARY KEY (entry_id, member_id)
);
COMMENT ON TABLE loyalty.challenge_facts IS
    'What each purchase added to which challenge period, and the share of it not refunded: a refund takes back exactly that';
COMMENT ON COLUMN loyalty.challenge_facts.challenge_ids IS 'The challenges the purchase moved (the next three columns are parallel arrays)';
COMMENT ON COLUMN loyalty.challenge_facts.standing IS 'The share of the purchase not refunded, from 1 down to 0';
COMMENT ON COLUMN loyalty.challenge_facts.period_starts IS 'The period of each (its start)';
COMMENT ON COLUMN loyalty.challenge_facts.deltas IS 'What it added to each (NULL: counted by items)';
COMMENT ON COLUMN loyalty.challenge_facts.items IS 'The day, week or categories it counted for each (NULL: counted by deltas)';

CREATE TABLE loyalty.member_badges (
    member_id     bigint NOT NULL REFERENCES loyalty.members,
    badge         text NOT NULL,
    program_id    bigint NOT NULL,
    challenge_id  bigint,
    period_start  timestamptz,
    earned_at     timestamptz NOT NULL,
    PRIMARY KEY (member_id, badge)
);
COMMENT ON TABLE loyalty.member_badges IS 'Badges members earned (once each), with the challenge period that earned them';

SELECT pg_catalog.pg_extension_config_dump('loyalty.challenges', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.challenges_challenge_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.challenge_periods', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.challenge_state', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.challenge_facts', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_badges', '');

INSERT INTO loyalty.event_kinds VALUES
    ('challenge.completed', 'A member completed a challenge: the challenge, its period, the points and badge'),
    ('badge.earned', 'A member earned a badge for the first time');
ALTER TABLE loyalty.programs ALTER COLUMN event_kinds SET DEFAULT
    ARRAY['member.enrolled', 'points.earned', 'reward.redeemed', 'points.expiring', 'tier.changed',
          'membership.started', 'membership.renewed', 'membership.renewal_due', 'membership.lapsed',
          'membership.cancelled', 'membership.ended', 'membership.changed', 'coupon.redeemed',
          'challenge.completed', 'badge.earned'];

-- the write path's own definition of a challenge's periods (src/challenges.c)
#include "udfs/challenge_period/1.4.sql"
COMMENT ON FUNCTION loyalty.challenge_period(text, integer, timestamptz, timestamptz, timestamptz, text, timestamptz) IS
    'Internal: the period of a challenge a fact at a time falls in (or opens)';
-- the one place a period is stored (the latest of its challenge in
-- challenge_state, an earlier one in challenge_periods), for the SQL writers
#include "udfs/challenge_progress_put/1.4.sql"
COMMENT ON FUNCTION loyalty.challenge_progress_put(loyalty.challenge_progress) IS
    'Internal, under the member''s lock: store a period of a member''s challenge as given (new, or replacing the one with its member, challenge and start) where it belongs';
-- challenge_complete, challenge_move and challenge_refund run with their
-- caller's rights, not as definers: they are granted to no one and called
-- only by the extension's own functions (the write path, record_activity,
-- referral_purchase), which already run as the extension's owner; a
-- SECURITY DEFINER function called per purchase made each call about
-- 0.12 ms slower.
#include "udfs/challenge_complete/1.4.sql"
COMMENT ON FUNCTION loyalty.challenge_complete(bigint, bigint, timestamptz, timestamptz) IS
    'Internal: complete a member''s challenge period: the points (once per completion), the badge (once), the events';
#include "udfs/challenge_move/1.4.sql"
COMMENT ON FUNCTION loyalty.challenge_move(bigint, bigint, text, numeric, timestamptz, text, jsonb, text) IS
    'Internal, under the member''s lock: move every challenge a purchase, activity or referral counts for, and complete those that reach their goal';
#include "udfs/challenge_refund/1.4.sql"
COMMENT ON FUNCTION loyalty.challenge_refund(bigint, bigint, numeric) IS
    'Internal, under the member''s lock: take back what a refunded purchase added to challenges (standing: the share of it not refunded)';
#include "udfs/create_challenge/1.4.sql"
COMMENT ON FUNCTION loyalty.create_challenge(bigint, text, text, text, anycompatible, text, integer, boolean, numeric,
    text, text[], text[], text[], anycompatible, text[], text[], integer, timestamptz, timestamptz) IS
    'Create a challenge: a goal over a metric in a period, its reward (points and/or a badge) and who it is for; returns its id';
#include "udfs/set_challenge_active/1.4.sql"
COMMENT ON FUNCTION loyalty.set_challenge_active(bigint, boolean) IS 'Start or stop a challenge (progress is kept)';
#include "udfs/set_challenge_policy/1.4.sql"
COMMENT ON FUNCTION loyalty.set_challenge_policy(bigint, boolean) IS
    'Whether a refund that undoes a paid challenge completion takes its points back (clawback, the default) or lets it stand';
#include "udfs/member_progress/1.4.sql"
COMMENT ON FUNCTION loyalty.member_progress(bigint) IS
    'For progress bars: every challenge open to the member now (value, goal, percent, period, time left, completion) and the badges it earned';

#include "udfs/challenge_leaderboard/1.4.sql"
COMMENT ON VIEW loyalty.challenge_leaderboard IS 'Members ranked by progress in each period of each challenge';
COMMENT ON COLUMN loyalty.challenge_leaderboard.program_id IS 'Program';
COMMENT ON COLUMN loyalty.challenge_leaderboard.challenge_id IS 'Challenge';
COMMENT ON COLUMN loyalty.challenge_leaderboard.code IS 'Challenge code';
COMMENT ON COLUMN loyalty.challenge_leaderboard.name IS 'Challenge name';
COMMENT ON COLUMN loyalty.challenge_leaderboard.period_start IS 'Start of the period';
COMMENT ON COLUMN loyalty.challenge_leaderboard.period_end IS 'End of the period (NULL: open-ended)';
COMMENT ON COLUMN loyalty.challenge_leaderboard.member_id IS 'Member';
COMMENT ON COLUMN loyalty.challenge_leaderboard.value IS 'Progress in the period';
COMMENT ON COLUMN loyalty.challenge_leaderboard.goal IS 'The challenge''s goal';
COMMENT ON COLUMN loyalty.challenge_leaderboard.completed_at IS 'When the member reached the goal (NULL: not yet)';
COMMENT ON COLUMN loyalty.challenge_leaderboard.rank IS 'Rank in the period: most progress first, earlier completion first';
#include "udfs/badge_summary/1.4.sql"
COMMENT ON VIEW loyalty.badge_summary IS 'Members per badge';
COMMENT ON COLUMN loyalty.badge_summary.program_id IS 'Program';
COMMENT ON COLUMN loyalty.badge_summary.badge IS 'Badge';
COMMENT ON COLUMN loyalty.badge_summary.members IS 'Members who earned it';
COMMENT ON COLUMN loyalty.badge_summary.first_earned_at IS 'First time it was earned';
COMMENT ON COLUMN loyalty.badge_summary.last_earned_at IS 'Last time it was earned';

REVOKE ALL ON FUNCTION loyalty.challenge_period(text, integer, timestamptz, timestamptz, timestamptz, text, timestamptz),
    loyalty.challenge_progress_put(loyalty.challenge_progress),
    loyalty.challenge_complete(bigint, bigint, timestamptz, timestamptz),
    loyalty.challenge_move(bigint, bigint, text, numeric, timestamptz, text, jsonb, text),
    loyalty.challenge_refund(bigint, bigint, numeric),
    loyalty.create_challenge(bigint, text, text, text, anycompatible, text, integer, boolean, numeric,
        text, text[], text[], text[], anycompatible, text[], text[], integer, timestamptz, timestamptz),
    loyalty.set_challenge_active(bigint, boolean), loyalty.set_challenge_policy(bigint, boolean),
    loyalty.member_progress(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.create_challenge(bigint, text, text, text, anycompatible, text, integer, boolean, numeric,
        text, text[], text[], text[], anycompatible, text[], text[], integer, timestamptz, timestamptz),
    loyalty.set_challenge_active(bigint, boolean), loyalty.set_challenge_policy(bigint, boolean) TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.member_progress(bigint) TO loyalty_app, loyalty_admin;
GRANT SELECT ON loyalty.challenge_progress, loyalty.challenge_leaderboard, loyalty.badge_summary TO loyalty_analyst, loyalty_admin;
