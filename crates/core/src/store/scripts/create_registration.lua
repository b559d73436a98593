-- KEYS: owner account, registration, registrations index, owner's registrations index.
-- ARGV: id, score, the owner's quota of registrations (0 for none), then field/value pairs.
-- Returns 1 created, 0 owner gone, -1 the owner already has its quota. The quota is counted in
-- the same script that writes, so concurrent creates cannot overshoot it.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local quota = tonumber(ARGV[3])
if quota > 0 and redis.call('ZCARD', KEYS[4]) >= quota then
  return -1
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return 1
