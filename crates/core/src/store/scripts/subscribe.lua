-- KEYS: registration, subscriber account, subscription, subscriptions index,
--       subscriber's subscriptions index, registration's subscriptions index.
-- ARGV: id, score, then field/value pairs.
-- Returns 1 created, 0 no such registration, -1 subscriber gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
redis.call('HSET', KEYS[3], unpack(ARGV, 3))
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
return 1
