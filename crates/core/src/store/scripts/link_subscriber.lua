-- link_child.lua for a subscription to its registration: the subscriber index and the map of
-- subscription → subscriber account that the fan-out reads beside it are written together (and
-- removed together by unlink_subscriber.lua), so they always hold the same subscriptions.
-- KEYS: the registration, its subscriptions index, its subscriber_accounts hash.
-- ARGV: subscription id, score, the registration's quota (0 for none), subscriber account id.
-- Returns 1 linked, 0 the registration is not live, -1 the quota is full.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  return 1
end
local quota = tonumber(ARGV[3])
if quota > 0 and redis.call('ZCARD', KEYS[2]) >= quota then
  return -1
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
return 1
