-- Claims a one-time key (an Idempotency-Key of an account, a sender's delivery id on a
-- registration's hook) for the trigger about to be written, before it is written, so that
-- concurrent repeats find the claim and make no trigger of their own.
-- KEYS[1] the claim. ARGV[1] the claim's value, ARGV[2] its lifetime in seconds, ARGV[3] the
-- value a take-over expects to replace ('' claims only a key nobody holds).
-- Returns false when the key is now this caller's, or the value that holds it.
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[3] then
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
