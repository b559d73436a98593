-- The trigger as one atomic step: the triggered record and its fan-out job are written together,
-- or not at all if the registration has gone.
-- KEYS: registration, triggered record, triggered index, jobs stream.
-- ARGV: id, score, job JSON, then field/value pairs. Returns 1 written, 0 no such registration.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'job', ARGV[3])
return 1
