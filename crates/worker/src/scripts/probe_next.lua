-- The shard's side of a probe: acknowledges its entry and, when the subscriber is still
-- disabled, puts the next probe in the delayed set.
-- KEYS: the jobs stream, the delayed set (of the account's shard).
-- ARGV: consumer group, the entry id ('' for none), when the next probe is due in ms ('' for
--       none), the probe job JSON.
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
return 1
