-- KEYS: registration, subscriber account, subscription, subscriptions index,
--       subscriber's subscriptions index, registration's subscriptions index, registration's
--       subscriber accounts (subscription id -> account id, read by the fan-out).
-- ARGV: id, score, the subscriber's quota of subscriptions, the registration's quota of
--       subscriptions (0 for none), the subscriber's account id, then field/value pairs.
-- Returns 1 created, 0 no such registration, -1 subscriber gone, -2 the subscriber has its
-- quota, -3 the registration has its quota. Counted where it is written, so concurrent
-- subscribes cannot overshoot.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local per_account = tonumber(ARGV[3])
if per_account > 0 and redis.call('ZCARD', KEYS[5]) >= per_account then
  return -2
end
local per_registration = tonumber(ARGV[4])
if per_registration > 0 and redis.call('ZCARD', KEYS[6]) >= per_registration then
  return -3
end
redis.call('HSET', KEYS[3], unpack(ARGV, 6))
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[7], ARGV[1], ARGV[5])
return 1
