-- Queues manual redeliveries of a trigger's deliveries, in the trigger's queue shard. Each
-- delivery moves from its final count on the summary back to `pending`, and its entry in the
-- trigger's redeliveries hash says `pending` until the worker records the new outcome there. A
-- delivery whose redelivery is still pending is left alone (counted as in progress), so two
-- requests at once queue it once.
-- KEYS: the triggered record, its redeliveries hash, the shard's jobs stream.
-- ARGV: the number of deliveries, then for each: its subscription id, its outcome as its last
--       attempt left it (`delivered`, `failed` or `skipped`), the job JSON.
-- Returns {queued, in progress}, or false when the triggered record is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local queued, in_progress = 0, 0
local i = 2
for _ = 1, tonumber(ARGV[1]) do
  local subscription, last, job = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  -- An earlier redelivery's outcome is newer than the attempt the caller read.
  local current = redis.call('HGET', KEYS[2], subscription) or last
  if current == 'pending' then
    in_progress = in_progress + 1
  else
    redis.call('HSET', KEYS[2], subscription, 'pending')
    redis.call('HINCRBY', KEYS[1], current, -1)
    redis.call('HINCRBY', KEYS[1], 'pending', 1)
    redis.call('XADD', KEYS[3], '*', 'job', job)
    queued = queued + 1
  end
end
-- The hash lives as long as its record.
local ttl = redis.call('PTTL', KEYS[1])
if queued > 0 and ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {queued, in_progress}
