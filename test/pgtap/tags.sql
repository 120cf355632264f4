-- Member tags: tag_member and untag_member (lower case, idempotent, input
-- checked), coupon campaigns that ask for a tag, export and erasure.
BEGIN;
SET LOCAL search_path = public, loyalty;
SELECT plan(19);

SELECT loyalty.create_program('tags') AS p \gset
SELECT loyalty.enroll(:p, 'app', 'ivy') AS ivy, loyalty.enroll(:p, 'app', 'jo') AS jo \gset

SELECT is(loyalty.tag_member(:ivy, ' Win-Back '), true, 'a new tag');
SELECT is(loyalty.tag_member(:ivy, 'win-back'), false, 'the same tag again: nothing new (kept in lower case)');
SELECT is((SELECT array_agg(tag) FROM loyalty.member_tags WHERE member_id = :ivy), ARRAY['win-back'], 'one tag');
SELECT throws_ok(format('SELECT loyalty.tag_member(%s, %L)', :ivy, 'no spaces'), '22023', NULL, 'a tag with a space');
SELECT throws_ok(format('SELECT loyalty.tag_member(%s, %L)', :ivy, ''), '22023', NULL, 'an empty tag');
SELECT throws_ok(format('SELECT loyalty.tag_member(%s, NULL)', :ivy), '22004', NULL, 'a NULL tag');
SELECT throws_ok('SELECT loyalty.tag_member(-1, ''x'')', 'P0002', NULL, 'an unknown member');

-- a campaign for tagged members only
SELECT loyalty.create_coupon_campaign(:p, 'come back', 'bonus_points', 100, code => 'BACK', tags => '{WIN-BACK}');
SELECT is(loyalty.validate_coupon(:ivy, 'BACK') ->> 'valid', 'true', 'a tagged member may use it');
SELECT is(loyalty.validate_coupon(:jo, 'BACK') ->> 'reason', 'tag', 'another may not');
SELECT is(loyalty.untag_member(:ivy, 'WIN-BACK'), true, 'the tag taken off');
SELECT is(loyalty.validate_coupon(:ivy, 'BACK') ->> 'reason', 'tag', '... and the coupon with it');

-- a rule tags the members of the purchases it applies to, in the purchase's transaction
SELECT create_earning_rule(:p, 'wine lovers', 'multiply', multiplier => 1, categories => '{wine}',
                           apply_tags => '{Wine-Lover}') > 0 AS rule;
SELECT earn(:ivy, NULL, reference => 'w1', lines => '[{"category": "bread", "amount": 4}]');
SELECT is((SELECT count(*) FROM member_tags WHERE member_id = :ivy AND tag = 'wine-lover'), 0::bigint, 'no wine: no tag');
SELECT earn(:ivy, NULL, reference => 'w2', lines => '[{"category": "wine", "amount": 12}]');
SELECT is((SELECT tagged_by FROM member_tags WHERE member_id = :ivy AND tag = 'wine-lover'), 'rule', 'wine: tagged by the rule');
SELECT is((SELECT details -> 'rules' -> 0 -> 'tags' FROM ledger WHERE reference = 'w2'), '["wine-lover"]'::jsonb,
          '... as the earn''s explanation says');
SELECT earn(:ivy, NULL, reference => 'w3', lines => '[{"category": "wine", "amount": 12}]');
SELECT is((SELECT count(*) FROM member_tags WHERE member_id = :ivy AND tag = 'wine-lover'), 1::bigint, 'tagged once');
SELECT throws_ok(format('SELECT loyalty.create_earning_rule(%s, %L, %L, multiplier => 1, apply_tags => %L)', :p, 'bad', 'multiply', '{"a b"}'),
                 '22023', NULL, 'a rule''s tag is checked');

-- personal data: exported, and erased with the member
SELECT loyalty.tag_member(:jo, 'vip');
SELECT is(loyalty.export_member(:jo) -> 'member_tags' -> 0 ->> 'tag', 'vip', 'export_member() includes the tags');
SELECT loyalty.erase_member(:jo);
SELECT is((SELECT count(*) FROM loyalty.member_tags WHERE member_id = :jo), 0::bigint, 'erase_member() removes them');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');

SELECT * FROM finish();
ROLLBACK;
