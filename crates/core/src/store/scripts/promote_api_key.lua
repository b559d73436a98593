-- The pending key was just used: it becomes the key and the old one is dropped. Compare-and-set
-- on the pending hash, so a reset that came in between (a newer pending key, or the owner's own
-- reset) is never overwritten.
-- KEYS: the account. ARGV: the pending hash that was verified.
-- Returns 1 promoted, 0 the pending key had changed.
if redis.call('HGET', KEYS[1], 'api_key_pending') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'api_key', ARGV[1])
redis.call('HDEL', KEYS[1], 'api_key_pending', 'api_key_pending_until')
return 1
