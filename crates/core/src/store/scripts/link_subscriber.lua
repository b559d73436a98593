-- link_child.lua for a subscription to its registration: the subscriber index and the map of
-- subscription → subscriber account that the fan-out reads beside it are written together (and
-- removed together by unlink_subscriber.lua), so they always hold the same subscriptions; so is
-- the subscription's filter, in the map of filters beside them (only filtered ones are there),
-- and whether it is ordered, in the order map (only ordered ones are there).
-- KEYS: the registration, its subscriptions index, its subscriber_accounts hash, its
--       subscriber_filters hash, its subscriber_order hash.
-- ARGV: subscription id, score, the registration's quota (0 for none), subscriber account id,
--       the filter's JSON text ('' for none), '1' when ordered ('' otherwise).
-- Returns 1 linked, 0 the registration is not live, -1 the quota is full.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
local function write_maps()
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
  else
    redis.call('HDEL', KEYS[4], ARGV[1])
  end
  if ARGV[6] == '1' then
    redis.call('HSET', KEYS[5], ARGV[1], '1')
  else
    redis.call('HDEL', KEYS[5], ARGV[1])
  end
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  write_maps()
  return 1
end
local quota = tonumber(ARGV[3])
if quota > 0 and redis.call('ZCARD', KEYS[2]) >= quota then
  return -1
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
write_maps()
return 1
