-- Member profiles and data rights: update_member checks and records every
-- change; a birthday moved recently gives no birthday bonus; attributes
-- drive earning rules; export_member gives every table's rows of the member;
-- erase_member removes the personal data, forfeits the points by a ledger
-- entry and closes the member, with the books whole.  Runs with either store.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(39);

SELECT loyalty.create_program('pr', expiry_period => interval '1 year') AS p \gset
SELECT loyalty.enroll(:p, 'app', 'pr-1', birthday => '1990-04-01', region => 'Lyon') AS m,
       loyalty.enroll(:p, 'app', 'pr-2') AS n \gset

-- update_member -------------------------------------------------------------------------
SELECT is(loyalty.update_member(:m, region => 'Paris', preferred_channel => 'email',
                                consent => '{"email": true, "sms": false}', attributes => '{"pet": "dog", "vip": true}',
                                reason => 'moved'), 4, 'four fields changed');
SELECT is((SELECT (region, preferred_channel, consent, attributes)::text FROM loyalty.members WHERE member_id = :m),
          '(Paris,email,"{""sms"": false, ""email"": true}","{""pet"": ""dog"", ""vip"": true}")', 'the profile');
SELECT is((SELECT array_agg(field ORDER BY change_id) FROM loyalty.member_changes WHERE member_id = :m),
          ARRAY['region', 'preferred_channel', 'consent', 'attributes'], 'each change is recorded');
SELECT is((SELECT (old_value, new_value, reason, actor = current_user)::text FROM loyalty.member_changes
           WHERE member_id = :m AND field = 'region'), '("""Lyon""","""Paris""",moved,t)', 'with the old and the new value, why and who');
SELECT is(loyalty.update_member(:m, region => 'Paris'), 0, 'the same value again changes nothing');
SELECT is(loyalty.update_member(:m, attributes => '{"pet": null, "size": "L"}', consent => '{"sms": null}'), 2,
          'a key set to null is removed, others merge');
SELECT is((SELECT (consent, attributes)::text FROM loyalty.members WHERE member_id = :m),
          '("{""email"": true}","{""vip"": true, ""size"": ""L""}")', 'merged attributes and consent');
SELECT is(loyalty.update_member(:m, clear => '{region}'), 1, 'clear removes a field');
SELECT is((SELECT region FROM loyalty.members WHERE member_id = :m), NULL, 'the region is gone');
SELECT throws_ok(format('SELECT loyalty.update_member(%s, birthday => %L)', :m, current_date + 1), '22023', NULL,
                 'a birthday in the future is refused');
SELECT throws_ok(format('SELECT loyalty.update_member(%s, consent => %L)', :m, '{"email": "yes"}'), '22023', NULL,
                 'consent must be true or false');
SELECT throws_ok(format('SELECT loyalty.update_member(%s, attributes => %L)', :m, '[1]'), '22023', NULL,
                 'attributes must be an object');
SELECT throws_ok(format('SELECT loyalty.update_member(%s, clear => %L)', :m, '{name}'), '22023', NULL,
                 'an unknown field to clear is refused');
SELECT throws_ok(format('SELECT loyalty.update_member(%s, region => %L)', :m, ''), '22023', NULL, 'an empty region is refused');
SELECT throws_ok('SELECT loyalty.update_member(-1, region => ''x'')', 'P0002', NULL, 'an unknown member');
SELECT throws_ok('SELECT loyalty.update_member(NULL)', '22004', NULL, 'a NULL member');

-- birthday rules and attribute rules ----------------------------------------------------------
SELECT loyalty.create_earning_rule(:p, 'birthday', 'bonus', bonus_points => '100', birthday => 'day');
SELECT loyalty.create_earning_rule(:p, 'vip x2', 'multiply', multiplier => 2, member_attributes => '{"vip": true}');
SELECT throws_ok(format('SELECT loyalty.create_earning_rule(%s, %L, %L, multiplier => 2, member_attributes => %L)',
                        :p, 'bad', 'multiply', '"vip"'), '22023', NULL, 'member_attributes must be an object');
-- n's birthday set today: the bonus waits a year after the change
SELECT loyalty.update_member(:n, birthday => (current_date - interval '30 years')::date);
SELECT is(loyalty.earn(:n, 10), 10::bigint, 'a birthday set today gives no bonus today');
SELECT is((SELECT birthday_changed_at FROM loyalty.members WHERE member_id = :n), now(), 'the change time is kept');
UPDATE loyalty.programs SET birthday_change_wait = '0' WHERE program_id = :p;
SELECT is(loyalty.earn(:n, 10), 110::bigint, 'without a wait it counts at once');
UPDATE loyalty.programs SET birthday_change_wait = '1 year' WHERE program_id = :p;
SELECT is(loyalty.earn(:m, 10), 20::bigint, 'a member with {"vip": true} earns double');
SELECT is(loyalty.earn(:n, 10), 10::bigint, 'another does not');
SELECT is((SELECT details -> 'rules' FROM loyalty.ledger WHERE member_id = :m AND kind = 'earn')::text ~ 'vip x2', true,
          'the explanation names the rule');

-- export --------------------------------------------------------------------------------------
SELECT loyalty.award(:m, 50, 'goodwill');
SELECT loyalty.hold(:m, 30, ttl => '10 minutes');
SELECT loyalty.export_member(:m) AS doc \gset
SELECT is((:'doc'::jsonb -> 'members' -> 0 ->> 'preferred_channel'), 'email', 'the export has the profile');
SELECT is(jsonb_array_length(:'doc'::jsonb -> 'ledger'), 3, '... every ledger entry (earn, award, hold)');
SELECT is((:'doc'::jsonb -> 'identities' -> 0 ->> 'external_id'), 'pr-1', '... the identities');
SELECT is(jsonb_array_length(:'doc'::jsonb -> 'member_changes'), 7, '... and the profile history');
SELECT ok((:'doc'::jsonb) ?& ARRAY['accounts', 'lots', 'holds', 'events', 'idempotency_keys', 'tier_history'],
          'a key per table that holds member rows');

-- erasure -------------------------------------------------------------------------------------
SELECT is(loyalty.erase_member(:m, 'GDPR request 17'), 70::bigint, 'erasure forfeits the 70 points (20 earned, 50 awarded; the hold released)');
SELECT is((SELECT (status, birthday, region, preferred_channel, consent, attributes, erased_at = now())::text
           FROM loyalty.members WHERE member_id = :m), '(closed,,,,{},{},t)', 'no personal data left; closed');
SELECT is(loyalty.member_id(:p, 'app', 'pr-1'), NULL, 'the old identity finds nobody');
SELECT is((SELECT (kind, points::bigint, reason)::text FROM loyalty.ledger WHERE member_id = :m ORDER BY entry_id DESC LIMIT 1),
          '(forfeit,-70,"GDPR request 17")', 'a forfeit entry closes the liability');
SELECT is((SELECT count(*) FROM loyalty.member_changes WHERE member_id = :m AND (old_value IS NOT NULL OR new_value IS NOT NULL)),
          0::bigint, 'the history keeps no values');
SELECT is((SELECT count(*) FROM loyalty.events WHERE member_id = :m AND payload ? 'external_id'), 0::bigint,
          'no event payload names the identity');
SELECT is(loyalty.erase_member(:m, 'again'), 0::bigint, 'a second erasure does nothing');
SELECT throws_ok(format('SELECT loyalty.update_member(%s, region => %L)', :m, 'Nice'), '55000', NULL,
                 'an erased member''s data cannot come back');
SELECT is(loyalty.enroll(:p, 'app', 'pr-1') <> :m, true, 'the identity can enrol again, as a new member');

SELECT ok(has_function_privilege('loyalty_app', 'loyalty.update_member(bigint, date, text, text, jsonb, jsonb, text, text[])', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.erase_member(bigint, text)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_app', 'loyalty.export_member(bigint)', 'EXECUTE')
          AND NOT has_function_privilege('loyalty_admin', 'loyalty.forfeit_books(bigint, text)', 'EXECUTE')
          AND has_function_privilege('loyalty_admin', 'loyalty.erase_member(bigint, text)', 'EXECUTE')
          AND has_table_privilege('loyalty_analyst', 'loyalty.consent_summary', 'SELECT'),
          'the application updates profiles; export and erasure are the administrator''s');

SELECT is_empty('SELECT * FROM loyalty.verify()', 'the books balance');

SELECT * FROM finish();
ROLLBACK;
