-- The subscriber's view of one attempt, in its subscription's slot: the full attempt record in
-- the subscription's attempts, with their expiry renewed. The set is written for as long as the
-- subscription lives, so besides its expiry it is trimmed by age and count when the caller asks
-- (one attempt in a few, to keep this short). Written before the trigger's shard records the
-- outcome and acknowledges the job, so a crash can repeat this, never lose it.
-- KEYS: the subscription's attempts zset.
-- ARGV: score in ms, full attempt JSON, retention in seconds (0: none), trim scores below this
--       ('' not to trim), most attempts kept.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local retention = tonumber(ARGV[3])
if retention > 0 then
  redis.call('EXPIRE', KEYS[1], retention)
end
if ARGV[4] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[5]) - 1)
end
return 1
