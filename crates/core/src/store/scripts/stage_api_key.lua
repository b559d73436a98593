-- Stores the key of a reset that somebody other than the owner asked for beside the current
-- one, so the owner is not locked out: the current key works until the pending one is first
-- used (see promote_api_key.lua) or until the deadline passes. A later reset replaces the
-- pending key and its deadline; the current key is never touched here.
-- KEYS: the account. ARGV: the new hash, the deadline in microseconds.
-- Returns 1 staged, 0 no such account.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'api_key_pending', ARGV[1], 'api_key_pending_until', ARGV[2])
return 1
