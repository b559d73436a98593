-- Moves due retries from the delayed zset to the jobs stream, atomically, at most ARGV[2] of
-- them. KEYS: the delayed zset, the jobs stream. ARGV: now in ms, batch size.
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job)
  redis.call('ZREM', KEYS[1], job)
end
return #due
