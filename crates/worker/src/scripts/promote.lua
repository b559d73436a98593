-- Moves due retries (and parked jobs) from a shard's delayed zset to its jobs stream,
-- atomically, at most ARGV[2] of them, and tells when the next one still waiting is due.
-- KEYS: the delayed zset, the jobs stream (one shard). ARGV: now in ms, batch size.
-- Returns {how many moved, due time in ms of the next one waiting ('' if none)}.
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', job)
  redis.call('ZREM', KEYS[1], job)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, next[2] or ''}
