-- The subscriber's view of one attempt, in its subscription's slot, when the set's expiry is due
-- for renewal: the full attempt record in the subscription's attempts, and the set's expiry set
-- anew, together. The attempts between renewals are a plain ZADD, and the trims by age and
-- count are plain commands beside either (crate::delivery::record). Written before the
-- trigger's shard records the outcome and acknowledges the job, so a crash can repeat this,
-- never lose it.
-- KEYS: the subscription's attempts zset.
-- ARGV: score in ms, full attempt JSON, expiry in seconds.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
