-- Replaces an account's secret key, keeping the old one beside it for a grace period: deliveries
-- until then carry a signature by each (see `Store::replace_secret_key`). A record being created
-- or deleted (a `state` field) is missing to every reader, so it is skipped.
-- KEYS: the account. ARGV: the new secret, the end of the grace period in ms since the epoch
-- (0: no grace, the old secret stops at once).
-- Returns 'skipped' (no such account) or 'replaced'.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 'skipped'
end
local old = redis.call('HGET', KEYS[1], 'secret_key')
redis.call('HSET', KEYS[1], 'secret_key', ARGV[1])
if ARGV[2] ~= '0' and old and old ~= ARGV[1] then
  -- A second reset within the grace period keeps only the secret it replaces: receivers are
  -- given one period to follow one change.
  redis.call('HSET', KEYS[1], 'previous_secret_key', old, 'previous_secret_until', ARGV[2])
else
  redis.call('HDEL', KEYS[1], 'previous_secret_key', 'previous_secret_until')
end
return 'replaced'
