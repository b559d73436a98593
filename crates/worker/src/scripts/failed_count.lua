-- A subscriber's failed_count after an attempt, in its account's slot: +1 after a failure, 0
-- after a success. A deleted account must not come back as a hash holding only failed_count,
-- and one being created or deleted (its `state` field set) is left alone.
-- KEYS: the account.
-- ARGV: 'incr' or 'reset'.
-- Returns the new failed_count after 'incr'; after 'reset', the count it had, negated (0 when the
-- account was left alone).
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
if ARGV[1] == 'incr' then
  return redis.call('HINCRBY', KEYS[1], 'failed_count', 1)
end
local before = tonumber(redis.call('HGET', KEYS[1], 'failed_count')) or 0
redis.call('HSET', KEYS[1], 'failed_count', 0)
return -before
