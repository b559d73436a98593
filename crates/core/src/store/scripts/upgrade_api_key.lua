-- Moves a legacy (PBKDF2) hash to the fast form after the key verified against it.
-- Compare-and-set on the old hash, so a key reset that landed meanwhile is never overwritten
-- with the hash of the key it replaced.
-- KEYS: the account. ARGV: the legacy hash that was verified, the fast hash of the same key.
-- Returns 1 upgraded, 0 the stored hash had changed.
if redis.call('HGET', KEYS[1], 'api_key') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'api_key', ARGV[2])
return 1
