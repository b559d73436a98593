-- A subscriber's failed_count after an attempt, in its account's slot: +1 after a failure, 0
-- after a success. A deleted account must not come back as a hash holding only failed_count,
-- and one being created or deleted (its `state` field set) is left alone.
-- KEYS: the account.
-- ARGV: 'incr' or 'reset'.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
if ARGV[1] == 'incr' then
  redis.call('HINCRBY', KEYS[1], 'failed_count', 1)
else
  redis.call('HSET', KEYS[1], 'failed_count', 0)
end
return 1
