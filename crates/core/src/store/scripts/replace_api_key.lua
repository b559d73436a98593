-- Gives an account a new API key at once and drops any pending one: the owner's own reset and
-- `pubhook init --rotate-keys`. Never creates a record for an account that is gone.
-- KEYS: the account. ARGV: the new hash.
-- Returns 1 replaced, 0 no such account.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'api_key', ARGV[1])
redis.call('HDEL', KEYS[1], 'api_key_pending', 'api_key_pending_until')
return 1
