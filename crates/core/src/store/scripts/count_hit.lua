-- One hit on a fixed-window rate limit: count it and report the count and the window's time left.
-- KEYS[1] the counter; ARGV[1] the window in milliseconds; ARGV[2] how many to add (0 reads only).
-- The window starts at the first hit and the key expires with it, so an idle subject costs
-- nothing. A counter left without an expiry (it cannot happen, but a bug must not ban a client
-- for ever) gets one.
local added = tonumber(ARGV[2])
local count
if added > 0 then
  count = redis.call('INCRBY', KEYS[1], added)
else
  count = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local ttl = redis.call('PTTL', KEYS[1])
if added > 0 and ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
