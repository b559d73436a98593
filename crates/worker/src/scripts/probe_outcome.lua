-- A probe's outcome, in the subscriber's account slot: a 2xx re-enables the subscriber
-- (failed_count back to 0, the probe count and interval dropped); a failure keeps the probe count
-- and the interval before the next. Either way the probe is recorded, newest first, capped.
-- Nothing is written when the account is gone, being created or deleted, or no longer at
-- max_failed_count (re-enabled meanwhile): the probe's answer is moot then.
-- KEYS: the account, its probes list.
-- ARGV: max_failed_count, 'delivered' or 'failed', the probe number, the interval to the next
--       probe in ms, the probe record JSON, records kept.
-- Returns 1 when written, 0 otherwise.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'state') == 1 then
  return 0
end
local failed_count = tonumber(redis.call('HGET', KEYS[1], 'failed_count') or '0')
if failed_count < tonumber(ARGV[1]) then
  return 0
end
if ARGV[2] == 'delivered' then
  redis.call('HSET', KEYS[1], 'failed_count', 0)
  redis.call('HDEL', KEYS[1], 'probe_count', 'probe_interval_ms')
else
  redis.call('HSET', KEYS[1], 'probe_count', ARGV[3], 'probe_interval_ms', ARGV[4])
end
redis.call('LPUSH', KEYS[2], ARGV[5])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
return 1
