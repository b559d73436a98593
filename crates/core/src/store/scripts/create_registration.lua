-- KEYS: owner account, registration, registrations index, owner's registrations index.
-- ARGV: id, score, then field/value pairs. Returns 1 created, 0 owner gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return 1
