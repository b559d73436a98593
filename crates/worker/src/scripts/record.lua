-- The trigger's side of one deliver_batch.v1 or retry.v1 job, in the trigger's queue shard,
-- atomically with the job's acknowledgement, so a job leaves the queue only once what it did
-- is recorded. The subscriber's side (full attempt records, failed_count) was written just
-- before, in the subscriptions' and accounts' slots: a crash between the two repeats the job's
-- attempts, and never loses an outcome.
--
-- KEYS: the jobs stream, the delayed zset, the triggered record, the trigger's attempts zset,
--       the trigger's redeliveries hash (all of the trigger's shard).
-- ARGV: consumer group, this job's stream id ('' for none), retention in seconds,
--       delivered, failed for good, skipped (finals of this job),
--       number of attempt outcomes, number of retries, number of redelivery outcomes,
--       then the outcomes as (score in ms, outcome JSON) pairs,
--       then the retries as (due time in ms, job JSON) pairs,
--       then a manual redelivery's outcomes as (subscription id, summary count) pairs.
local group, entry = ARGV[1], ARGV[2]
local retention = tonumber(ARGV[3])
local delivered, failed, skipped = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local n_attempts, n_retries = tonumber(ARGV[7]), tonumber(ARGV[8])
local n_redelivered = tonumber(ARGV[9])

-- Acknowledge first. If the entry is no longer pending, another worker took it over (this one
-- stalled past the visibility timeout) and recorded its outcome already: keep the attempt
-- records, which did happen, but do not count or retry a second time.
local first_time = true
if entry ~= '' then
  first_time = redis.call('XACK', KEYS[1], group, entry) == 1
  redis.call('XDEL', KEYS[1], entry)
end

local i = 10
local live = redis.call('EXISTS', KEYS[3]) == 1
-- One ZADD per chunk of outcomes rather than one per outcome: each redis.call has its cost.
local chunk = 200
local last = i + 2 * n_attempts - 1
while i <= last do
  local to = math.min(i + 2 * chunk - 1, last)
  redis.call('ZADD', KEYS[4], unpack(ARGV, i, to))
  i = to + 1
end
if n_attempts > 0 and retention > 0 then
  redis.call('EXPIRE', KEYS[4], retention)
end
for _ = 1, n_retries do
  if first_time then
    redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
for _ = 1, n_redelivered do
  if first_time and live then
    redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end

if first_time and live then
  local finals = delivered + failed + skipped
  if finals > 0 then
    redis.call('HINCRBY', KEYS[3], 'pending', -finals)
  end
  if delivered > 0 then
    redis.call('HINCRBY', KEYS[3], 'delivered', delivered)
  end
  if failed > 0 then
    redis.call('HINCRBY', KEYS[3], 'failed', failed)
  end
  if skipped > 0 then
    redis.call('HINCRBY', KEYS[3], 'skipped', skipped)
  end
end
return 1
