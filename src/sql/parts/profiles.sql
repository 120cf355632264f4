-- Member profiles and data rights' objects, for the install script and the
-- 1.3 -> 1.4 upgrade.

ALTER TABLE loyalty.members
    ADD COLUMN preferred_channel text CHECK (preferred_channel <> ''),
    ADD COLUMN consent jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(consent) = 'object'),
    ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    ADD COLUMN birthday_changed_at timestamptz,
    ADD COLUMN erased_at timestamptz;
COMMENT ON COLUMN loyalty.members.preferred_channel IS 'The channel the member prefers to be reached through';
COMMENT ON COLUMN loyalty.members.consent IS 'Marketing consent per channel: {"email": true, "sms": false}; a channel not named was not asked';
COMMENT ON COLUMN loyalty.members.attributes IS 'Free attributes (a JSON object) the program keeps, usable in earning-rule conditions (member_attributes)';
COMMENT ON COLUMN loyalty.members.birthday_changed_at IS 'When update_member last changed the birthday: a birthday bonus waits the program''s birthday_change_wait after it';
COMMENT ON COLUMN loyalty.members.erased_at IS 'When erase_member removed the member''s personal data (the member is closed and can no longer be found by an identity)';

ALTER TABLE loyalty.programs
    ADD COLUMN birthday_change_wait interval NOT NULL DEFAULT '1 year' CHECK (birthday_change_wait >= '0');
COMMENT ON COLUMN loyalty.programs.birthday_change_wait IS
    'A birthday changed by update_member counts for birthday rules only this long after the change (no second birthday bonus by moving the date)';
GRANT UPDATE (birthday_change_wait) ON loyalty.programs TO loyalty_admin;

ALTER TABLE loyalty.earning_rules
    ADD COLUMN member_attributes jsonb CHECK (jsonb_typeof(member_attributes) = 'object');
COMMENT ON COLUMN loyalty.earning_rules.member_attributes IS
    'The rule applies to members whose attributes contain this JSON object (@>); NULL: any member';

CREATE TABLE loyalty.member_changes (
    member_id   bigint NOT NULL,
    change_id   bigint GENERATED ALWAYS AS IDENTITY,
    program_id  bigint NOT NULL,
    field       text NOT NULL,
    old_value   jsonb,
    new_value   jsonb,
    reason      text,
    actor       text NOT NULL DEFAULT current_user,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (member_id, change_id)
);
COMMENT ON TABLE loyalty.member_changes IS
    'Every change of a member''s profile by update_member: the field, the old and the new value, who, when, why; erase_member keeps the rows without their values';
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_changes', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_changes_change_id_seq', '');

#include "udfs/update_member/1.4.sql"
COMMENT ON FUNCTION loyalty.update_member(bigint, date, text, text, jsonb, jsonb, text, text[]) IS
    'Change a member''s birthday, region, preferred channel, consent per channel and attributes (NULL: unchanged; clear names fields to remove); records each change; returns the number of fields changed';

#include "udfs/export_member/1.4.sql"
COMMENT ON FUNCTION loyalty.export_member(bigint) IS
    'Everything the program holds on one member, as one JSON document (a data-subject access request): a key per table with the member''s rows';

#include "udfs/forfeit_books/1.4.sql"
COMMENT ON FUNCTION loyalty.forfeit_books(bigint, text) IS
    'Internal: release the member''s holds, write off its lots and debt with one forfeit entry, close it; returns the balance forfeited';

#include "udfs/erase_member/1.4.sql"
COMMENT ON FUNCTION loyalty.erase_member(bigint, text) IS
    'Remove a member''s personal data (identities, birthday, region, consent, attributes, the values of its profile history, identities in event payloads), forfeit its points with a ledger entry and close it; the books stay whole; returns the points forfeited';

#include "udfs/consent_summary/1.4.sql"
COMMENT ON VIEW loyalty.consent_summary IS 'Marketing consent per program and channel';
COMMENT ON COLUMN loyalty.consent_summary.program_id IS 'Program';
COMMENT ON COLUMN loyalty.consent_summary.channel IS 'Channel the consent is for (as the application names it)';
COMMENT ON COLUMN loyalty.consent_summary.opted_in IS 'Members (not closed) who consented';
COMMENT ON COLUMN loyalty.consent_summary.opted_out IS 'Members (not closed) who refused';
COMMENT ON COLUMN loyalty.consent_summary.members IS 'Members (not closed) of the program: the rest were not asked';

REVOKE ALL ON FUNCTION loyalty.update_member(bigint, date, text, text, jsonb, jsonb, text, text[]),
    loyalty.export_member(bigint), loyalty.forfeit_books(bigint, text), loyalty.erase_member(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.update_member(bigint, date, text, text, jsonb, jsonb, text, text[]) TO loyalty_app, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.export_member(bigint), loyalty.erase_member(bigint, text) TO loyalty_admin;
GRANT SELECT ON loyalty.consent_summary TO loyalty_analyst, loyalty_admin;
