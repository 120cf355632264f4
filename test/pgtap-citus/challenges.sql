-- Challenges on a Citus cluster: definitions are a reference table, progress
-- (the state row of latest periods and the earlier periods), facts and
-- badges are per member on its shard; a purchase completes a
-- challenge (award and badge on the member's shard), a refund claws it back,
-- and a referee's first purchase moves its referrer's challenge on the other
-- shard.  Run by test/scripts/citus.sh after loyalty.distribute().
BEGIN;
SELECT plan(13);

SELECT loyalty.create_program('tap-challenges') AS p \gset
CREATE TEMP TABLE chm AS SELECT loyalty.enroll(:p, 'app', 'ch-' || g) AS m FROM generate_series(1, 8) g;
SELECT a.m AS a, b.m AS b FROM chm a, chm b
WHERE get_shard_id_for_distribution_column('loyalty.members', a.m)
      <> get_shard_id_for_distribution_column('loyalty.members', b.m)
ORDER BY a.m, b.m LIMIT 1 \gset
SELECT loyalty.create_challenge(:p, 'two', 'Two purchases', 'purchases', 2, 'campaign', reward_points => '7',
                                badge => 'pair') AS two \gset
SELECT loyalty.create_challenge(:p, 'friend', 'Bring a friend', 'referrals', 1, 'campaign', reward_points => '3') AS friend \gset
SELECT loyalty.earn(:a, 10, reference => 'tch-1'), loyalty.earn(:a, 10, reference => 'tch-2');
-- (values read first: a statement on one member's rows runs on its worker, where pgTAP has no plan)
SELECT balance::bigint AS bal FROM loyalty.accounts WHERE member_id = :a \gset
SELECT badge FROM loyalty.member_badges WHERE member_id = :a \gset
SELECT is(:bal::bigint, 27::bigint, 'two purchases complete it: 7 points');
SELECT is(:'badge'::text, 'pair', '... and the badge, on the member''s shard');
SELECT loyalty.refund(:a, 'tch-2');
SELECT balance::bigint AS bal FROM loyalty.accounts WHERE member_id = :a \gset
SELECT count(*) AS badges FROM loyalty.member_badges WHERE member_id = :a \gset
SELECT is(:bal::bigint, 10::bigint, 'the refund claws the 7 points back');
SELECT is(:badges::bigint, 0::bigint, '... and the badge');
-- a referee on the other shard: its first purchase moves the referrer's challenge
SELECT loyalty.set_referral_rules(:p, '0', '0');
SELECT loyalty.enroll(:p, 'app', 'ch-ref', referral_code => loyalty.referral_code(:a)) AS r \gset
SELECT loyalty.earn(:r, 30, reference => 'tch-r');
SELECT value AS friends FROM loyalty.challenge_progress WHERE member_id = :a AND challenge_id = :friend \gset
SELECT is(:friends::numeric, 1::numeric, 'the referral counted for the referrer');
-- a merge across shards carries progress, badges and tags to the survivor
SELECT loyalty.earn(:b, 10, reference => 'tch-b1'), loyalty.earn(:b, 10, reference => 'tch-b2');
SELECT loyalty.tag_member(:b, 'moved');
SELECT loyalty.merge_members(:a, :b) IS NOT NULL AS merged;
SELECT value AS v FROM loyalty.challenge_progress WHERE member_id = :a AND challenge_id = :two \gset
SELECT count(*) AS badges FROM loyalty.member_badges WHERE member_id = :a \gset
SELECT count(*) AS tags FROM loyalty.member_tags WHERE member_id = :a \gset
SELECT is(:v::numeric, 3::numeric, 'a merge across shards adds the progress up (1 + 2)');
SELECT is(:badges::bigint, 1::bigint, '... the badge follows');
SELECT is(:tags::bigint, 1::bigint, '... and the tag');
-- an earlier month moves to challenge_periods, on the member's shard; the
-- leaderboard and campaign_results read both across the shards
SELECT loyalty.create_challenge(:p, 'monthly', 'Five a month', 'purchases', 5, 'month', repeating => true,
                                reward_points => '1') AS monthly \gset
SELECT min(m) AS c FROM chm WHERE m NOT IN (:a, :b) \gset
SELECT loyalty.earn(:c, 10, reference => 'tch-c1', occurred_at => now() - interval '40 days');
SELECT loyalty.earn(:c, 10, reference => 'tch-c2');
SELECT count(*) AS earlier FROM loyalty.challenge_periods WHERE member_id = :c AND challenge_id = :monthly \gset
SELECT count(*) AS periods FROM loyalty.challenge_progress WHERE member_id = :c AND challenge_id = :monthly \gset
SELECT is(:earlier::bigint, 1::bigint, 'a purchase in a later month moves the earlier period to challenge_periods');
SELECT is(:periods::bigint, 2::bigint, '... challenge_progress shows both');
SELECT count(*) AS ranked FROM loyalty.challenge_leaderboard WHERE challenge_id = :monthly \gset
SELECT is(:ranked::bigint, 2::bigint, 'the leaderboard ranks the periods');
SELECT reached FROM loyalty.campaign_results WHERE kind = 'challenge' AND campaign_id = :two \gset
SELECT is(:reached::bigint, 3::bigint, 'campaign_results counts the members a challenge reached across the shards');
SELECT is_empty('SELECT * FROM loyalty.verify()', 'verify() finds the books sound');
SELECT * FROM finish();
ROLLBACK;
