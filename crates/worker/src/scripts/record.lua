-- The outcomes of one deliver_batch.v1 or retry.v1 job, atomically with its acknowledgement, so
-- a job leaves the queue only once what it did is recorded.
--
-- Each attempt is written twice: its outcome in the trigger's attempts (what the registration's
-- owner reads) and in full in its subscription's attempts (what the subscriber reads). The
-- subscription's set is written for as long as the subscription lives, so besides its expiry it
-- is trimmed by age and count when the caller asks (one attempt in a few, to keep this short).
--
-- KEYS: the jobs stream, the delayed zset, the triggered record, the trigger's attempts zset.
-- ARGV: consumer group, this job's stream id, retention in seconds,
--       delivered, failed for good, skipped (finals of this job),
--       number of account updates, number of attempt records, number of retries,
--       most attempts kept per subscription,
--       then the account updates as (account key, 'reset' | 'incr') pairs,
--       then the attempts as (score in ms, outcome JSON, subscription attempts key, full JSON,
--       trim scores up to this, or '' not to trim) groups of five,
--       then the retries as (due time in ms, job JSON) pairs.
local group, entry = ARGV[1], ARGV[2]
local retention = tonumber(ARGV[3])
local delivered, failed, skipped = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local n_accounts, n_attempts, n_retries = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local per_subscription = tonumber(ARGV[10])

-- Acknowledge first. If the entry is no longer pending, another worker took it over (this one
-- stalled past the visibility timeout) and recorded its outcome already: keep the attempt
-- records, which did happen, but do not count, retry or touch failed_count a second time.
local first_time = true
if entry ~= '' then
  first_time = redis.call('XACK', KEYS[1], group, entry) == 1
  redis.call('XDEL', KEYS[1], entry)
end

local i = 11
for _ = 1, n_accounts do
  local key = ARGV[i]
  -- A deleted account must not come back as a hash holding only failed_count.
  if first_time and redis.call('EXISTS', key) == 1 then
    if ARGV[i + 1] == 'incr' then
      redis.call('HINCRBY', key, 'failed_count', 1)
    else
      redis.call('HSET', key, 'failed_count', 0)
    end
  end
  i = i + 2
end
for _ = 1, n_attempts do
  local score, own = ARGV[i], ARGV[i + 2]
  redis.call('ZADD', KEYS[4], score, ARGV[i + 1])
  redis.call('ZADD', own, score, ARGV[i + 3])
  if retention > 0 then
    redis.call('EXPIRE', own, retention)
  end
  if ARGV[i + 4] ~= '' then
    redis.call('ZREMRANGEBYSCORE', own, '-inf', '(' .. ARGV[i + 4])
    redis.call('ZREMRANGEBYRANK', own, 0, -per_subscription - 1)
  end
  i = i + 5
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

if first_time and redis.call('EXISTS', KEYS[3]) == 1 then
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
