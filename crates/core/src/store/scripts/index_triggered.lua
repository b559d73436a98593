-- Adds a triggered record to the global triggered index and trims the entries older than the
-- retention (their records have expired), so the index stays bounded. One slot: the index's.
-- KEYS: the triggered index.
-- ARGV: id, score (creation time in microseconds), trim scores below this ('' not to trim).
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
end
return 1
